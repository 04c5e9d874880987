"""The web view's token verifier, kept in step with the manifest.

``ihx web`` verifies tokens with the keys the manifest lists for its member (it has no private
key). The node may accept a newer manifest at any time — a key revoked or rotated out — so
every ``REFRESH`` (checked on the next request) the view re-reads the manifest file through its
``ManifestStore`` and, when the epoch changed, builds its verifier anew with the same
``token_policy`` the node uses. If one of the node's own keys is no longer trusted, every session
of the node's own issuer ends (``on_revoked``): a session does not remember which key signed its
token, so all of them log in again, with the keys trusted now. With no key of the member left,
the view refuses the node's own tokens until a manifest names one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from auth.errors import TokenInvalid
from auth.tokens import Principal, TokenVerifier
from common.clock import Clock
from exchange.errors import ConfigError
from exchange.local import LocalNode
from exchange.token_trust import own_issuer, token_policy

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
        self._verifier: TokenVerifier | None = local.token_verifier()
        self._keys = self._own_keys()

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
        self._epoch = epoch
        try:
            manifest = self._local.manifests.current()
            own = own_issuer(manifest, self._local.member, self._local.settings.token_issuer)
            policy = token_policy(self._local.settings, self._local.member, own, manifest)
            self._verifier = TokenVerifier(policy, self._clock)
        except ConfigError as error:
            log.warning("web: manifest epoch %d: %s; the node's tokens are refused", epoch, error)
            self._verifier = None
        keys = self._own_keys()
        if self._keys - keys:
            log.info("web: manifest epoch %d drops a key of this node: its sessions end", epoch)
            self._on_revoked(self._local.settings.token_issuer)
        self._keys = keys
        log.info("web: tokens verified with manifest epoch %d", epoch)

    def _own_keys(self) -> frozenset[str]:
        member = self._local.manifests.current().find_member(self._local.member)
        if member is None:
            return frozenset()
        return frozenset(k.key_id for k in member.keys if k.revoked_at is None)
