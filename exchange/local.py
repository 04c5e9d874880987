"""``open_local``: a node's own files and database without its server — for every CLI command.

The other composition root beside ``build_node`` (exchange/node.py), and the part of it both
share: a command that reads the node's database, its current manifest, its signing key or issues
its tokens gets them from here, built exactly as the running node builds them (the engine
refuses a schema that is not at head; the manifest store checks the settings' trust anchors
with the settings' clock skew). Each part opens on first use, so a command needs only what it
reads (``ihx status`` needs no key, ``ihx token issue`` no database). ``LocalNode`` is a context
manager that closes the database if it was opened.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from types import TracebackType

from sqlalchemy.engine import Engine

from auth.keys import SigningKey
from auth.manifest import network_audience, network_issuer
from auth.tokens import Scope, TokenIssuer, TokenVerifier
from common.clock import Clock, system_clock
from exchange.errors import ConfigError
from exchange.manifest_store import ManifestStore, trust_anchors
from exchange.pdq.matcher import PdqMatcher, index_file
from exchange.settings import Settings
from exchange.store.engine import open_engine
from exchange.store.migrate import require_head
from exchange.token_trust import own_issuer, token_policy

__all__ = ["LocalNode", "open_local"]


class LocalNode:
    """A node's settings, database, manifest, key and token issuer; no server, no threads."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.member = settings.member
        self.clock = clock

    @cached_property
    def engine(self) -> Engine:
        """The node's database, refused unless its schema is at head (as the node refuses it)."""
        engine = open_engine(self.settings.database_url)
        try:
            require_head(engine)
        except BaseException:
            engine.dispose()
            raise
        return engine

    @cached_property
    def manifests(self) -> ManifestStore:
        skew = timedelta(seconds=self.settings.exchange.max_clock_skew_s)
        anchors = trust_anchors(self.settings.trusted_keys)
        return ManifestStore(self.settings.manifest_path, anchors, self.clock, max_skew=skew)

    @cached_property
    def key(self) -> SigningKey:
        return SigningKey.load(self.settings.signing_key)

    def token_issuer(self, audience: str | None = None) -> TokenIssuer:
        """This node's own issuer, for tokens to ``audience`` (default: this node)."""
        return TokenIssuer(
            self.key,
            self.settings.token_issuer,
            audience or self.member,
            self.clock,
            max_lifetime=timedelta(seconds=self.settings.max_token_lifetime_s),
        )

    def network_token_issuer(self) -> TokenIssuer:
        """This member's issuer of network tokens: every node accepts them, for the read scopes
        the manifest grants it (ConfigError when it grants none)."""
        manifest = self.manifests.current()
        reader = manifest.network_reader(self.member)
        if reader is None:
            raise ConfigError(
                f"{self.member} is not a network reader in manifest epoch {manifest.epoch}: "
                f"the coordinator grants it with `ihx network set-reader {self.member} …`"
            )
        return TokenIssuer(
            self.key,
            network_issuer(self.member),
            network_audience(manifest.network),
            self.clock,
            max_lifetime=timedelta(seconds=self.settings.max_token_lifetime_s),
            grant=frozenset(Scope(s) for s in reader.scopes),
        )

    def token_verifier(self) -> TokenVerifier:
        """Tokens as the node's gRPC edge accepts them: its own issuer, the external issuers of
        ``[auth] jwks`` and the manifest's network readers, with the settings' leeway and
        lifetime.

        The node's own keys come from the manifest (its unrevoked keys), not from the signing
        key file: a process that only verifies tokens (``ihx web``) never needs the private key.
        """
        manifest = self.manifests.current()
        own = own_issuer(manifest, self.member, self.settings.token_issuer)
        return TokenVerifier(token_policy(self.settings, self.member, own, manifest), self.clock)

    def pdq_matcher(self, follower: str = "", *, owns_file: bool = False) -> PdqMatcher:
        """The near-duplicate matcher of ``[pdq]`` over this node's sightings (not yet opened);
        ``follower``: its name among the followers of the change feed (a process that keeps
        its index and trims the feed), "" for a one-off reader; ``owns_file``: it saves the
        index file every ``[pdq] save_interval_s`` (the node; others only read the file)."""
        pdq = self.settings.pdq
        return PdqMatcher(
            self.engine,
            max_distance=pdq.max_distance,
            min_quality=pdq.min_quality,
            path=index_file(self.settings.database_url, pdq.index_path),
            follower=follower,
            clock=self.clock,
            lease=timedelta(seconds=pdq.follower_lease_s),
            save_every=timedelta(seconds=pdq.save_interval_s) if owns_file else None,
        )

    def close(self) -> None:
        if "engine" in self.__dict__:  # opened: cached_property keeps it in the instance
            self.engine.dispose()

    def __enter__(self) -> LocalNode:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_local(settings: Settings, *, clock: Clock = system_clock) -> LocalNode:
    """The node of ``settings`` without its server (nothing is opened until it is used)."""
    return LocalNode(settings, clock)
