"""``ihx cases list``, ``ihx case show|assess|act``, ``ihx report status|withdraw`` on real nodes.

The CLI federation (nl-eokm, de-eco, inhope on loopback): nl-eokm reports DE-hosted URLs, so
de-eco's analyst works the case with the commands and nl-eokm's sees the outcome. Tokens come
from ``ihx token issue --scope cases:work``, as an analyst's would. Human output must fit 80
columns; ``--json`` is one document with the same facts; a refusal is one ``ihx: error:`` line
and exit 2, with nothing changed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from exchange.cli.main import app
from exchange.domain import ContentHash, HashAlgorithm
from tests.exchange.cli.conftest import Running, wait_for
from tests.exchange.factories import make_submission, make_test_item

pytestmark = pytest.mark.timeout(90)

NL, DE = "nl-eokm", "de-eco"


def work_token(runner: CliRunner, running: Running, member: str, scope: str = "cases:work") -> str:
    result = runner.invoke(
        app,
        [
            "token",
            "issue",
            "--config",
            str(running.config(member)),
            "--sub",
            "analyst",
            "--scope",
            scope,
        ],
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def ihx(runner: CliRunner, running: Running, member: str, token: str, *args: str) -> Result:
    return runner.invoke(app, [*args, "--node", running.address(member), "--token", token])


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def fits(result: Result) -> list[str]:
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, too_wide
    return lines


def report_to_de(running: Running, path: str, items: int = 1) -> tuple[str, str]:
    """nl-eokm reports a DE-hosted URL; (report id, case id) once de-eco's receipt is in."""
    hashes = [f"cli-{path}-{i}" for i in range(items)]
    with running.intake(NL) as intake:
        report_id = intake.submit(make_submission(f"https://example.de/{path}", hashes=hashes))
    rid = report_id.report_id

    def case_id() -> str:
        rows = running.query(
            NL,
            "SELECT d.remote_case_id FROM deliveries d"
            " JOIN reports r ON r.seq = d.report_seq WHERE r.id = ?",
            (rid,),
        )
        return str(rows[0][0]) if rows and rows[0][0] else ""

    wait_for(lambda: bool(case_id()))
    return rid, case_id()


