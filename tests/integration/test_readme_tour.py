"""The README's tour, run as written: every ```sh tour block, in order, as one bash script.

The README promises a sequence a new operator can paste top to bottom; this test is what keeps
that promise. It extracts the blocks tagged ``sh tour`` from README.md, runs them with
``set -euo pipefail`` in an empty directory with ``ihx`` (this virtual environment's) first on
the PATH, on loopback ports that are free now (``CO_PORT``, ``NL_PORT``, ``DE_PORT``, which the
README reads with defaults) and a fresh PostgreSQL database (``PG_URL``) — the only things
changed from what a reader runs. Any failing command fails the test, with the script's output.

Beyond "every command succeeded", it checks what the tour claims happened: the submitted report
is stored at the German node it was routed to and receipted in the Dutch node's log, the partner
pulled its case, the manifest epoch 2 binds nl-eokm's TLS identity, and the PostgreSQL database
was migrated. The nodes run in the background of the script; the whole process group is ended at
the end, passed or failed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from auth.manifest import parse_manifest, parse_signed_manifest
from exchange.batch_entries import reports_in
from exchange.store.migrate import current_revision, head_revision
from exchange.tools.provision import free_port
from tests.dbs import Databases, postgresql_admin_url

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR_BLOCK = re.compile(r"^```sh tour\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# About 30 ihx commands, each paying the CLI's start-up: ~90 s on an idle 2-core machine, far
# more while other work shares it. The bound only stops a hung script (a node that never came up).
SCRIPT_TIMEOUT_S = 420.0


def tour_script() -> str:
    blocks = TOUR_BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 8, "README.md lost its ```sh tour blocks"
    return "set -euo pipefail\n" + "\n".join(blocks)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    dbs = Databases(tmp_path, postgresql_admin_url())
    try:
        yield dbs.new(empty=True)
    finally:
        dbs.close()


def _living(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (a zombie waiting for its reaper does not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _end_group(pgid: int) -> None:
    """SIGTERM the script's process group (the background nodes), SIGKILL what outlives 30 s."""
    for sig, wait_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while _living(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _living(pgid):
            return


def run_tour(workdir: Path, pg_url: str) -> tuple[str, dict[str, int]]:
    ports = {"CO_PORT": free_port(), "NL_PORT": free_port(), "DE_PORT": free_port()}
    env = {
        **os.environ,
        **{name: str(port) for name, port in ports.items()},
        "PG_URL": pg_url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for name in [n for n in env if n.startswith("IHX_")]:
        del env[name]  # the reader's shell has none of the suite's settings
    script = workdir / "tour.sh"
    script.write_text(tour_script(), encoding="utf-8")
    process = subprocess.Popen(
        ["bash", str(script)],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the background nodes are ended with it
    )
    try:
        output, _ = process.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _end_group(process.pid)
        output, _ = process.communicate()
        pytest.fail(f"the tour did not finish in {SCRIPT_TIMEOUT_S:.0f} s:\n{output}")
    finally:
        _end_group(process.pid)
    if process.returncode != 0:
        logs = "".join(
            f"\n--- {p.relative_to(workdir)}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(workdir.glob("*/run.log"))
        )
        pytest.fail(f"the tour failed (exit {process.returncode}):\n{output}{logs}")
    return output, ports


def _rows(database: Path, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


# The tour chooses its own databases (SQLite files and a PostgreSQL database of its own), so the
# suite's PostgreSQL pass would run exactly the same script again: it runs in the default pass.
@pytest.mark.skipif(
    bool(os.environ.get("IHX_TEST_DATABASE_URL")),
    reason="the tour names its own databases; it runs once, in the default (SQLite) pass",
)
@pytest.mark.timeout(SCRIPT_TIMEOUT_S + 80)
def test_the_readme_tour_runs_as_written(tmp_path: Path, pg_url: str) -> None:
    output, _ports = run_tour(tmp_path, pg_url)

    # The submitted report: routed to de-eco, stored there, receipted in nl-eokm's log.
    submitted = re.search(r"^report\s+(r-[0-9a-f]{32})$", output, re.MULTILINE)
    assert submitted is not None, output
    report_id = submitted[1]
    assert re.search(r"^decision\s+de-eco\b", output, re.MULTILINE), output
    assert _rows(
        tmp_path / "de-node/node.db", "SELECT role FROM reports WHERE id = :r", r=report_id
    )
    receipted = _rows(
        tmp_path / "nl-node/node.db",
        "SELECT member, detail FROM routing_log WHERE kind = 'receipted'",
    )
    assert [m for m, detail in receipted if report_id in reports_in(detail)] == ["de-eco"]

    # The partner pulled the case of the submitted URL at the holder.
    pulled = [json.loads(line) for line in (tmp_path / "cases.jsonl").read_text().splitlines()]
    assert any("example.de/gallery/1.jpg" in json.dumps(case) for case in pulled)

    # The re-signed manifest binds nl-eokm's certificate, at a new epoch every node holds.
    signed = (tmp_path / "nl-node/manifest.json").read_bytes()
    manifest = parse_manifest(parse_signed_manifest(signed).document)
    assert manifest.epoch == 2
    assert manifest.member("nl-eokm").tls_identity == "spiffe://ihx/nl-eokm"
    assert (tmp_path / "de-node/manifest.json").read_bytes() == signed

    # The PostgreSQL node's database was migrated to head, and its settings name it.
    engine = create_engine(pg_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert pg_url in (tmp_path / "pg-node/node.toml").read_text(encoding="utf-8")
