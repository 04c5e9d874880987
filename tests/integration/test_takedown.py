"""Takedown automation on four real nodes: re-checks against a real web server, over real gRPC.

nl-eokm reports DE-hosted URLs; de-eco holds the cases, assesses them illegal, and its
re-check scheduler (``[takedown]`` on, passes driven with ``run_once``) asks a real HTTP server
on loopback — de-eco's re-checks are routed there (``LoopbackRoute``), its DNS answers are the
test's (``MovingResolver``: the one fake, with nothing else changed). Shown, as the origin and
the coordinator see it through the lifecycle events they receive:

* online → gone on ``gone_checks`` consecutive checks → ``removed`` with the checks' evidence;
* a URL that now resolves into the US (twice) → a signed ``moved``: us-ncmec receives the case
  with de-eco's fresh re-trace, which its own GeoIP places in the US (no disagreement);
* every check a ``rechecked`` routing-log entry at de-eco, and every log still verifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from exchange.domain import Classification
from exchange.lifecycle.model import ActionKind, Assessment, Stage
from routing.resolver import Resolution
from tests.exchange.factories import host_in, make_submission
from tests.exchange.takedown.servers import LoopbackRoute, WebServer, present, removed
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


class MovingResolver:
    """de-eco's DNS: the test network's table, whose answers a test changes (a move)."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {host: tuple(addresses) for host, addresses in table.items()}

    def resolve(self, host: str) -> Resolution:
        found = self.table.get(host)
        return Resolution(found, None) if found else Resolution((), "nxdomain")


@pytest.fixture
def dns() -> MovingResolver:
    return MovingResolver(STATIC_HOSTS)


@pytest.fixture
def net(make_cluster: MakeCluster, web_server: WebServer, dns: MovingResolver) -> Cluster:
    cluster = make_cluster(extra_settings=FAST_TUNING + TAKEDOWN, start=(NL, US, COORDINATOR))
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
