"""Takedown automation on four real nodes: re-checks against a real web server, over real gRPC.

nl-eokm reports DE-hosted URLs; de-eco holds the cases, assesses them illegal, and its
re-check scheduler (``[takedown]`` on, passes driven with ``run_once``) asks a real HTTP server
on loopback — de-eco's re-checks are routed there (``LoopbackRoute``), its DNS answers are the
test's (``MovingResolver``: the one fake, with nothing else changed). Shown, as the origin and
the coordinator see it through the lifecycle events they receive:

* online → gone on ``gone_checks`` consecutive checks → ``removed`` with the checks' evidence;
* a URL that now resolves into the US (twice) → a signed ``moved``: us-ncmec receives the case
  with de-eco's fresh re-trace, which its own GeoIP places in the US (no disagreement);
* notices (``[notices]`` on, a real SMTP relay on loopback — aiosmtpd — recording them): online
  → a notice to the hoster's abuse contact (text, X-ARF per URL, notice.json), recorded as
  ``reported_to_host`` with its Message-ID, which the origin sees → a new notice after the
  interval → the escalation contact after ``escalate_after`` → re-hosted at another hoster, the
  next notice goes to that hoster's contact → gone, removed, and no notice any more; a case
  reported to law enforcement waits ``lea_hold_s`` before any notice;
* every check a ``rechecked`` routing-log entry at de-eco, and every log still verifies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from exchange.domain import Classification
from exchange.lifecycle.model import Action, ActionKind, Assessment, Stage
from tests.exchange.factories import host_in, make_submission
from tests.exchange.takedown.factories import MovingResolver
from tests.exchange.takedown.servers import LoopbackRoute, WebServer, present, removed
from tests.exchange.takedown.smtp import SmtpRelay
from tests.integration.case_flow import deliver, stages, status
from tests.integration.conftest import MakeCluster
from tests.integration.support import (
    ADDRESS_IN,
    COORDINATOR,
    DE,
    FAST_TUNING,
    NL,
    STATIC_HOSTS,
    US,
    Cluster,
    wait_until,
)
from tests.integration.test_case_transfer import taken_over

pytestmark = pytest.mark.timeout(120)

TAKEDOWN = """
[takedown]
enabled = true
user_agent = "ihx-recheck/1 (eco Beschwerdestelle test; +https://hotline.example/recheck)"
tick_s = 3600                   # passes are the test's (run_once), not the background's
first_interval_s = 0.01
interval_s = 0.01
gone_checks = 2
move_checks = 2
connect_timeout_s = 2
read_timeout_s = 2
"""


DIRECTORY = """
[[contact]]
asn = 24940
address = "abuse@hetzner.example"
escalation = "legal@hetzner.example"
language = "de"

[[contact]]
asn = 64501
address = "abuse@rechenzentrum.example"
"""


def notices(directory: Path, relay: SmtpRelay) -> str:
    return f"""
