"""The PDQ index in a file, so a restart loads it instead of rebuilding its tables.

One uncompressed ``.npz`` (numpy's zip of arrays, read without pickle): the codes, the live
mask, the tables and a ``stamp`` the caller chooses (the node stores its sightings' generation,
so a file older than the database is noticed and the index rebuilt from the sightings).
Written to a temporary file beside it, flushed to disk and renamed over the old one, so a crash
leaves the old file or the new one. Loading checks every array's type and shape and the tables'
bounds before the index is used: a damaged file is an ``IndexFileError``, never a wrong answer.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from exchange.pdq.codes import WORDS, Codes
from exchange.pdq.index import LARGE, SMALL, Layout, PdqIndex, Table

FORMAT = 1


class IndexFileError(Exception):
    """The file is missing, damaged or of another format (the caller rebuilds the index)."""


def save(index: PdqIndex, path: Path, stamp: int) -> None:
    state = index.state
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "format": np.array(
            [FORMAT, stamp, state.main_n, state.layout.substrings, state.layout.bits]
        ),
        "codes": state.codes[: state.n],
        "live": state.live[: state.n],
    }
    for t, (offsets, ids) in enumerate(state.tables):
        arrays[f"offsets{t}"] = offsets
        arrays[f"ids{t}"] = ids
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, allow_pickle=False, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path) -> tuple[PdqIndex, int]:
    """The index saved at ``path`` and its stamp."""
    try:
        with np.load(path, allow_pickle=False) as data:
            head = _array(data, "format", np.int64, (5,))
            version, stamp, main_n, substrings, bits = (int(x) for x in head)
            if version != FORMAT:
                raise IndexFileError(f"{path}: format {version}, expected {FORMAT}")
            layout = Layout(substrings, bits)
            if layout not in (SMALL, LARGE):
                raise IndexFileError(f"{path}: unknown layout {layout}")
            codes: Codes = _array(data, "codes", np.uint64, (-1, WORDS))  # type: ignore[assignment]
            live: npt.NDArray[np.bool_] = _array(data, "live", np.bool_, (len(codes),))  # type: ignore[assignment]
            if not 0 <= main_n <= len(codes):
                raise IndexFileError(f"{path}: {main_n} indexed of {len(codes)} codes")
            tables = [_table(data, t, layout, main_n) for t in range(layout.substrings)]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise IndexFileError(f"{path}: {exc}") from exc
    return PdqIndex.from_state(codes, live, main_n, layout, tables), stamp


def _array(
    data: np.lib.npyio.NpzFile, name: str, dtype: type, shape: tuple[int, ...]
) -> npt.NDArray[np.generic]:
    a = data[name]
    if a.dtype != np.dtype(dtype) or a.ndim != len(shape):
        raise IndexFileError(f"{name}: {a.dtype} {a.shape}")
    if any(want not in (-1, got) for want, got in zip(shape, a.shape, strict=True)):
        raise IndexFileError(f"{name}: shape {a.shape}, expected {shape}")
    return a


def _table(data: np.lib.npyio.NpzFile, t: int, layout: Layout, main_n: int) -> Table:
    """Table ``t``, its bounds checked (each array's CRC-32 is checked by ``zipfile`` as it is
    read, so a damaged disk block is refused). A table not ordered as ``build_table`` makes it
    could miss a match but never return a false one: every candidate is verified in full."""
    offsets: npt.NDArray[np.uint32] = _array(data, f"offsets{t}", np.uint32, (layout.buckets + 1,))  # type: ignore[assignment]
    ids: npt.NDArray[np.uint32] = _array(data, f"ids{t}", np.uint32, (main_n,))  # type: ignore[assignment]
    if offsets[0] != 0 or offsets[-1] != main_n or np.any(offsets[1:] < offsets[:-1]):
        raise IndexFileError(f"table {t}: offsets out of order")
    if main_n and int(ids.max()) >= main_n:
        raise IndexFileError(f"table {t}: an id past the indexed codes")
    return offsets, ids
