"""Which bearer tokens a node accepts: one place for the node's gRPC edge and ``ihx web``.

``token_policy`` joins the node's own issuer, the external issuers of ``[auth] jwks`` (an
external one may not claim the node's own issuer name) and the manifest's network readers
(``network_issuers``) for the node's audience, leeway and longest lifetime. ``own_issuer`` is
the node's issuer as the manifest states it — the member's unrevoked keys — for a process
without the private key (``ihx web``); the node itself passes the issuer of the key it signs with.

A network reader's issuer is ``ihx-member:<id>`` with the member's manifest keys, each with its
validity window, the network's audience and the reader's grant (auth/manifest/readers.py).
``shrunk_issuers`` names the issuers a newer policy trusts less, whose open web sessions end. The
``ihx-member:`` names are the manifest's alone: settings that claim one are refused. The policy
depends on the manifest, so ``ManifestVerifier`` rebuilds the verifier when a newer manifest is
accepted — a reader granted, dropped or a reader's key revoked takes effect without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from auth.errors import TrustConfigError
from auth.manifest import Manifest, network_audience, network_issuer
from auth.manifest.readers import NETWORK_ISSUER_PREFIX
from auth.tokens import (
    KeyWindow,
    Principal,
    Scope,
    TokenPolicy,
    TokenVerifier,
    TrustedIssuer,
    VerificationKey,
    load_jwks_issuers,
    node_issuer,
)
from auth.tokens.remote import RemoteIssuer, RemoteOptions, close_fetching, start_fetching
from common.clock import Clock, system_clock
from exchange.errors import ConfigError
from exchange.settings import Settings

log = logging.getLogger(__name__)


def external_issuers(
    settings: Settings, own: TrustedIssuer, clock: Clock = system_clock
) -> dict[str, TrustedIssuer | RemoteIssuer]:
    """The issuers of ``[auth] jwks`` (none without it); never the node's own or a network name.

    An issuer there with ``jwks_uri`` or ``discovery`` fetches its keys (cached ``[auth]
    jwks_cache_s``, refetched at most every ``jwks_refresh_min_s``, ``jwks_timeout_s`` each,
    and trusted at most ``jwks_max_stale_s`` after the last good fetch).
    """
    if settings.jwks_path is None:
        return {}
    auth = settings.auth
    options = RemoteOptions(
        ttl=timedelta(seconds=auth.jwks_cache_s),
        min_refresh=timedelta(seconds=auth.jwks_refresh_min_s),
        timeout=auth.jwks_timeout_s,
        max_stale=timedelta(seconds=auth.jwks_max_stale_s),
    )
    external = load_jwks_issuers(settings.jwks_path, clock=clock, options=options)
    if own.issuer in external:
        raise TrustConfigError(f"{settings.jwks_path}: issuer {own.issuer!r} is this node's own")
    for iss in external:
        if iss.startswith(NETWORK_ISSUER_PREFIX):
            raise TrustConfigError(
                f"{settings.jwks_path}: issuer {iss!r}: {NETWORK_ISSUER_PREFIX}… names are the "
                "manifest's network readers"
            )
    return external


def network_issuers(manifest: Manifest) -> dict[str, TrustedIssuer]:
    """Each network reader of ``manifest`` as an issuer: its keys, windows, audience, grant."""
    issuers: dict[str, TrustedIssuer] = {}
    audience = network_audience(manifest.network)
    for reader in manifest.network_readers:
        member = manifest.member(reader.member)
        keys: dict[str, VerificationKey] = {}
        windows: dict[str, KeyWindow] = {}
        for key in member.keys:
            keys.update(node_issuer(key.public_key, "-").keys)
            ends = [t for t in (key.not_after, key.revoked_at) if t is not None]
            windows[key.key_id] = KeyWindow(key.not_before, min(ends) if ends else None)
        iss = network_issuer(member.id)
        issuers[iss] = TrustedIssuer(
            iss,
            keys,
            ("EdDSA",),
            network_audience=audience,
            grant=frozenset(Scope(s) for s in reader.scopes),
            key_windows=windows,
        )
    return issuers


def token_policy(
    settings: Settings,
    member: str,
    own: TrustedIssuer,
    manifest: Manifest,
    external: Mapping[str, TrustedIssuer | RemoteIssuer] | None = None,
) -> TokenPolicy:
    """What the node accepts now; ``external``: the ``[auth] jwks`` issuers if already loaded
    (a remote issuer keeps its fetched keys across manifests)."""
    if own.issuer.startswith(NETWORK_ISSUER_PREFIX):
        raise TrustConfigError(
            f"auth.issuer {own.issuer!r}: {NETWORK_ISSUER_PREFIX}… names are the manifest's "
            "network readers"
        )
    issuers: dict[str, TrustedIssuer | RemoteIssuer] = {own.issuer: own}
    issuers.update(external_issuers(settings, own) if external is None else external)
    issuers.update(network_issuers(manifest))
    return TokenPolicy(
        audience=member,
        issuers=issuers,
        leeway=timedelta(seconds=settings.token_leeway_s),
        max_lifetime=timedelta(seconds=settings.max_token_lifetime_s),
    )


def own_issuer(manifest: Manifest, member: str, issuer: str) -> TrustedIssuer:
    """``member``'s issuer with its unrevoked keys in ``manifest``."""
    found = manifest.find_member(member)
    if found is None:
        raise ConfigError(f"node.member {member!r} is not a member of the manifest")
    keys = [k for k in found.keys if k.revoked_at is None]
    if not keys:
        raise ConfigError(f"{member} has no unrevoked key in the manifest")
    issuers = [node_issuer(k.public_key, issuer) for k in keys]
    return TrustedIssuer(
        issuer, {kid: key for i in issuers for kid, key in i.keys.items()}, ("EdDSA",)
    )


