"""The PDQ index file: saved and loaded to the same answers; damage is refused, not used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exchange.pdq import index as pdq_index
from exchange.pdq.codes import WORDS
from exchange.pdq.index import PdqIndex
from exchange.pdq.persist import IndexFileError, load, save


def test_save_and_load_answer_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdq_index, "DELTA_CAP", 32)
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 2**64, size=(100, WORDS), dtype=np.uint64)
    index = PdqIndex.from_codes(stored[:80])
    index.add(stored[80:])  # 20 in the delta
    index.remove(stored[:3])
    path = tmp_path / "pdq.npz"
    save(index, path, stamp=42)
    loaded, stamp = load(path)
    assert stamp == 42
    assert len(loaded) == len(index) == 97
    for radius in (0, 31):
        a, b = index.search(stored, radius), loaded.search(stored, radius)
        assert a.ids.tolist() == b.ids.tolist()
        assert a.query.tolist() == b.query.tolist()
    assert len(loaded.search(stored[:3], 0)) == 0


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    index = PdqIndex.from_codes(rng.integers(0, 2**64, size=(50, WORDS), dtype=np.uint64))
    path = tmp_path / "pdq.npz"
    save(index, path, stamp=1)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte inside an array: its CRC-32 no longer holds
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexFileError):
        load(path)
    save(index, path, stamp=1)
    data = dict(np.load(path))
    data["ids0"] = data["ids0"] + np.uint32(50)  # ids past the codes
    np.savez(path, **data)
    with pytest.raises(IndexFileError, match="past"):
        load(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(IndexFileError):
        load(path)
    with pytest.raises(IndexFileError):
        load(tmp_path / "missing.npz")
