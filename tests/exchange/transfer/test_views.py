"""The old holder's view of its moves: the new holder's answer, a case or a refusal."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from exchange.client.case_text import move_text
from exchange.store import transfers
from exchange.store.cases import HeldCase
from exchange.transfer.views import moved_to
from tests.exchange.factories import T0
from tests.exchange.transfer.factories import HOLDER, NEW, make_kit


def test_the_old_holder_shows_each_move_with_the_new_holders_answer(engine: Engine) -> None:
    answered, refused = make_kit(), make_kit(hashes=["other"])
    held = HeldCase(answered.case_id, "", "DE", "closed", T0, T0, None, answered.report.id)
    with engine.begin() as conn:
        transfers.record(
            conn,
            [
                transfers.Transfer(
                    moved_event=kit.moved().id,
                    report_id=kit.report.id,
                    role=transfers.SENT,
                    from_member=HOLDER,
                    from_case=answered.case_id,
                    to_member=NEW,
                    to_case=None,
                    country="US",
                    moved_at=T0 + timedelta(minutes=n),
                    items=2,
                    stored_at=T0 + timedelta(minutes=n),
                )
                for n, kit in enumerate((answered, refused))
            ],
        )
        new_case = "c-" + "a" * 32
        transfers.mark_receipted(
            conn,
            report_id=answered.report.id,
            to_member=NEW,
            outcome="new-case",
            to_case=new_case,
            reason=None,
            at=T0 + timedelta(minutes=5),
        )
        transfers.mark_receipted(
            conn,
            report_id=refused.report.id,
            to_member=NEW,
            outcome="rejected",
            to_case=None,
            reason="not-responsible: US is not ours",
            at=T0 + timedelta(minutes=5),
        )
        first, second = moved_to(conn, held)
    assert move_text(first) == f"moved DE→US, now held by us-ncmec as case {new_case}"
    assert move_text(second) == (
        "moved DE→US, refused by us-ncmec: not-responsible: US is not ours"
    )