[notices]
enabled = true
directory = "{directory}"
hotline = "eco Beschwerdestelle (test)"
from_address = "notices@eco.example"
relay_host = "127.0.0.1"
relay_port = {relay.port}
starttls = false
interval_s = 0.3
escalate_after = 2
lea_hold_s = 3600
tick_s = 3600
"""


@pytest.fixture
def dns() -> MovingResolver:
    return MovingResolver(STATIC_HOSTS)


@pytest.fixture
def relay() -> Iterator[SmtpRelay]:
    with SmtpRelay() as started:
        yield started


@pytest.fixture
def net(
    make_cluster: MakeCluster,
    web_server: WebServer,
    dns: MovingResolver,
    relay: SmtpRelay,
    tmp_path: Path,
) -> Cluster:
    directory = tmp_path / "abuse-contacts.toml"
    directory.write_text(DIRECTORY)
    cluster = make_cluster(
        extra_settings=FAST_TUNING + TAKEDOWN + notices(directory, relay),
        start=(NL, US, COORDINATOR),
    )
    cluster.start(DE, route=LoopbackRoute(web_server.port), resolver=dns)
    return cluster


def held_case(net: Cluster, path: str) -> tuple[str, str]:
    """A report of nl-eokm's, hosted in DE (plain http, as the server speaks), assessed
    baseline at de-eco: (report id, de-eco's case id)."""
    url = f"http://{host_in('DE')}{path}"
    report_id, case_id = deliver(net, NL, make_submission(url, hashes=[path]))
    net.node(DE).case_work.assess(case_id, [], Assessment(Classification.BASELINE))
    return report_id, case_id


def recheck_until(net: Cluster, done: str, what: str) -> None:
    """de-eco's passes, one after another, until a pass has done ``done`` (a ``Pass`` field)."""
    rechecker = net.node(DE).rechecker
    assert rechecker is not None

    def one_pass() -> bool:
        return bool(getattr(rechecker.run_once(), done))

    wait_until(one_pass, 20, what=what)


def test_content_gone_on_consecutive_checks_is_removed_and_the_origin_sees_it(
    net: Cluster, web_server: WebServer
) -> None:
    report_id, case_id = held_case(net, "/td/gone.jpg")
    web_server.set("/td/gone.jpg", present())
    recheck_until(net, "online", "a first check finding it online")
    web_server.set("/td/gone.jpg", removed(410))
    recheck_until(net, "removed", "two gone checks making it removed")

    for member in (NL, COORDINATOR):
        wait_until(
            lambda m=member: (
                set(stages(status_or_case(net, m, report_id, case_id)).values()) == {Stage.REMOVED}
            ),
            10,
            what=f"the removal at {member}",
        )
    seen = status(net, NL, report_id)
    action = seen.timeline[-1]
    assert action.member == DE
    assert action.body.kind is ActionKind.REMOVED  # type: ignore[union-attr]
    assert action.body.reference.startswith("recheck 2x [410,410] ")  # type: ignore[union-attr]
    assert {r.headers.get("User-Agent") for r in web_server.requests} == {
        "ihx-recheck/1 (eco Beschwerdestelle test; +https://hotline.example/recheck)"
    }
    assert net.count(DE, "routing_log", "kind = 'rechecked'") >= 3
    for member in (NL, DE, COORDINATOR):
        assert net.log_break(member) is None


def status_or_case(net: Cluster, member: str, report_id: str, case_id: str) -> Sequence[object]:
    """The items as ``member`` sees them: by its report (an origin) or by the case."""
    if member == NL:
        return status(net, member, report_id).items
    return net.node(member).case_views.case(case_id).items


def test_a_url_rehosted_in_another_members_country_moves_to_it(
    net: Cluster, web_server: WebServer, dns: MovingResolver
) -> None:
    report_id, case_id = held_case(net, "/td/moving.jpg")
    web_server.set("/td/moving.jpg", present())
    recheck_until(net, "online", "a first check in DE")
    dns.table[host_in("DE")] = (ADDRESS_IN["US"],)
    recheck_until(net, "moved", "two checks in the US making it moved")

    move = taken_over(net, NL, report_id)
    assert (move.from_member, move.from_case, move.to_member, move.country) == (
        DE,
        case_id,
        US,
        "US",
    )
    held = net.node(US).case_views.case(move.to_case)
    assert held.hosting_country == "US"
    assert {s.stage for s in held.items} == {Stage.UNASSESSED}
    # the transfer carried de-eco's re-trace, which us-ncmec's own GeoIP places in the US too
    assert net.rows(
        US, "SELECT geo_country, geo_agrees FROM case_transfers WHERE to_case = :c", c=move.to_case
    ) == [("US", True)]
    moved_event = status(net, NL, report_id).timeline[-1]
    assert moved_event.body.reference.startswith("recheck 2x in US ")  # type: ignore[union-attr]
    for member in (NL, DE, US, COORDINATOR):
        assert net.log_break(member) is None


def notify_until(net: Cluster, sent: int, what: str) -> None:
    """de-eco's notice passes until one has sent ``sent`` notices."""
    notifier = net.node(DE).notifier
    assert notifier is not None
    wait_until(lambda: notifier.run_once().sent == sent, 20, what=what)


def test_notices_follow_the_content_until_it_is_gone(
    net: Cluster, web_server: WebServer, dns: MovingResolver, relay: SmtpRelay
) -> None:
    report_id, _ = held_case(net, "/td/noticed.jpg")
    _, held_for_police = held_case(net, "/td/police-first.jpg")
    net.node(DE).case_work.act(
        held_for_police, [], Action(ActionKind.REPORTED_TO_LEA, partner="de-bka")
    )
    web_server.set("/td/noticed.jpg", present())
    web_server.set("/td/police-first.jpg", present())
    recheck_until(net, "online", "first checks finding both online")

    notify_until(net, 1, "the first notice")
    (first,) = relay.parsed()
    assert first["To"] == "abuse@hetzner.example"
    assert first["X-ARF"] == "YES"
    parts = {p.get_filename() for p in first.iter_attachments()}
    assert {"report.txt", "notice.json"} <= parts
    body = first.as_string()
    assert "/td/noticed.jpg" in body
    assert "/td/police-first.jpg" not in body  # law enforcement first: lea_hold_s not over
    message_id = first["Message-ID"]

    # the origin sees the notice as de-eco's signed reported_to_host step, with its Message-ID
    def noticed() -> object:
        timeline = status(net, NL, report_id).timeline
        return next(
            (
                e
                for e in timeline
                if isinstance(e.body, Action) and e.body.kind is ActionKind.REPORTED_TO_HOST
            ),
            None,
        )

    step = wait_until(noticed, 10, what="the notice at the origin")
    assert step.body.recipient == "abuse@hetzner.example"  # type: ignore[attr-defined]
    assert step.body.reference in (message_id, message_id.strip("<>"))  # type: ignore[attr-defined]

    notify_until(net, 1, "a new notice after the interval")
    notify_until(net, 1, "the escalation after two notices")
    assert [m["To"] for m in relay.parsed()] == [
        "abuse@hetzner.example",
        "abuse@hetzner.example",
        "legal@hetzner.example",
    ]

    # re-hosted at another DE hoster (twice seen): the next notice goes to its contact
    dns.table[host_in("DE")] = ("88.99.1.1",)
    recheck_until(net, "hoster_changed", "two checks at the new hoster")
    notify_until(net, 1, "a notice to the new hoster")
    assert relay.parsed()[-1]["To"] == "abuse@rechenzentrum.example"

    # gone: removed, and no notice any more
    web_server.set("/td/noticed.jpg", removed(404))
    recheck_until(net, "removed", "two gone checks")
    wait_until(
        lambda: set(stages(status(net, NL, report_id).items).values()) == {Stage.REMOVED},
        10,
        what="the removal at the origin",
    )
    count = len(relay.parsed())
    notifier = net.node(DE).notifier
    assert notifier is not None
    recheck_until(net, "ended", "the watch ending")
    assert notifier.run_once().sent == 0
    assert len(relay.parsed()) == count
    assert all("/td/police-first.jpg" not in m.as_string() for m in relay.parsed())
    for member in (NL, DE, COORDINATOR):
        assert net.log_break(member) is None
