"""Run one ihx node as its own process, so a test can ``kill -9`` it — and the parent's handle.

As a script: ``python tests/integration/node_process.py NODE.TOML`` loads the settings, builds
and starts the ``Node``, prints ``ready`` and blocks until SIGTERM (then stops the node cleanly
and exits 0). SIGKILL gives it no chance to clean up, which is the point.

In the tests: ``NodeProcess(config, log)`` starts it, waits for ``ready`` and can ``kill()``
(SIGKILL), ``terminate()`` (SIGTERM), ``pause()`` / ``resume()`` (SIGSTOP / SIGCONT) or
``restart()`` it. Its stdout and stderr go to a log
file, quoted when it fails to start, so no pipe can fill up and block the node.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

READY = "ready"
_REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} NODE.TOML", file=sys.stderr)
        return 2
    from exchange.node import Node
    from exchange.settings import load_settings

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = Node(load_settings(argv[1]))
    node.start()
    print(READY, flush=True)
    while not stop.wait(0.5):
        pass
    node.stop()
    return 0


class NodeProcess:
    """A node in a child process (parent side)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.alive():
            raise RuntimeError("the node process is already running")
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts} ---\n".encode())
            out.flush()
            offset = out.tell()
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p
            )
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=_REPO,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while True:
            with self.log.open("rb") as f:
                f.seek(offset)
                lines = f.read().decode(errors="replace").splitlines()
            if READY in lines:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                tail = "\n".join(lines[-30:])
                raise AssertionError(f"node process {self.config} did not start:\n{tail}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process freezes with its sockets open — a peer that stopped answering."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def terminate(self, timeout: float = 15.0) -> None:
        """SIGTERM (a clean stop), SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self, timeout: float = 30.0) -> None:
        self.kill()
        self.start(timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