def test_an_analyst_works_a_case_to_removal_and_the_origin_sees_it(
    runner: CliRunner, federation: Running
) -> None:
    report_id, case_id = report_to_de(federation, "lifecycle.jpg", items=2)
    de, nl = work_token(runner, federation, DE), work_token(runner, federation, NL)

    listed = ok_json(
        ihx(runner, federation, DE, de, "cases", "list", "--queue", "unassessed", "--json")
    )
    assert listed["queue"] == "unassessed"
    assert [c["id"] for c in listed["cases"]] == [case_id]
    assert (listed["cases"][0]["open_items"], listed["next_cursor"]) == (2, "")
    lines = fits(ihx(runner, federation, DE, de, "cases", "list", "--queue", "unassessed"))
    assert lines[0] == "unassessed: 1 case(s)"
    assert lines[1].startswith(f"  {case_id}  DE  ")
    assert lines[1].endswith("2/2 open")

    assessed = ok_json(
        ihx(
            runner,
            federation,
            DE,
            de,
            "case",
            "assess",
            case_id,
            "--item",
            f"{report_id}:0",
            "--classification",
            "baseline",
            "--age-group",
            "prepubescent",
            "--gender",
            "female",
            "--virtual",
            "--analyst-ref",
            "A-17",
            "--json",
        )
    )
    first, second = assessed["items"]
    assert (first["stage"], second["stage"]) == ("assessed", "unassessed")
    assert first["assessment"] == {
        "classification": "baseline",
        "age_group": "prepubescent",
        "gender": "female",
        "virtual": True,
        "user_generated": False,
        "child_modelling": False,
        "analyst_ref": "A-17",
    }
    ok_json(
        ihx(
            runner,
            federation,
            DE,
            de,
            "case",
            "assess",
            case_id,
            "--item",
            f"{report_id}:1",
            "--classification",
            "national",
            "--json",
        )
    )
    for step in (
        ["--action", "reported_to_lea", "--partner", "bka"],
        ["--action", "reported_to_host", "--recipient", "abuse@hoster.example"],
        ["--action", "removed", "--reference", "notice-4711"],
    ):
        done = ok_json(ihx(runner, federation, DE, de, "case", "act", case_id, *step, "--json"))
    assert done["open"] is False
    assert [i["stage"] for i in done["items"]] == ["removed", "removed"]
    clock = done["items"][0]["takedown_clock_s"]
    assert set(clock) == {"assessment", "lea", "host_notice", "removal"}
    assert 0 <= clock["assessment"] <= clock["lea"] <= clock["host_notice"] <= clock["removal"]
    assert [e["kind"] for e in done["timeline"]] == ["assessment"] * 2 + ["action"] * 3
    assert done["timeline"][-1]["body"]["reference"] == "notice-4711"

    shown = fits(ihx(runner, federation, DE, de, "case", "show", case_id))
    assert shown[0] == f"case {case_id}  closed"
    assert "holder       de-eco" in shown
    assert "URL          https://example.de/lifecycle.jpg" in shown
    assert f"  {report_id}#0  removed" in shown
    assert any(
        line.startswith("      to law enforcement  ") and line.endswith(" (bka)") for line in shown
    )
    assert any(line.startswith("      to removal  ") for line in shown)
    assert "timeline (5)" in shown
    assert "      reported to law enforcement (bka)" in shown
    assert "      removed, ref notice-4711" in shown

    def removed_at_origin() -> bool:
        status = ihx(runner, federation, NL, nl, "report", "status", report_id, "--json")
        doc = ok_json(status)
        return [i["stage"] for i in doc["items"]] == ["removed", "removed"]

    wait_for(removed_at_origin)
    status = ok_json(ihx(runner, federation, NL, nl, "report", "status", report_id, "--json"))
    assert (status["destination"], status["case_id"], status["delivery"]) == (
        DE,
        case_id,
        "new-case",
    )
    assert len(status["timeline"]) == 5
    assert status["items"][1]["assessment"]["classification"] == "national"
    seen = fits(ihx(runner, federation, NL, nl, "report", "status", report_id))
    assert seen[0] == f"report {report_id}"
    assert "sent to    de-eco" in seen
    assert f"  {report_id}#1  removed  DISPUTED" in seen  # NL said baseline, DE national


def test_the_origin_withdraws_a_report(runner: CliRunner, federation: Running) -> None:
    report_id, case_id = report_to_de(federation, "withdrawn.jpg")
    nl, de = work_token(runner, federation, NL), work_token(runner, federation, DE)
    result = ihx(
        runner,
        federation,
        NL,
        nl,
        "report",
        "withdraw",
        report_id,
        "--reason",
        "wrong_url",
        "--note",
        "a typo in the path",
    )
    lines = fits(result)
    assert lines[0] == f"report {report_id}  WITHDRAWN"
    assert "      withdrawal asked: wrong_url (a typo in the path)" in lines

    def closed_at_holder() -> bool:
        doc = ok_json(ihx(runner, federation, DE, de, "case", "show", case_id, "--json"))
        return [i["stage"] for i in doc["items"]] == ["withdrawn"]

    wait_for(closed_at_holder)
    doc = ok_json(
        ihx(
            runner,
            federation,
            NL,
            nl,
            "report",
            "withdraw",
            report_id,
            "--reason",
            "wrong_url",
            "--json",
        )
    )
    assert doc["withdrawn"] is True  # again: nothing more to do, the same answer


