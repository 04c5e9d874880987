"""Node keys: key ids, public-key encodings, signing, verifying and key files."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import auth.keys
from auth.errors import KeyFileError, KeyFormatError, SignatureInvalid
from auth.keys import PublicKey, SigningKey, key_id_for

# RFC 8032 §7.1, tests 1 and 2: (secret seed, public key, message, signature).
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
        "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
        "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.from_seed(bytes(range(32)))


# --- key ids --------------------------------------------------------------------------------------


def test_key_id_is_prefixed_first_128_bits_of_sha256() -> None:
    raw = bytes.fromhex(RFC8032[0][1])
    assert key_id_for(raw) == "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]
    assert len(key_id_for(raw)) == len("ed25519:") + 32


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_key_id_refuses_wrong_length(size: int) -> None:
    with pytest.raises(KeyFormatError, match="32 bytes"):
        key_id_for(b"\x01" * size)


def test_public_key_derives_its_key_id(key: SigningKey) -> None:
    assert key.public.key_id == key_id_for(key.public.raw)
    assert key.key_id == key.public.key_id


# --- RFC 8032 known answers -----------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    signing = SigningKey.from_seed(bytes.fromhex(seed))
    assert signing.public.raw == bytes.fromhex(public)
    assert signing.sign(bytes.fromhex(message)) == bytes.fromhex(signature)
    PublicKey.from_raw(bytes.fromhex(public)).verify(
        bytes.fromhex(signature), bytes.fromhex(message)
    )


# --- public key encodings -------------------------------------------------------------------------


def test_public_key_encodings_round_trip(key: SigningKey) -> None:
    public = key.public
    assert PublicKey.from_raw(public.raw) == public
    assert PublicKey.from_b64(public.to_b64()) == public
    assert PublicKey.from_pem(public.to_pem()) == public
    assert PublicKey.from_pem(public.to_pem().decode()) == public
    assert base64.b64decode(public.to_b64()) == public.raw


def test_public_keys_compare_and_hash_by_bytes(key: SigningKey) -> None:
    other = SigningKey.from_seed(b"\x07" * 32).public
    assert {key.public, PublicKey.from_raw(key.public.raw), other} == {key.public, other}
    assert key.public != other


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64!",
        base64.b64encode(b"\x01" * 31).decode(),
        base64.b64encode(b"\x01" * 33).decode(),
        base64.b64encode(b"\x01" * 32).decode().rstrip("="),
    ],
)
def test_from_b64_refuses_anything_but_32_bytes_of_base64(text: str) -> None:
    with pytest.raises(KeyFormatError, match="base64 Ed25519 public key"):
        PublicKey.from_b64(text)


@pytest.mark.parametrize("size", [0, 31, 33])
def test_from_raw_refuses_wrong_length(size: int) -> None:
    with pytest.raises(KeyFormatError):
        PublicKey.from_raw(b"\x02" * size)


def test_from_pem_refuses_other_algorithms_and_garbage() -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFormatError, match="not an Ed25519 public key"):
        PublicKey.from_pem(ec_pem)
    with pytest.raises(KeyFormatError, match="not a PEM public key"):
        PublicKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


# --- sign and verify ------------------------------------------------------------------------------


def test_sign_then_verify(key: SigningKey) -> None:
    message = b"batch header bytes"
    key.public.verify(key.sign(message), message)


def test_verify_refuses_another_message(key: SigningKey) -> None:
    signature = key.sign(b"one")
    with pytest.raises(SignatureInvalid, match="does not verify"):
        key.public.verify(signature, b"two")


def test_verify_refuses_another_key(key: SigningKey) -> None:
    signature = key.sign(b"m")
    with pytest.raises(SignatureInvalid):
        SigningKey.from_seed(b"\x09" * 32).public.verify(signature, b"m")


def test_verify_refuses_every_single_bit_flip_of_the_signature(key: SigningKey) -> None:
    message = b"m" * 100
    signature = key.sign(message)
    for bit in range(len(signature) * 8):
        flipped = bytearray(signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(SignatureInvalid):
            key.public.verify(bytes(flipped), message)


@pytest.mark.parametrize("size", [0, 1, 63, 65, 128])
def test_verify_refuses_wrong_signature_length(key: SigningKey, size: int) -> None:
    with pytest.raises(SignatureInvalid, match="malformed"):
        key.public.verify(b"\x00" * size, b"m")


def test_verify_refuses_non_bytes_signature(key: SigningKey) -> None:
    with pytest.raises(SignatureInvalid, match="malformed"):
        key.public.verify("x" * 64, b"m")  # type: ignore[arg-type]


def test_verify_uses_the_key_object_parsed_once(
    key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = PublicKey.from_raw(key.public.raw)

    class NoParsing:
        @staticmethod
        def from_public_bytes(data: bytes) -> None:
            raise AssertionError("verify re-parsed the public key")

    monkeypatch.setattr(auth.keys, "Ed25519PublicKey", NoParsing)
    public.verify(key.sign(b"hot path"), b"hot path")


def test_generate_makes_distinct_keys() -> None:
    assert SigningKey.generate().key_id != SigningKey.generate().key_id


def test_from_seed_is_deterministic_and_checks_length() -> None:
    assert SigningKey.from_seed(b"\x05" * 32).key_id == SigningKey.from_seed(b"\x05" * 32).key_id
    with pytest.raises(KeyFormatError):
        SigningKey.from_seed(b"\x05" * 31)


def test_repr_does_not_show_the_private_key(key: SigningKey) -> None:
    text = repr(key)
    assert key.key_id in text
    assert bytes(range(32)).hex() not in text
    assert "PRIVATE" not in text


# --- key files ------------------------------------------------------------------------------------


def test_save_then_load(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "node.key"
    key.save(path)
    loaded = SigningKey.load(path)
    assert loaded.key_id == key.key_id
    loaded.public.verify(loaded.sign(b"x"), b"x")
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_saved_key_is_mode_0600_even_with_a_permissive_umask(
    tmp_path: Path, key: SigningKey
) -> None:
    old = os.umask(0)
    try:
        key.save(tmp_path / "node.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "node.key").stat().st_mode) == 0o600


def test_save_leaves_no_temporary_files(tmp_path: Path, key: SigningKey) -> None:
    key.save(tmp_path / "node.key")
    key.save(tmp_path / "node.key", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["node.key"]


def test_save_refuses_to_overwrite(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(b"precious")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        key.save(path)
    assert path.read_bytes() == b"precious"


def test_save_overwrites_when_asked(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "node.key"
    SigningKey.generate().save(path)
    key.save(path, overwrite=True)
    assert SigningKey.load(path).key_id == key.key_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_into_missing_directory_is_a_key_file_error(tmp_path: Path, key: SigningKey) -> None:
    with pytest.raises(KeyFileError, match="cannot write"):
        key.save(tmp_path / "missing" / "node.key")


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    with pytest.raises(KeyFileError, match="not found") as info:
        SigningKey.load(path)
    assert str(path) in info.value.message


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="directory"):
        SigningKey.load(tmp_path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_load_unreadable_file(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "node.key"
    key.save(path)
    path.chmod(0)
    try:
        with pytest.raises(KeyFileError, match="permission denied"):
            SigningKey.load(path)
    finally:
        path.chmod(0o600)


def test_load_garbage(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(b"hello")
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        SigningKey.load(path)


def test_load_encrypted_key(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(KeyFileError, match="encrypted"):
        SigningKey.load(path)


def test_load_other_algorithm(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="expected an Ed25519 key"):
        SigningKey.load(path)
