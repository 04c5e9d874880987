"""Signed checkpoints and whole-log verification: edits, deletions and reorders are found."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from auth.manifest import Manifest
from exchange.checkpoints import (
    Checkpointer,
    sign_checkpoint,
    verify_checkpoint,
    verify_log,
)
from exchange.intake import Intake
from exchange.store.routing_log import load_checkpoints, load_entries
from exchange.store.writer import Writer
from tests.auth.factories import signing_key
from tests.exchange.factories import FakeClock, make_submission, url_in


@pytest.fixture
def checkpointer(writer: Writer, clock: FakeClock) -> Checkpointer:
    return Checkpointer(
        member="nl-eokm",
        key=signing_key("nl-eokm"),
        writer=writer,
        clock=clock,
        every=1000,
        interval=60,
    )


@pytest.fixture
def filled(intake: Intake, checkpointer: Checkpointer, clock: FakeClock) -> Engine:
    for i in range(6):
        intake.submit(make_submission(url_in("DE", f"/{i}.jpg"), hashes=[f"x{i}"]))
        clock.advance(1)
        if i in (2, 5):
            checkpointer.checkpoint_now()
    return intake._writer._engine  # type: ignore[attr-defined]


def verdict(engine: Engine, manifest: Manifest) -> str | None:
    with engine.connect() as conn:
        result = verify_log(list(load_entries(conn)), load_checkpoints(conn, "nl-eokm"), manifest)
    return None if result.ok else f"{result.first_bad.idx}: {result.first_bad.problem}"  # type: ignore[union-attr]


def test_checkpoint_signature_verifies_and_detects_changes(
    manifest: Manifest, clock: FakeClock
) -> None:
    cp = sign_checkpoint(signing_key("nl-eokm"), "nl-eokm", 10, b"\x01" * 32, clock())
    verify_checkpoint(cp, manifest)
    from dataclasses import replace

    from auth.errors import AuthError

    with pytest.raises(AuthError):
        verify_checkpoint(replace(cp, size=11), manifest)
    with pytest.raises(AuthError):
        verify_checkpoint(replace(cp, member="de-eco"), manifest)


def test_intact_log_verifies(filled: Engine, manifest: Manifest) -> None:
    with filled.connect() as conn:
        assert len(load_checkpoints(conn, "nl-eokm")) == 2
    assert verdict(filled, manifest) is None


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("UPDATE routing_log SET detail = '{}' WHERE idx = 1", "1: entry hash"),
        ("DELETE FROM routing_log WHERE idx = 2", "3: expected entry 2"),
        (
            "UPDATE routing_log SET idx = -1 WHERE idx = 1;"
            "UPDATE routing_log SET idx = 1 WHERE idx = 3;"
            "UPDATE routing_log SET idx = 3 WHERE idx = -1",
            "1: previous hash",
        ),
        ("DELETE FROM routing_log WHERE idx = 5", "checkpoint 6 covers entries that are missing"),
    ],
    ids=["edit", "delete", "reorder", "truncate"],
)
def test_tampering_is_detected_and_named(
    filled: Engine, manifest: Manifest, tamper: str, expected: str
) -> None:
    with filled.begin() as conn:
        for statement in tamper.split(";"):
            conn.execute(text(statement))
    found = verdict(filled, manifest)
    assert found is not None
    assert expected in found


def test_rewritten_chain_is_caught_by_the_signed_checkpoint(
    filled: Engine, manifest: Manifest
) -> None:
    # An attacker edits entry 1 and recomputes every later hash: the chain alone looks intact.
    from exchange.routing_log import compute_hash

    with filled.begin() as conn:
        rows = conn.execute(text("SELECT * FROM routing_log ORDER BY idx")).mappings().all()
        previous = rows[0]["entry_hash"]
        for r in rows[1:]:
            detail = '{"forged":true}' if r["idx"] == 1 else r["detail"]
            from exchange.times import from_micros

            digest = compute_hash(
                previous,
                r["idx"],
                from_micros(r["at"]),
                r["kind"],
                r["report_id"],
                r["member"],
                r["country"],
                detail,
            )
            conn.execute(
                text(
                    "UPDATE routing_log SET detail=:d, previous_hash=:p, entry_hash=:h WHERE idx=:i"
                ),
                {"d": detail, "p": previous, "h": digest, "i": r["idx"]},
            )
            previous = digest
    found = verdict(filled, manifest)
    assert found is not None
    assert "does not match signed checkpoint" in found


def test_checkpointer_writes_nothing_when_the_log_did_not_grow(
    checkpointer: Checkpointer, intake: Intake
) -> None:
    intake.submit(make_submission(url_in("DE")))
    assert checkpointer.checkpoint_now() is not None
    assert checkpointer.checkpoint_now() is None