def test_a_move_shows_at_the_new_holder_and_at_the_origin(
    runner: CliRunner, federation: Running
) -> None:
    report_id, case_id = report_to_de(federation, "moved.jpg")
    de, nl = work_token(runner, federation, DE), work_token(runner, federation, NL)
    fits(ihx(runner, federation, DE, de, "case", "assess", case_id, "--classification", "baseline"))
    done = ok_json(
        ihx(
            runner,
            federation,
            DE,
            de,
            "case",
            "act",
            case_id,
            "--action",
            "moved",
            "--country",
            "nl",
            "--json",
        )
    )
    assert [i["stage"] for i in done["items"]] == ["moved"]

    def moves() -> list[Any]:
        doc = ok_json(ihx(runner, federation, NL, nl, "report", "status", report_id, "--json"))
        return [m for m in doc["moves"] if m["to_case"]]

    wait_for(lambda: bool(moves()))
    (move,) = moves()
    new_case = move["to_case"]
    assert (move["from_member"], move["from_case"], move["to_member"]) == (DE, case_id, NL)
    assert move["text"] == f"moved DE→NL, now held by nl-eokm as case {new_case}"
    assert [i["stage"] for i in move["items"]] == ["unassessed"]
    status = " ".join(fits(ihx(runner, federation, NL, nl, "report", "status", report_id)))
    assert f"moved DE→NL, now held by nl-eokm as case {new_case}" in " ".join(status.split())
    assert f"at nl-eokm, case {new_case}" in status

    shown = fits(ihx(runner, federation, NL, nl, "case", "show", new_case))
    assert "holder       nl-eokm" in shown
    assert any(line.startswith(f"moved from   de-eco, case {case_id}") for line in shown)
    assert "history at de-eco, read-only (2)" in shown
    assert "      moved to NL (nl-eokm)" in shown
    doc = ok_json(ihx(runner, federation, NL, nl, "case", "show", new_case, "--json"))
    assert [e["kind"] for e in doc["history"]] == ["assessment", "action"]
    assert [e["kind"] for e in doc["timeline"]] == ["taken_over"]
    assert doc["moved_from"]["from_case"] == case_id

    def linked_at_the_old_holder() -> bool:
        old = ok_json(ihx(runner, federation, DE, de, "case", "show", case_id, "--json"))
        return [m["to_case"] for m in old["moved_to"]] == [new_case]

    wait_for(linked_at_the_old_holder)
    old = " ".join(fits(ihx(runner, federation, DE, de, "case", "show", case_id)))
    assert f"moved DE→NL, now held by nl-eokm as case {new_case}" in " ".join(old.split())


def test_refusals_are_one_error_line_and_exit_2(runner: CliRunner, federation: Running) -> None:
    report_id, case_id = report_to_de(federation, "refused.jpg")
    de = work_token(runner, federation, DE)
    before = federation.query(DE, "SELECT count(*) FROM case_events")

    refusals = [
        (
            ["case", "act", case_id, "--action", "removed"],
            "ihx: error: the node refused the request (FAILED_PRECONDITION): transition-refused: "
            f"item {report_id}#0: removed needs the item assessed illegal (baseline or national)",
        ),
        (
            ["case", "show", "c-" + "0" * 32],
            "ihx: error: the node refused the request (NOT_FOUND): not-found: no case "
            f"c-{'0' * 32} here",
        ),
        (
            ["case", "show", "nonsense"],
            "ihx: error: the node refused the request (INVALID_ARGUMENT): invalid-event: "
            "case_id: not a case id (c- and 32 lower-case hex digits)",
        ),
        (
            ["case", "assess", case_id, "--classification", "baseline", "--item", "r-1:0"],
            "ihx: error: --item 'r-1:0': give REPORT_ID:INDEX (r-… and a number)",
        ),
        (
            ["case", "assess", case_id, "--classification", "baseline", "--item", f"{report_id}:x"],
            f"ihx: error: --item '{report_id}:x': the index is a number from 0 to 999",
        ),
        (
            ["case", "act", case_id, "--action", "removed", "--partner", "bka"],
            "ihx: error: the node refused the request (INVALID_ARGUMENT): invalid-event: "
            "action.partner: removed takes no partner",
        ),
        (
            ["report", "withdraw", report_id, "--reason", "misreport"],
            "ihx: error: the node refused the request (PERMISSION_DENIED): not-assigned: report "
            f"{report_id} was sent by {NL}: only its origin withdraws it",
        ),
    ]
    for args, line in refusals:
        result = ihx(runner, federation, DE, de, *args)
        assert (result.exit_code, result.stderr, result.stdout) == (2, line + "\n", ""), args

    # A usage error is Typer's (exit 2 too): doubtful is no analyst's classification.
    usage = ihx(
        runner, federation, DE, de, "case", "assess", case_id, "--classification", "doubtful"
    )
    assert usage.exit_code == 2
    assert "'doubtful' is not one of" in usage.stderr
    assert "'not_illegal'" in usage.stderr

    # A token without cases:work: refused by the node, named.
    intake_only = work_token(runner, federation, DE, scope="reports:submit")
    result = ihx(runner, federation, DE, intake_only, "cases", "list", "--queue", "unassessed")
    assert result.exit_code == 2
    assert result.stderr.startswith("ihx: error: the node refused the request (PERMISSION_DENIED)")
    assert "cases:work" in result.stderr
    assert federation.query(DE, "SELECT count(*) FROM case_events") == before


