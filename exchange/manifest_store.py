"""The node's current network manifest, and picking up newer ones without a restart.

The first manifest is verified against the trust anchors in the settings (coordinator public
keys); every later one against the current manifest's coordinator keys, with a higher epoch
(auth/manifest.py). The file is polled — cheap, works with Kubernetes ConfigMap updates (which
swap a symlink) and needs no inotify. A refused file is logged once with its reason and the
current manifest stays in force; readers always see one consistent manifest object. Only a
manifest issued "in the future" (our clock is behind the coordinator's) is looked at again on
later polls: that refusal ends by itself once our clock passes its ``issued_at``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auth.errors import AuthError, ManifestNotYetValid
from auth.keys import PublicKey
from auth.manifest import (
    DEFAULT_MAX_SKEW,
    Manifest,
    MemberKey,
    accept_update,
    load_signed_manifest,
)
from common.clock import Clock
from exchange.errors import ConfigError

log = logging.getLogger(__name__)

_ANCHOR_SINCE = datetime(1970, 1, 1, tzinfo=UTC)


def trust_anchors(keys_b64: Sequence[str]) -> tuple[MemberKey, ...]:
    anchors = []
    for i, text in enumerate(keys_b64):
        try:
            anchors.append(MemberKey.of(PublicKey.from_b64(text), _ANCHOR_SINCE))
        except AuthError as error:
            raise ConfigError(f"manifest.trusted_keys[{i}]: {error}") from None
    return tuple(anchors)


class ManifestStore:
    def __init__(
        self,
        path: Path,
        anchors: Sequence[MemberKey],
        clock: Clock,
        *,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
    ) -> None:
        self._path = path
        self._clock = clock
        self._max_skew = max_skew
        self._lock = threading.Lock()
        data = self._read()
        try:
            self._current = load_signed_manifest(
                data, trusted=anchors, now=clock(), max_skew=max_skew
            )
        except AuthError as error:
            raise ConfigError(f"{path}: {error}") from None
        self._digest = hashlib.sha256(data).digest()
        self._refused_digest: bytes | None = None
        self._early_digest: bytes | None = None
        self.listeners: list[Callable[[Manifest], None]] = []

    def _read(self) -> bytes:
        try:
            return self._path.read_bytes()
        except OSError as error:
            raise ConfigError(f"{self._path}: cannot read the manifest: {error.strerror}") from None

    def current(self) -> Manifest:
        return self._current

    def refresh(self) -> bool:
        """Check the file once; True if a newer manifest was accepted."""
        try:
            data = self._path.read_bytes()
        except OSError:
            return False
        digest = hashlib.sha256(data).digest()
        if digest in (self._digest, self._refused_digest):
            return False
        with self._lock:
            try:
                newer = accept_update(self._current, data, self._clock(), max_skew=self._max_skew)
            except ManifestNotYetValid as error:
                if digest != self._early_digest:  # said once, tried again at every poll
                    self._early_digest = digest
                    log.warning("manifest update not yet valid (is our clock behind?): %s", error)
                return False
            except AuthError as error:
                self._refused_digest = digest
                log.warning("manifest update refused: %s", error)
                return False
            self._current = newer
            self._digest = digest
        log.info("manifest epoch %d accepted", newer.epoch)
        for listener in self.listeners:
            listener(newer)
        return True
