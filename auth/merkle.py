"""RFC 6962 Merkle trees over the serialized reports of one batch.

A batch is signed once, over the Merkle root of its payloads; each stored report keeps its inclusion
proof, so any single report can later be checked against the batch's signed header on its own.
Hashing follows RFC 6962 §2.1 (leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right),
split at the largest power of two below n); proofs are checked with the RFC 9162 §2.1.3.2 algorithm.

The tree is built bottom-up, level by level, carrying an odd last node up unchanged; that gives the
same tree as the RFC's recursive split and lets all proofs be read off the levels in O(n log n).

An inclusion proof binds the leaf, its index and the root, but not the tree size: leaf 0 of a
5-leaf tree has the same proof shape as in a 7-leaf tree. The size is bound by the signed header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from auth.errors import ProofInvalid

__all__ = [
    "HASH_SIZE",
    "decode_proof",
    "encode_proof",
    "leaf_hash",
    "root",
    "root_and_proofs",
    "verify_inclusion",
]

HASH_SIZE = 32
_LEAF = b"\x00"
_NODE = b"\x01"
_EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """All levels of the tree, leaf hashes first, the root level last."""
    level = [leaf_hash(leaf) for leaf in leaves]
    levels = [level]
    while len(level) > 1:
        up = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            up.append(level[-1])
        levels.append(up)
        level = up
    return levels


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of the raw payloads ``leaves`` (SHA-256 of nothing for no leaves)."""
    if not leaves:
        return _EMPTY_ROOT
    return _levels(leaves)[-1][0]


def root_and_proofs(leaves: Sequence[bytes]) -> tuple[bytes, list[tuple[bytes, ...]]]:
    """The root and, for every leaf in order, its inclusion proof (audit path, bottom-up)."""
    if not leaves:
        return _EMPTY_ROOT, []
    levels = _levels(leaves)
    proofs: list[tuple[bytes, ...]] = []
    for index in range(len(leaves)):
        path: list[bytes] = []
        i = index
        for level in levels[:-1]:
            sibling = i ^ 1
            # No sibling means the node was carried up unchanged: nothing to add at this level.
            if sibling < len(level):
                path.append(level[sibling])
            i >>= 1
        proofs.append(tuple(path))
    return levels[-1][0], proofs


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Return if ``leaf`` (raw payload) is at ``index`` in a tree of ``tree_size`` with that root.

    RFC 9162 §2.1.3.2; raises ProofInvalid otherwise.
    """
    if index < 0 or tree_size <= 0 or index >= tree_size:
        raise ProofInvalid(f"leaf index {index} is outside a tree of {tree_size} leaves")
    if len(expected_root) != HASH_SIZE:
        raise ProofInvalid(f"root must be {HASH_SIZE} bytes, got {len(expected_root)}")
    r, sn = _fold_proof(leaf_hash(leaf), index, tree_size - 1, proof)
    if sn != 0:
        raise ProofInvalid("inclusion proof is shorter than the path to the root")
    if not hmac.compare_digest(r, expected_root):
        raise ProofInvalid("inclusion proof does not lead to the expected root")


def _fold_proof(r: bytes, fn: int, sn: int, proof: Sequence[bytes]) -> tuple[bytes, int]:
    """RFC 9162 §2.1.3.2's loop: hash ``r`` up the path; (the result, what is left of ``sn``).

    ``fn`` is the leaf index and ``sn`` the last index; ``sn`` is 0 once the path reaches the root.
    """
    for p in proof:
        if len(p) != HASH_SIZE:
            raise ProofInvalid(f"proof element must be {HASH_SIZE} bytes, got {len(p)}")
        if sn == 0:
            raise ProofInvalid("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                # fn is the last node of its level and was carried up: skip those levels.
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r, sn


def encode_proof(proof: Sequence[bytes]) -> bytes:
    """Compact storage form: the hashes concatenated."""
    for p in proof:
        if len(p) != HASH_SIZE:
            raise ProofInvalid(f"proof element must be {HASH_SIZE} bytes, got {len(p)}")
    return b"".join(proof)


def decode_proof(data: bytes) -> tuple[bytes, ...]:
    if len(data) % HASH_SIZE:
        raise ProofInvalid(f"encoded proof length {len(data)} is not a multiple of {HASH_SIZE}")
    return tuple(data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE))
