"""The web view's token verifier, kept in step with the manifest.

``ihx web`` verifies tokens with the keys the manifest lists for its member (it has no private
key). The node may accept a newer manifest at any time — a key revoked or rotated out — so
every ``REFRESH`` (checked on the next request) the view re-reads the manifest file through its
``ManifestStore`` and, when the epoch changed, builds its verifier anew with the same
``token_policy`` the node uses. Every issuer the new policy trusts less (``shrunk_issuers``: a
key revoked or gone, a network reader dropped or its grant cut) has all its sessions ended
(``on_revoked``): a session does not remember which key signed its token, so all of them log in
again, with the keys trusted now. With no key of the member left, the view refuses every token
until a manifest names one. A manifest whose policy cannot be built leaves the previous one in
force and is tried again at the next check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from auth.errors import TokenInvalid, TrustConfigError
from auth.manifest.readers import NETWORK_ISSUER_PREFIX
from auth.tokens import Principal, TokenVerifier
from auth.tokens.remote import close_fetching, start_fetching
from common.clock import Clock
from exchange.errors import ConfigError
from exchange.local import LocalNode
from exchange.token_trust import own_issuer, shrunk_issuers, token_policy

log = logging.getLogger(__name__)

REFRESH = timedelta(seconds=30)


class Trust:
    def __init__(
        self,
        local: LocalNode,
        clock: Clock,
        *,
        on_revoked: Callable[[str], object],
        every: timedelta = REFRESH,
    ) -> None:
        self._local = local
        self._clock = clock
        self._on_revoked = on_revoked
        self._every = every
        self._lock = threading.Lock()
        self._next = clock() + every
        self._epoch = local.manifests.current().epoch
        verifier = local.token_verifier()
        self._verifier: TokenVerifier | None = verifier
        self._policy = verifier.policy
        # The [auth] jwks issuers, loaded once: a fetched issuer keeps its keys and its worker.
        own = local.settings.token_issuer
        self._external = {
            iss: trusted
            for iss, trusted in verifier.policy.issuers.items()
            if iss != own and not iss.startswith(NETWORK_ISSUER_PREFIX)
        }

    def start(self) -> None:
        """Fetch the fetched issuers' keys on their workers now (the view's start), not at a
        first login."""
        start_fetching(self._external.values())

    def close(self) -> None:
        """Stop the fetched issuers' workers (the view's shutdown)."""
        close_fetching(self._external.values())

    def verify(self, token: str) -> Principal:
        self.check()
        verifier = self._verifier
        if verifier is None:
            raise TokenInvalid("no key of this node is trusted by the manifest")
        return verifier.verify(token)

    def check(self) -> None:
        """Every ``every``: pick up a newer manifest and rebuild the verifier for it."""
        now = self._clock()
        if now < self._next:
            return
        with self._lock:
            if now < self._next:
                return
            self._next = now + self._every
            self._local.manifests.refresh()
            epoch = self._local.manifests.current().epoch
            if epoch != self._epoch:
                self._rebuild(epoch)

    def _rebuild(self, epoch: int) -> None:
        manifest = self._local.manifests.current()
        settings = self._local.settings
        verifier: TokenVerifier | None
        try:
            own = own_issuer(manifest, self._local.member, settings.token_issuer)
            policy = token_policy(settings, self._local.member, own, manifest, self._external)
            verifier = TokenVerifier(policy, self._clock)
        except ConfigError as error:
            log.warning("web: manifest epoch %d: %s; the node's tokens are refused", epoch, error)
            verifier = None
        except TrustConfigError as error:
            # The epoch stays the old one, so the next check tries this manifest again.
            log.error("web: manifest epoch %d unusable, the previous tokens policy stays: %s",
                      epoch, error)  # fmt: skip
            return
        for iss in shrunk_issuers(self._policy, None if verifier is None else verifier.policy):
            log.info("web: manifest epoch %d trusts %s less: its sessions end", epoch, iss)
            self._on_revoked(iss)
        self._verifier = verifier
        if verifier is not None:
            self._policy = verifier.policy
        self._epoch = epoch
        log.info("web: tokens verified with manifest epoch %d", epoch)