def test_queues_page_with_after(runner: CliRunner, federation: Running) -> None:
    ids = {report_to_de(federation, f"page-{i}.jpg")[1] for i in range(3)}
    de = work_token(runner, federation, DE)
    seen: list[str] = []
    after = ""
    while True:
        doc = ok_json(
            ihx(
                runner,
                federation,
                DE,
                de,
                "cases",
                "list",
                "--queue",
                "unassessed",
                "--limit",
                "2",
                "--after",
                after,
                "--json",
            )
        )
        seen += [c["id"] for c in doc["cases"]]
        after = doc["next_cursor"]
        if not after:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 3
    human = fits(
        ihx(runner, federation, DE, de, "cases", "list", "--queue", "unassessed", "--limit", "2")
    )
    assert human[0] == "unassessed: 2 case(s) on this page"
    assert human[-1].startswith("next page: --after ")


def test_case_show_tells_known_from_near_known_pdq_content(
    runner: CliRunner, federation: Running
) -> None:
    """de-eco takes two DE-hosted reports itself: a PDQ hash (quality 90), then one 20 bits
    from it (quality 80). The second case names the first's sighting as near-known content,
    not as known content, in the JSON document and in 80 columns."""
    seen = ContentHash(HashAlgorithm.PDQ, "c3" * 32, 90)
    value = int(seen.hex, 16)
    for i in range(20):
        value ^= 1 << (11 * i)
    near = ContentHash(HashAlgorithm.PDQ, f"{value:064x}", 80)
    with federation.intake(DE) as intake:
        first = intake.submit(
            make_submission("https://example.de/pdq-a.jpg", items=[make_test_item(seen)])
        )
        later = intake.submit(
            make_submission("https://example.de/pdq-b.jpg", items=[make_test_item(near)])
        )
    case_of = "SELECT case_id FROM reports WHERE id = ?"
    case_a = federation.query(DE, case_of, (first.report_id,))[0][0]
    case_b = federation.query(DE, case_of, (later.report_id,))[0][0]
    de = work_token(runner, federation, DE)

    doc = ok_json(ihx(runner, federation, DE, de, "case", "show", case_b, "--json"))
    assert doc["pdq_note"] is None
    (item,) = doc["pdq"]
    assert (item["report_id"], item["index"], item["hex"]) == (later.report_id, 0, near.hex)
    assert item["known"] is None  # not the same hash: not known content
    assert [(n["hex"], n["distance"], n["member"], n["case_id"]) for n in item["near"]] == [
        (seen.hex, 20, DE, case_a)
    ]
    assert item["not_matched"] is None

    human = fits(ihx(runner, federation, DE, de, "case", "show", case_b))
    start = human.index("PDQ items (1): known content, then near-known content")
    assert human[start + 2] == f"      pdq:{near.hex}"
    assert human[start + 3].split(maxsplit=2)[:2] == ["known", "content"]
    assert human[start + 3].endswith("not sighted in another case")
    assert any(line.startswith(f"      near           distance 20: {DE}, case") for line in human)
