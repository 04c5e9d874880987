"""The chart's dashboard and alert rules name only metrics a live node exports.

The chart is rendered with both toggles on (the production CI values) and with the defaults
(both off). Every alert expression and every dashboard query is parsed as PromQL
(``promql-parser``, Prometheus' grammar) and the metric names it selects are collected; a real
node (tests/exchange/ops/live_node.py) is given work of each kind and scraped, and each collected
name must be among the sample names of that scrape — a renamed metric breaks this test, not an
operator's pager.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GeoRow
from tests.exchange.ops.live_node import exercise, live_node, scrape
from tests.helm.test_chart import CHART, DEFAULT, FULLNAME, PRODUCTION, load_values, render

ALERTS = {
    "IhxWriterSaturated",
    "IhxNotServing",
    "IhxPeerFailing",
    "IhxOutboxBacklogGrowing",
    "IhxPartnerBacklogGrowing",
    "IhxWriteFailures",
    "IhxTokenFailuresSpike",
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (it must parse as PromQL)."""
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (config,) = [o for o in objects if o["metadata"]["name"] == f"{FULLNAME}-dashboards"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    doc: dict[str, Any] = json.loads(config["data"]["ihx-node.json"])
    return doc


def queries(board: Mapping[str, Any]) -> list[str]:
    return [t["expr"] for panel in board["panels"] for t in panel["targets"]]


def test_toggles_are_off_by_default_and_render_when_on(chart: helm.Chart) -> None:
    default = render(chart, load_values(DEFAULT)).objects
    assert not [o for o in default if o["kind"] == "PrometheusRule"]
    assert not [o for o in default if o["metadata"]["name"].endswith("-dashboards")]

    production = render(chart, load_values(PRODUCTION)).objects
    assert {r["alert"] for r in rules(production)} == ALERTS
    board = dashboard(production)
    shipped = json.loads((CHART / "dashboards" / "ihx-node.json").read_text(encoding="utf-8"))
    assert board == shipped
    assert board["uid"] == "ihx-node"


def test_peer_failing_fires_after_the_minutes_in_values(chart: helm.Chart) -> None:
    values = load_values(PRODUCTION)
    values["metrics"]["prometheusRule"]["peerFailingMinutes"] = 20
    (rule,) = [r for r in rules(render(chart, values).objects) if r["alert"] == "IhxPeerFailing"]
    assert rule["expr"].endswith("> 1200")
    assert metric_names(rule["expr"]) == {"ihx_peer_failing_seconds"}


def test_writer_saturated_fires_past_the_fraction_in_values(chart: helm.Chart) -> None:
    values = load_values(PRODUCTION)
    values["metrics"]["prometheusRule"]["writerBusyFraction"] = 0.75
    (rule,) = [
        r for r in rules(render(chart, values).objects) if r["alert"] == "IhxWriterSaturated"
    ]
    assert rule["expr"].endswith("> 0.75")
    assert metric_names(rule["expr"]) == {"ihx_writer_busy_seconds_total"}
    assert "75%" in rule["annotations"]["summary"]


def test_promql_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the parser's only error type
        metric_names("sum by (peer) (ihx_peer_failing_seconds")


def _exported(text: str) -> set[str]:
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_metric_in_rules_and_dashboard_is_exported_by_a_live_node(
    chart: helm.Chart, tmp_path: Path, geo_table: Mapping[str, GeoRow]
) -> None:
    objects = render(chart, load_values(PRODUCTION)).objects
    used: set[str] = set()
    for rule in rules(objects):
        used |= metric_names(rule["expr"])
    for expr in queries(dashboard(objects)):
        used |= metric_names(expr)
    assert len(used) >= 15

    with live_node(tmp_path / "fed", geo_table) as (fed, node):
        exercise(fed, node)
        deadline = time.monotonic() + 60
        while not used <= (exported := _exported(scrape(node))):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert sorted(used - exported) == []
