"""``ihx verify-report``: a stored report re-verified on its own, and tampering caught per check.

The tampering is done the way an attacker with access to the database file would: by editing
the row directly in SQLite while the node runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from exchange.cli.main import app
from exchange.domain import (
    Classification,
    ContentHash,
    HashAlgorithm,
    Submission,
    make_facts,
    make_item,
)
from tests.exchange.cli.conftest import Running, wait_for

HASH_HEX = "c0ffee" + "0" * 58


@dataclass
class Delivered:
    federation: Running
    remote_id: str  # nl-eokm → de-eco, receipted
    local_id: str  # nl-eokm's own case


def _submission(url: str, hex_: str, notes: str) -> Submission:
    item = make_item([ContentHash(HashAlgorithm.SHA256, hex_)], Classification.BASELINE)
    return Submission(url, make_facts(notes=notes), (item,))


@pytest.fixture
def delivered(federation: Running) -> Delivered:
    with federation.intake("nl-eokm") as client:
        remote = client.submit(_submission("https://example.de/v", HASH_HEX, "hello world"))
        local = client.submit(_submission("https://example.nl/v", "d" * 64, ""))
    wait_for(
        lambda: bool(
            federation.query(
                "nl-eokm",
                "select 1 FROM deliveries d JOIN reports r ON r.seq = d.report_seq where r.id = ?",
                (remote.report_id,),
            )
        )
    )
    return Delivered(federation, remote.report_id, local.report_id)


def verify(
    runner: CliRunner, fed: Running, member: str, report_id: str, *extra: str
) -> tuple[int, str]:
    result = runner.invoke(
        app, ["verify-report", report_id, "--config", str(fed.config(member)), *extra]
    )
    return result.exit_code, result.stdout + result.stderr


def marks(output: str) -> dict[str, bool]:
    """Check name → passed, from the ✓/✗ lines."""
    found = {}
    for line in output.splitlines():
        if line[:2] in ("✓ ", "✗ "):
            found[line[2:].split(":")[0]] = line.startswith("✓")
    return found


RECEIVER_CHECKS = {
    "report id matches its contents",
    "leaf of the envelope (Merkle inclusion proof)",
    "envelope signature by the sender's key",
    "origin is the envelope's signer",
    "our receipt is signed by us and names the report",
}
ORIGIN_CHECKS = {
    "report id matches its contents",
    "our batch header is signed by us",
    "the receiver's receipt signature",
    "the receipt names this report",
}


def test_all_checks_pass_on_the_receiver(runner: CliRunner, delivered: Delivered) -> None:
    code, out = verify(runner, delivered.federation, "de-eco", delivered.remote_id)
    assert code == 0, out
    assert marks(out) == dict.fromkeys(RECEIVER_CHECKS, True)
    assert "signed by nl-eokm with ed25519:" in out
    assert "new-case c-" in out
    assert out.rstrip().endswith("all checks passed")


def test_all_checks_pass_on_the_origin(runner: CliRunner, delivered: Delivered) -> None:
    code, out = verify(runner, delivered.federation, "nl-eokm", delivered.remote_id)
    assert code == 0, out
    assert marks(out) == dict.fromkeys(ORIGIN_CHECKS, True)
    code, out = verify(runner, delivered.federation, "nl-eokm", delivered.local_id)
    assert code == 0, out
    assert marks(out) == {"report id matches its contents": True, "held in a local case": True}


def test_json_output(runner: CliRunner, delivered: Delivered) -> None:
    code, out = verify(runner, delivered.federation, "de-eco", delivered.remote_id, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["report_id"] == delivered.remote_id
    assert doc["role"] == "received"
    assert doc["ok"] is True
    assert {c["name"] for c in doc["checks"]} == RECEIVER_CHECKS


def test_unknown_report_is_an_error(runner: CliRunner, delivered: Delivered) -> None:
    code, out = verify(runner, delivered.federation, "de-eco", "r-" + "0" * 32)
    assert code == 2
    assert out.startswith("ihx: error: no report")
    assert len(out.splitlines()) == 1


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


Tamper = Callable[[Delivered], None]


def _edit_blob(
    d: Delivered,
    member: str,
    table: str,
    column: str,
    where: str,
    key: tuple[object, ...],
    change: Callable[[bytes], bytes],
) -> None:
    ((value,),) = d.federation.query(member, f"select {column} from {table} where {where}", key)
    d.federation.execute(
        member, f"update {table} set {column} = ? where {where}", (change(value), *key)
    )


def _receiver_row(column: str, change: Callable[[bytes], bytes]) -> Tamper:
    return lambda d: _edit_blob(d, "de-eco", "reports", column, "id = ?", (d.remote_id,), change)


def _inbox(column: str, change: Callable[[bytes], bytes]) -> Tamper:
    return lambda d: _edit_blob(
        d, "de-eco", "inbox", column, "sender = ? and sequence = 1", ("nl-eokm",), change
    )


@pytest.mark.parametrize(
    ("tamper", "failed"),
    [
        # Notes are not part of the id: only the inclusion proof catches the edit.
        (
            _receiver_row("wire", lambda w: w.replace(b"hello world", b"jello world")),
            {"leaf of the envelope (Merkle inclusion proof)"},
        ),
        # A different item hash: the id no longer matches, nor does the leaf.
        (
            _receiver_row("wire", lambda w: w.replace(b"c0ffee", b"c0ffef")),
            {"report id matches its contents", "leaf of the envelope (Merkle inclusion proof)"},
        ),
        (
            _receiver_row("proof", lambda p: bytes(32) + p[32:] if p else bytes(32)),
            {"leaf of the envelope (Merkle inclusion proof)"},
        ),
        (_inbox("signature", _flip_last_byte), {"envelope signature by the sender's key"}),
        (
            _inbox("receipt_signature", _flip_last_byte),
            {"our receipt is signed by us and names the report"},
        ),
        (
            _inbox("root", lambda r: bytes(32)),
            {
                "leaf of the envelope (Merkle inclusion proof)",
                "our receipt is signed by us and names the report",
            },
        ),
    ],
)
def test_tampering_on_the_receiver_fails_the_right_check(
    runner: CliRunner, delivered: Delivered, tamper: Tamper, failed: set[str]
) -> None:
    tamper(delivered)
    code, out = verify(runner, delivered.federation, "de-eco", delivered.remote_id)
    assert code == 1, out
    assert marks(out) == {name: name not in failed for name in RECEIVER_CHECKS}
    assert "VERIFICATION FAILED" in out


def _batch(column: str, change: Callable[[bytes], bytes]) -> Tamper:
    def edit(d: Delivered) -> None:
        ((sequence,),) = d.federation.query(
            "nl-eokm",
            "select d.sequence FROM deliveries d"
            " JOIN reports r ON r.seq = d.report_seq where r.id = ?",
            (d.remote_id,),
        )
        _edit_blob(
            d,
            "nl-eokm",
            "batches",
            column,
            "destination = 'de-eco' and sequence = ?",
            (sequence,),
            change,
        )

    return edit


def _delivery_outcome(d: Delivered) -> None:
    d.federation.execute(
        "nl-eokm",
        "update deliveries set outcome = 'merged'"
        " where report_seq = (select seq from reports where id = ?)",
        (d.remote_id,),
    )


def _origin_wire(d: Delivered) -> None:
    _edit_blob(
        d,
        "nl-eokm",
        "reports",
        "wire",
        "id = ?",
        (d.remote_id,),
        lambda w: w.replace(b"c0ffee", b"c0ffef"),
    )


@pytest.mark.parametrize(
    ("tamper", "failed"),
    [
        (_batch("signature", _flip_last_byte), {"our batch header is signed by us"}),
        (
            _batch("receipt_signature", _flip_last_byte),
            {"the receiver's receipt signature", "the receipt names this report"},
        ),
        (_delivery_outcome, {"the receipt names this report"}),
        (_origin_wire, {"report id matches its contents"}),
    ],
)
def test_tampering_on_the_origin_fails_the_right_check(
    runner: CliRunner, delivered: Delivered, tamper: Tamper, failed: set[str]
) -> None:
    tamper(delivered)
    code, out = verify(runner, delivered.federation, "nl-eokm", delivered.remote_id)
    assert code == 1, out
    assert marks(out) == {name: name not in failed for name in ORIGIN_CHECKS}


def test_an_undelivered_report_does_not_pass(runner: CliRunner, federation: Running) -> None:
    federation.stop("de-eco")
    with federation.intake("nl-eokm") as client:
        response = client.submit(_submission("https://example.de/later", "e" * 64, ""))
    code, out = verify(runner, federation, "nl-eokm", response.report_id)
    assert code == 1
    assert "✗ delivered with a signed receipt: not receipted yet: waiting in the outbox" in out
