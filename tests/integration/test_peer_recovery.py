"""A peer that was unreachable is retried the moment it is heard from, and its failures are kept.

nl-eokm queues reports for de-eco while de-eco is down. Its backoff starts at 60 s here, so
after the first failed attempt the next one would come 30–60 s later. When de-eco comes back and
sends nl-eokm an envelope of its own (a report hosted in NL) — and, first, its hello
(test_hello.py) — nl-eokm has heard from it: it retries at once and delivers long before its
backoff would have let it. Meanwhile the peer's row
says what went wrong, since when and how many times; a receipt clears all three.

A peer that *refuses* (rather than cannot be reached) keeps its backoff: its envelopes prove it
is up, not that it will accept ours, and resetting on them would turn a refusal into a retry storm.
"""

from __future__ import annotations

import pytest

from exchange.ops.status import collect_status
from exchange.times import from_micros
from tests.exchange.factories import make_submission, url_in
from tests.integration.conftest import MakeCluster
from tests.integration.support import COORDINATOR, DE, NL, US, Cluster, tuning, wait_until


def _peer_row(cluster: Cluster, member: str, peer: str) -> tuple[int, object, str | None]:
    """The peer's failure record; (0, None, None) before its first write (the sender writes it
    on its own thread: polled under load, it may not be there yet)."""
    rows = cluster.rows(
        member,
        "SELECT failures, failing_since, last_error FROM peers WHERE member = :p",
        p=peer,
    )
    if not rows:
        return 0, None, None
    row = rows[0]
    since = None if row.failing_since is None else from_micros(row.failing_since)
    return row.failures, since, row.last_error


@pytest.mark.timeout(90)
def test_an_unreachable_peer_is_retried_as_soon_as_it_is_heard_from(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(
        extra_settings=tuning(backoff_initial_s=60, backoff_max_s=120),
        start=(NL, US, COORDINATOR),
    )
    queued = [
        make_submission(url_in("DE", f"/back/{i}.jpg"), hashes=[f"back-{i}"]) for i in range(5)
    ]
    cluster.submit(NL, queued)
    sender = cluster.node(NL).senders[DE]
    wait_until(
        lambda: _peer_row(cluster, NL, DE)[0] >= 1,
        20,
        what="nl-eokm recording its failed attempt to reach de-eco",
        show=lambda: (sender.last_error, _peer_row(cluster, NL, DE)),
    )
    failures, failing_since, last_error = _peer_row(cluster, NL, DE)
    assert failures == 1, "one attempt, then a backoff of at least 30 s"
    assert failing_since is not None
    assert last_error is not None
    assert last_error.startswith("UNAVAILABLE"), last_error
    shown = {p.member: p for p in collect_status(cluster.engine(NL), NL).peers}[DE]
    assert (shown.failures, shown.failing_since) == (1, failing_since)

    cluster.start(DE)
    # de-eco speaks to nl-eokm first: a report hosted in NL, forwarded by de-eco.
    cluster.submit(DE, [make_submission(url_in("NL", "/hello.jpg"), hashes=["hello"])])
    wait_until(
        lambda: (
            cluster.drained(NL)
            and cluster.count(DE, "reports", "origin_member = :m", m=NL) == len(queued)
            # de-eco's hello (test_hello.py) may wake nl-eokm before its envelope does
            and cluster.count(NL, "reports", "origin_member = :m", m=DE) == 1
        ),
        20,  # well inside the 30 s the backoff alone would have waited
        what="nl-eokm delivering to de-eco once it heard from it",
        show=lambda: (cluster.delivery_state(NL), _peer_row(cluster, NL, DE)),
    )
    assert cluster.count(NL, "reports", "origin_member = :m", m=DE) == 1
    wait_until(
        lambda: _peer_row(cluster, NL, DE) == (0, None, None),
        10,
        what="the receipt clearing de-eco's failure record at nl-eokm",
        show=lambda: _peer_row(cluster, NL, DE),
    )
    assert sender.attempts == 2, "no attempt between the failure and de-eco's envelope"


@pytest.mark.timeout(60)
def test_a_peer_that_refuses_keeps_its_backoff_when_it_sends_us_envelopes(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(
        extra_settings=tuning(backoff_initial_s=60, backoff_max_s=120), start=(NL, DE, US)
    )
    nl, sender = cluster.node(NL), cluster.node(NL).senders[DE]
    sender.heard_from()  # nothing has failed: a no-op
    assert sender.attempts == 0

    # A refusal (not an outage) is what follows: de-eco is up but answers with an error.
    sender._failed("INVALID_ARGUMENT", "INVALID_ARGUMENT: envelope-future: test")
    assert not sender._unreachable
    sender.heard_from()
    assert not sender._retry.is_set(), "a refusing peer's envelopes do not cut the backoff"

    sender._failed("UNAVAILABLE", "UNAVAILABLE: test")
    sender.heard_from()
    assert sender._retry.is_set(), "an unreachable peer's envelope cuts the backoff"
    wait_until(
        lambda: _peer_row(cluster, NL, DE)[0] == 2,
        10,
        what="both failures recorded",
        show=lambda: _peer_row(cluster, NL, DE),
    )
    assert nl.metrics.delivery_failures.labels(DE, "UNAVAILABLE")._value.get() == 1
