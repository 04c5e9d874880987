"""``Metrics`` (ops/metrics.py): its own registry, the outbox collector, and the HTTP endpoint.

The outbox gauges are read from a real database at scrape time, filled by the node's own intake;
the clock is the test's, so the age of the oldest pending report is exact. The endpoint is served
on 127.0.0.1:0 and scraped over HTTP, then stopped: the port must be free again at once.
"""

from __future__ import annotations

import urllib.request

from sqlalchemy import Engine

from exchange.intake import Intake
from exchange.ops.gauges import GaugeSources
from exchange.ops.metrics import Metrics
from exchange.store.writer import GroupTiming
from tests.exchange.factories import FakeClock, make_submission, url_in


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_the_writers_groups_add_up_to_its_busy_time_and_its_waits() -> None:
    metrics = Metrics()
    metrics.writer_group(GroupTiming(jobs=3, waited=0.002, held=0.010, commit=0.004))
    metrics.writer_group(GroupTiming(jobs=1, waited=0.200, held=0.030, commit=0.001))
    assert sample(metrics, "ihx_writer_groups_total") == 2
    assert sample(metrics, "ihx_writer_jobs_total") == 4
    assert sample(metrics, "ihx_writer_busy_seconds_total") == 0.040
    assert sample(metrics, "ihx_writer_commit_seconds_total") == 0.005
    assert sample(metrics, "ihx_writer_queue_wait_seconds_count") == 2
    assert sample(metrics, "ihx_writer_queue_wait_seconds_bucket", le="0.0025") == 1
    assert sample(metrics, "ihx_writer_queue_wait_seconds_bucket", le="0.1") == 1
    assert sample(metrics, "ihx_writer_queue_wait_seconds_bucket", le="0.25") == 2
    # A group that failed took the writer's time all the same, but committed no jobs.
    failed = GroupTiming(jobs=2, waited=0.001, held=0.5, commit=0.0, committed=False)
    metrics.writer_group(failed)
    assert sample(metrics, "ihx_writer_groups_total") == 2
    assert sample(metrics, "ihx_writer_jobs_total") == 4
    assert sample(metrics, "ihx_writer_busy_seconds_total") == 0.540
    assert sample(metrics, "ihx_writer_queue_wait_seconds_count") == 3


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.reports_in.labels("intake").inc()
    assert sample(first, "ihx_reports_in_total", source="intake") == 1
    assert sample(second, "ihx_reports_in_total", source="intake") is None


def test_the_outbox_gauges_are_read_by_the_refresh_not_the_scrape(
    engine: Engine, intake: Intake, clock: FakeClock
) -> None:
    metrics = Metrics()
    gauges = metrics.watch_database(GaugeSources(engine, clock, queues=dict), interval=3600)
    try:
        assert sample(metrics, "ihx_outbox_pending", destination="de-eco") is None  # none waits

        intake.submit(make_submission(url_in("DE", "/1.jpg"), hashes=["one"]))
        clock.advance(20)
        intake.submit(make_submission(url_in("DE", "/2.jpg"), hashes=["two"]))
        intake.submit(make_submission(url_in("NL"), hashes=["local"]))  # local case: no outbox
        clock.advance(10)
        # A scrape serves the last reading: the database is not read for it.
        assert sample(metrics, "ihx_outbox_pending", destination="de-eco") is None
        gauges.refresh()
    finally:
        metrics.stop()

    assert sample(metrics, "ihx_outbox_pending", destination="de-eco") == 2
    assert sample(metrics, "ihx_outbox_oldest_pending_seconds", destination="de-eco") == 30
    assert sample(metrics, "ihx_outbox_pending", destination="nl-eokm") is None


def test_serves_the_registry_over_http_and_frees_the_port(engine: Engine, clock: FakeClock) -> None:
    metrics = Metrics()
    metrics.watch_database(GaugeSources(engine, clock, queues=dict), interval=3600)
    metrics.rejections.labels("bad-signature").inc(2)
    port = metrics.serve("127.0.0.1:0")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    finally:
        metrics.stop()
    assert 'ihx_rejections_total{reason="bad-signature"} 2.0' in text
    assert "# TYPE ihx_outbox_pending gauge" in text
    metrics.stop()  # a second stop is harmless
    # stop() let go of the listening socket: a node restarted at once binds the same port.
    again = Metrics()
    try:
        assert again.serve(f"127.0.0.1:{port}") == port
    finally:
        again.stop()
