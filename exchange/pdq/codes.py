"""PDQ hashes as 256-bit codes: four little-endian 64-bit words per hash, one numpy row each.

The hex a report carries (64 digits) is read as 32 bytes and viewed as four ``uint64`` words;
the bit order only has to be the same for every hash, since only Hamming distances are used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

WORDS = 4
BITS = 64 * WORDS
HEX_DIGITS = BITS // 4

Codes = npt.NDArray[np.uint64]


def to_codes(hexes: Iterable[str]) -> Codes:
    """Rows of four words from 64-digit hex strings (validated by the domain's ``parse_hash``)."""
    raw = b"".join(bytes.fromhex(h) for h in hexes)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(-1, WORDS)


def to_hex(codes: Codes) -> list[str]:
    """The hex of each row, as ``to_codes`` read it."""
    raw = np.ascontiguousarray(codes, dtype="<u8").tobytes()
    return [raw[i : i + 32].hex() for i in range(0, len(raw), 32)]


def popcounts(x: Codes) -> npt.NDArray[np.int16]:
    """Set bits of each row: the four words' counts added by hand, four times faster than a
    ``sum(axis=1)`` over rows of four. Two words (<= 128) still fit the counts' ``uint8``;
    the halves are added as ``int16``, since a whole row can have 256."""
    c = np.bitwise_count(x)
    out: npt.NDArray[np.int16] = (c[:, 0] + c[:, 1]).astype(np.int16) + (c[:, 2] + c[:, 3])
    return out


def distances(a: Codes, b: Codes) -> npt.NDArray[np.int16]:
    """Hamming distance of each row of ``a`` to the same row of ``b``."""
    return popcounts(a ^ b)


def hex_distance(a: str, b: str) -> int:
    """Hamming distance of two PDQ hashes given as hex (the CLI, tests)."""
    return int(distances(to_codes([a]), to_codes([b]))[0])


def empty() -> Codes:
    return np.zeros((0, WORDS), dtype=np.uint64)


def stack(parts: Sequence[Codes]) -> Codes:
    return np.concatenate(parts) if parts else empty()