def shrunk_issuers(old: TokenPolicy, new: TokenPolicy | None) -> list[str]:
    """The issuers of ``old`` whose trust ``new`` narrows: gone, a key gone, a key's window
    shorter or later, or a smaller grant. Sessions opened with their tokens must end.

    A fetched (remote) issuer kept as the same object is unchanged here: its keys are its own.
    """
    issuers = {} if new is None else new.issuers
    return [iss for iss, was in old.issuers.items() if _narrowed(was, issuers.get(iss))]


def _narrowed(was: TrustedIssuer | RemoteIssuer, now: TrustedIssuer | RemoteIssuer | None) -> bool:
    if now is was:
        return False
    if not isinstance(was, TrustedIssuer) or not isinstance(now, TrustedIssuer):
        return True
    if any(now.keys.get(kid) != key for kid, key in was.keys.items()):
        return True
    if set(was.algorithms) - set(now.algorithms):
        return True
    if was.grant is not None and (now.grant is None or bool(was.grant - now.grant)):
        return True
    return any(_window_narrowed(was.key_windows.get(k), now.key_windows.get(k)) for k in now.keys)


def _window_narrowed(was: KeyWindow | None, now: KeyWindow | None) -> bool:
    if was is None or now is None:
        return was != now
    if now.since > was.since:
        return True
    return now.until is not None and (was.until is None or now.until < was.until)


class ManifestVerifier:
    """The node's token verifier, rebuilt for each newer manifest (its network readers).

    The node's own issuer and the external issuers are fixed for the process; ``rebuild`` is
    the manifest store's listener. Swapping one reference is atomic, so a call verifies with
    either the old or the new policy, never a mix.
    """

    def __init__(
        self, settings: Settings, member: str, own: TrustedIssuer, manifest: Manifest, clock: Clock
    ) -> None:
        self._settings = settings
        self._member = member
        self._own = own
        self._clock = clock
        self._external = external_issuers(settings, own, clock)
        self._verifier = self._build(manifest)

    def start(self) -> None:
        """Fetch the fetched issuers' keys on their workers now, not at a first token: at the
        node's start, so a node built but never started (or whose build failed later) leaves
        no worker behind."""
        start_fetching(self._external.values())

    def _build(self, manifest: Manifest) -> TokenVerifier:
        policy = token_policy(self._settings, self._member, self._own, manifest, self._external)
        return TokenVerifier(policy, self._clock)

    @property
    def policy(self) -> TokenPolicy:
        return self._verifier.policy

    def verify(self, token: str) -> Principal:
        return self._verifier.verify(token)

    def close(self) -> None:
        """Stop the fetched issuers' workers (the node's stop)."""
        close_fetching(self._external.values())

    def rebuild(self, manifest: Manifest) -> None:
        self._verifier = self._build(manifest)
        readers = ", ".join(r.member for r in manifest.network_readers) or "none"
        log.info(
            "tokens: manifest epoch %d in force (network readers: %s)", manifest.epoch, readers
        )
