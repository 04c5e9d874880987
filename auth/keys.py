"""Node keys: Ed25519 signing keys and the public keys that verify them.

Every message between nodes and every manifest is signed with Ed25519, so this module is the one
place that touches the ``cryptography`` key objects. A key is named by its ``key_id``, a short hash
of the raw public key, so manifests, envelopes and logs can refer to a key without carrying it.

Verification is on the hot path (one per batch, thousands per second), so a ``PublicKey`` parses its
bytes into a ``cryptography`` object once, at construction, and keeps it. Private keys live in PEM
PKCS#8 files written with mode 0600; they are never printed, not even by ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auth.errors import KeyFileError, KeyFormatError, SignatureInvalid

__all__ = [
    "KEY_ID_PREFIX",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "PublicKey",
    "SigningKey",
    "key_id_for",
]

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
KEY_ID_PREFIX = "ed25519:"


def key_id_for(public_raw: bytes) -> str:
    """The key id of a raw 32-byte Ed25519 public key.

    128 bits of SHA-256 are plenty to tell the keys of one network apart, and short enough to read
    in a log line; the prefix leaves room for another algorithm later.
    """
    if len(public_raw) != PUBLIC_KEY_SIZE:
        raise KeyFormatError(
            f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(public_raw)}"
        )
    return KEY_ID_PREFIX + hashlib.sha256(public_raw).hexdigest()[:32]


_P = 2**255 - 19
# The y-coordinates of the eight points of small order (x's sign gives the others): 1 (order 1),
# p-1 (order 2), 0 (order 4), and the two of order 8. A public key on one of them lets anyone
# forge signatures that OpenSSL accepts (e.g. R = identity, S = 0), so such keys are refused.
_Y8 = int.from_bytes(
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little"
)
_SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _Y8, _P - _Y8})


def has_small_order(public_raw: bytes) -> bool:
    """True if the 32 bytes encode a point of small order, canonically or not."""
    y = int.from_bytes(public_raw, "little") & ((1 << 255) - 1)
    return y % _P in _SMALL_ORDER_Y


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key; ``key_id`` is derived from ``raw`` so the two can never disagree."""

    raw: bytes
    key_id: str = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes):
            raise KeyFormatError(f"a public key is bytes, got {type(self.raw).__name__}")
        key_id = key_id_for(self.raw)
        if has_small_order(self.raw):
            raise KeyFormatError("not an Ed25519 public key: a point of small order")
        try:
            key = Ed25519PublicKey.from_public_bytes(self.raw)
        except ValueError as exc:
            raise KeyFormatError(f"not an Ed25519 public key: {exc}") from exc
        object.__setattr__(self, "key_id", key_id)
        object.__setattr__(self, "_key", key)

    @classmethod
    def from_raw(cls, raw: bytes) -> PublicKey:
        return cls(bytes(raw))

    @classmethod
    def from_b64(cls, text: str) -> PublicKey:
        """From standard base64 of the 32 raw bytes (the manifest's encoding)."""
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyFormatError("not a base64 Ed25519 public key (32 bytes)") from exc
        if len(raw) != PUBLIC_KEY_SIZE:
            raise KeyFormatError(
                f"not a base64 Ed25519 public key (32 bytes): decodes to {len(raw)} bytes"
            )
        return cls(raw)

    @classmethod
    def from_pem(cls, data: bytes | str) -> PublicKey:
        """From a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) block."""
        pem = data.encode() if isinstance(data, str) else data
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFormatError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFormatError(f"not an Ed25519 public key: {_algorithm_name(key)}")
        return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    def to_b64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature: bytes, message: bytes) -> None:
        """Return if ``signature`` is this key's over ``message``; raise SignatureInvalid if not."""
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
            got = len(signature) if isinstance(signature, bytes) else type(signature).__name__
            raise SignatureInvalid(
                f"signature by {self.key_id} is malformed: "
                f"expected {SIGNATURE_SIZE} bytes, got {got}"
            )
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise SignatureInvalid(f"signature by {self.key_id} does not verify") from None


class SigningKey:
    """An Ed25519 private key with its public half; the one object that can sign as this node."""

    __slots__ = ("_private", "public")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = PublicKey(
            private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """From the 32-byte private seed; for deterministic test keys, never for real ones."""
        if len(seed) != 32:
            raise KeyFormatError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read an unencrypted PEM PKCS#8 Ed25519 private key; KeyFileError says what is wrong."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise KeyFileError(f"{p}: key file not found") from None
        except IsADirectoryError:
            raise KeyFileError(f"{p}: is a directory, not a key file") from None
        except PermissionError:
            raise KeyFileError(f"{p}: key file not readable (permission denied)") from None
        except OSError as exc:
            raise KeyFileError(f"{p}: cannot read key file: {exc.strerror or exc}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            # cryptography signals "encrypted but no password given" with TypeError.
            raise KeyFileError(
                f"{p}: key file is encrypted; ihx needs an unencrypted PKCS#8 key"
            ) from None
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFileError(f"{p}: not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{p}: {_algorithm_name(key)} key, expected an Ed25519 key")
        return cls(key)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the key as PEM PKCS#8 with mode 0600.

        The file is written under a temporary name and renamed into place, so a crash never leaves
        a truncated key and the key is never readable by others, even for a moment.
        """
        p = Path(path)
        if p.exists() and not overwrite:
            raise KeyFileError(f"{p}: already exists; refusing to overwrite a key file")
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        directory = p.parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise KeyFileError(f"{p}: cannot write key file: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            if overwrite:
                os.replace(tmp, p)
            else:
                # link() fails if the target appeared meanwhile, unlike rename().
                os.link(tmp, p)
                os.unlink(tmp)
        except FileExistsError:
            _unlink_quietly(tmp)
            raise KeyFileError(f"{p}: already exists; refusing to overwrite a key file") from None
        except OSError as exc:
            _unlink_quietly(tmp)
            raise KeyFileError(f"{p}: cannot write key file: {exc.strerror or exc}") from None

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


def _algorithm_name(key: object) -> str:
    name = type(key).__name__
    for suffix in ("PrivateKey", "PublicKey"):
        name = name.removesuffix(suffix)
    return name.lstrip("_") or "unknown"


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
