"""provision_federation's ``metrics``: each node serves its metrics on a loopback port of
its own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from exchange.tools.provision import MemberPlan, provision_federation

PLANS = [MemberPlan("nl-eokm", "EOKM", ("NL",)), MemberPlan("de-eco", "eco", ("DE",))]


def federation(root: Path, *, metrics: bool) -> dict[str, str | None]:
    fed = provision_federation(
        root,
        PLANS,
        coordinator="de-eco",
        now=datetime.now(UTC),
        orphan_rules={},
        country_networks={"185.107.56.0/22": "NL"},
        asn_networks={},
        static_hosts={},
        metrics=metrics,
    )
    return {member: s.metrics_listen for member, s in fed.settings.items()}


def test_with_metrics_each_node_gets_its_own_loopback_port(tmp_path: Path) -> None:
    listens = federation(tmp_path / "fed", metrics=True)
    addresses = list(listens.values())
    assert all(a is not None and a.startswith("127.0.0.1:") for a in addresses)
    assert len(set(addresses)) == len(PLANS)


def test_without_metrics_no_node_serves_them(tmp_path: Path) -> None:
    assert set(federation(tmp_path / "fed", metrics=False).values()) == {None}
