"""A real file system that can fill up and fail, for the fault-injection bench (bench/faults.py).

``LoopDisk`` formats a sparse image as ext4 (no reserved blocks, ``errors=remount-ro``) and
loop-mounts it; a node's database lives there. Then:

* ``fill()`` takes every free block with a filler file, so the next write gets ENOSPC
  (SQLite: "database or disk is full"); ``unfill()`` gives the space back;
* ``fail_read_only()`` makes ext4 report an error on the device: the kernel remounts it read-only
  under the running node (``emergency_ro``), as it does when a disk goes bad — every write from
  then on fails with EROFS;
* ``repair()`` (with the node stopped) is what an operator does next: unmount, ``e2fsck -fy``,
  mount again.

Needs root (mount, loop devices); ``LoopDisk.available()`` says whether this machine allows it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


class LoopDisk:
    def __init__(self, image: Path, mountpoint: Path, *, size_mib: int = 16384) -> None:
        self.image, self.mountpoint = image, mountpoint
        self.filler = mountpoint / ".filler"
        with image.open("wb") as f:
            f.truncate(size_mib * 1024 * 1024)  # sparse: costs what is written
        made = _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
        if made.returncode != 0:
            raise RuntimeError(f"mkfs.ext4 failed: {made.stderr.strip()}")
        mountpoint.mkdir(parents=True, exist_ok=True)
        self._mount()

    @staticmethod
    def available() -> str | None:
        """None if loop mounts work here, else why not."""
        if os.geteuid() != 0:
            return "needs root (mount, loop devices)"
        for tool in ("mkfs.ext4", "e2fsck", "mount", "umount"):
            if _run("sh", "-c", f"command -v {tool}").returncode != 0:
                return f"{tool} is not installed"
        if not Path("/dev/loop-control").exists():
            return "no loop devices"
        return None

    def _mount(self) -> None:
        done = _run("mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.mountpoint))
        if done.returncode != 0:
            raise RuntimeError(f"mount failed: {done.stderr.strip()}")

    @property
    def device(self) -> str:
        return _run("findmnt", "-no", "SOURCE", str(self.mountpoint)).stdout.strip()

    def fill(self) -> int:
        """Take every free block; returns the bytes taken."""
        taken = 0
        with self.filler.open("ab") as f:
            step = 1 << 30
            while step >= 4096:
                try:
                    os.posix_fallocate(f.fileno(), taken, step)
                    taken += step
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    step //= 2
        return taken

    def unfill(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def fail_read_only(self) -> None:
        name = Path(self.device).name
        Path(f"/sys/fs/ext4/{name}/trigger_fs_error").write_text("ihx fault bench\n")

    def read_only(self) -> bool:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 3 and parts[1] == str(self.mountpoint):
                # After an error ext4 keeps "rw" in the options and adds "emergency_ro".
                options = parts[3].split(",")
                return "ro" in options or "emergency_ro" in options
        return False

    def repair(self) -> str:
        """Unmount, check and mount again (the node must be stopped); e2fsck's summary line."""
        done = _run("umount", str(self.mountpoint))
        if done.returncode != 0:
            raise RuntimeError(f"umount failed: {done.stderr.strip()}")
        checked = _run("e2fsck", "-fy", str(self.image))
        # 0: clean, 1: errors corrected; anything higher means the file system is lost.
        if checked.returncode > 1:
            raise RuntimeError(f"e2fsck failed ({checked.returncode}): {checked.stdout[-300:]}")
        self._mount()
        self.unfill()
        lines = checked.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    def close(self) -> None:
        _run("umount", "-l", str(self.mountpoint))
