"""RFC 6962 Merkle trees: known answers, a recursive reference, and tamper detection."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth import merkle
from auth.errors import ProofInvalid

# The leaves of the certificate-transparency reference implementation's Merkle tree tests.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# Roots of the first n CT leaves, n = 0..8.
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (index, tree size, audit path) from the same tests.
CT_PROOFS = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


# --- a literal transcription of RFC 6962 §2.1 and §2.1.1, as the reference ------------------------


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _split(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _split(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [f"report-{i}".encode() * (i % 3 + 1) for i in range(n)]


# --- known answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(len(CT_ROOTS)))
def test_ct_roots(n: int) -> None:
    assert merkle.root(CT_LEAVES[:n]).hex() == CT_ROOTS[n]
    assert ref_mth(CT_LEAVES[:n]).hex() == CT_ROOTS[n]


@pytest.mark.parametrize(("index", "size", "path"), CT_PROOFS)
def test_ct_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    root, proofs = merkle.root_and_proofs(CT_LEAVES[:size])
    assert root.hex() == CT_ROOTS[size]
    assert [p.hex() for p in proofs[index]] == path
    merkle.verify_inclusion(CT_LEAVES[index], index, size, proofs[index], root)


def test_leaf_and_node_hashing_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    # A two-leaf tree must not equal the leaf hash of the two leaf hashes concatenated.
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.root([b"a", b"b"]) == hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle.root([b"a", b"b"]) != merkle.leaf_hash(a + b)


def test_empty_tree() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    assert merkle.root_and_proofs([]) == (hashlib.sha256(b"").digest(), [])


# --- agreement with the reference -----------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 34))
def test_every_proof_matches_the_rfc_and_verifies(n: int) -> None:
    leaves = leaves_of(n)
    root, proofs = merkle.root_and_proofs(leaves)
    assert root == ref_mth(leaves) == merkle.root(leaves)
    assert len(proofs) == n
    for i, leaf in enumerate(leaves):
        assert list(proofs[i]) == ref_path(i, leaves)
        merkle.verify_inclusion(leaf, i, n, proofs[i], root)


@pytest.mark.parametrize("n", [64, 65, 100, 127, 128, 129, 1000])
def test_larger_trees_match_the_reference_root(n: int) -> None:
    leaves = leaves_of(n)
    assert merkle.root(leaves) == ref_mth(leaves)


def test_a_thousand_leaves_take_milliseconds() -> None:
    # Guards the O(n log n) construction: one root per leaf (O(n²)) takes over a second here.
    leaves = [bytes(512) + i.to_bytes(4, "big") for i in range(1000)]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        merkle.root_and_proofs(leaves)
        best = min(best, time.perf_counter() - start)
    assert best < 0.25


# --- verification failures ------------------------------------------------------------------------


def _proof(n: int, i: int) -> tuple[list[bytes], bytes, tuple[bytes, ...]]:
    leaves = leaves_of(n)
    root, proofs = merkle.root_and_proofs(leaves)
    return leaves, root, proofs[i]


@pytest.mark.parametrize(("index", "size"), [(-1, 5), (5, 5), (6, 5), (0, 0), (0, -1)])
def test_index_outside_tree(index: int, size: int) -> None:
    leaves, root, proof = _proof(5, 0)
    with pytest.raises(ProofInvalid, match="outside"):
        merkle.verify_inclusion(leaves[0], index, size, proof, root)


def test_proof_too_long_or_too_short() -> None:
    leaves, root, proof = _proof(6, 2)
    with pytest.raises(ProofInvalid, match="longer"):
        merkle.verify_inclusion(leaves[2], 2, 6, (*proof, proof[0]), root)
    with pytest.raises(ProofInvalid, match="shorter"):
        merkle.verify_inclusion(leaves[2], 2, 6, proof[:-1], root)


def test_malformed_hashes() -> None:
    leaves, root, proof = _proof(4, 1)
    with pytest.raises(ProofInvalid, match="32 bytes"):
        merkle.verify_inclusion(leaves[1], 1, 4, (proof[0][:31], *proof[1:]), root)
    with pytest.raises(ProofInvalid, match="root must be 32 bytes"):
        merkle.verify_inclusion(leaves[1], 1, 4, proof, root + b"\x00")


def test_a_proof_for_another_leaf_fails() -> None:
    leaves, root, proof = _proof(7, 3)
    with pytest.raises(ProofInvalid, match="expected root"):
        merkle.verify_inclusion(leaves[4], 3, 7, proof, root)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _fails(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    try:
        merkle.verify_inclusion(leaf, index, size, proof, root)
    except ProofInvalid:
        return True
    return False


def _shape(index: int, size: int) -> list[str]:
    """The side ("L"/"R") of each audit-path element, i.e. the path from the root to the leaf."""
    shape, fn, sn = [], index, size - 1
    while sn > 0:
        if fn & 1 or fn == sn:
            shape.append("L")
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            shape.append("R")
        fn, sn = fn >> 1, sn >> 1
    return shape


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    # Distinct leaves: with two equal leaves, "this leaf is at the other index" would be true.
    leaves = draw(st.lists(st.binary(max_size=24), min_size=1, max_size=40, unique=True))
    return leaves, draw(st.integers(0, len(leaves) - 1))


@settings(max_examples=300, deadline=None)
@given(case=tree_and_index(), data=st.data())
def test_any_single_bit_change_is_detected(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, i = case
    n = len(leaves)
    root, proofs = merkle.root_and_proofs(leaves)
    proof = proofs[i]
    leaf = leaves[i]
    assert not _fails(leaf, i, n, proof, root)

    # The leaf (an empty leaf has no bit to flip, so it gains a byte instead).
    changed = _flip(leaf, data.draw(st.integers(0, len(leaf) * 8 - 1))) if leaf else b"\x00"
    assert _fails(changed, i, n, proof, root)

    # Any element of the proof.
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        tampered = (*proof[:j], _flip(proof[j], bit), *proof[j + 1 :])
        assert _fails(leaf, i, n, tampered, root)

    # The root.
    assert _fails(leaf, i, n, proof, _flip(root, data.draw(st.integers(0, 255))))

    # The index: in a tree every leaf has its own path from the root, so this always fails.
    assert _fails(leaf, i ^ (1 << data.draw(st.integers(0, 7))), n, proof, root)


@settings(max_examples=300, deadline=None)
@given(case=tree_and_index(), bit=st.integers(0, 7))
def test_a_size_change_is_detected_unless_the_path_is_the_same(
    case: tuple[list[bytes], int], bit: int
) -> None:
    # An audit path does not encode the tree size; only a path of another shape gives it away.
    # That is why the signed batch header carries the count next to the root.
    leaves, i = case
    n = len(leaves)
    root, proofs = merkle.root_and_proofs(leaves)
    other = n ^ (1 << bit)
    same_path = other > i and _shape(i, other) == _shape(i, n)
    assert _fails(leaves[i], i, other, proofs[i], root) is not same_path


def test_size_is_not_bound_by_the_proof_alone() -> None:
    leaves, root, proof = _proof(5, 0)
    merkle.verify_inclusion(leaves[0], 0, 7, proof, root)  # 0b101 -> 0b111, same path
    with pytest.raises(ProofInvalid):
        merkle.verify_inclusion(leaves[0], 0, 4, proof, root)  # 0b101 -> 0b100


def test_shape_helper_matches_proof_lengths() -> None:
    for n in range(1, 34):
        _, proofs = merkle.root_and_proofs(leaves_of(n))
        for i in range(n):
            assert len(_shape(i, n)) == len(proofs[i])


# --- compact encoding -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5, 33])
def test_encode_decode_round_trip(n: int) -> None:
    _, proofs = merkle.root_and_proofs(leaves_of(n))
    for proof in proofs:
        encoded = merkle.encode_proof(proof)
        assert len(encoded) == 32 * len(proof)
        assert merkle.decode_proof(encoded) == proof


@pytest.mark.parametrize("size", [1, 31, 33, 65])
def test_decode_refuses_partial_hashes(size: int) -> None:
    with pytest.raises(ProofInvalid, match="multiple of 32"):
        merkle.decode_proof(b"\x00" * size)


def test_encode_refuses_wrong_sized_elements() -> None:
    with pytest.raises(ProofInvalid, match="32 bytes"):
        merkle.encode_proof([b"\x00" * 32, b"\x00" * 31])
