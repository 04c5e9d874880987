"""Size limits between intake and the exchange: nothing intake acknowledges may be undeliverable.

A sealed batch is resent byte for byte until it is receipted, so a batch a peer can never accept
would block that destination for good, and every report queued behind it. Two ways to build one
from valid input:

* many large reports closing one batch, larger than a gRPC message may be (the sender must close
  batches on bytes as well as on count);
* one report, valid by every domain limit (256 items with four hashes each, long notes, long
  payment methods), whose serialized form exceeds the payload size every receiver enforces
  (intake must refuse it with a clear error, or it must get through).
"""

from __future__ import annotations

import pytest

from exchange.domain import (
    Classification,
    HashAlgorithm,
    SiteType,
    Submission,
    make_facts,
    make_item,
)
from exchange.tools.provision import MemberPlan
from tests.exchange.factories import (
    content_hash,
    make_submission,
    make_test_item,
    url_in,
    writer_held,
)
from tests.integration.conftest import MakeCluster
from tests.integration.support import COORDINATOR, DE, NL, PLANS, tuning, wait_until

TRIO: tuple[MemberPlan, ...] = tuple(p for p in PLANS if p.id in (NL, DE, COORDINATOR))
MESSAGE_BYTES = 1024 * 1024  # the smallest sensible setting keeps the test's data small


def _bulky(i: int) -> Submission:
    """A valid report of about 16 KB serialized: long URL, notes and payment methods."""
    facts = make_facts(SiteType.FORUM, True, ["\N{CREDIT CARD}" * 64] * 16, "\N{TEDDY BEAR}" * 2000)
    return Submission(url_in("DE", f"/{i}/" + "p" * 4000), facts, (make_test_item(f"bulk-{i}"),))


@pytest.mark.timeout(90)
def test_batches_close_on_bytes_so_large_reports_in_bulk_get_through(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(plans=TRIO, extra_settings=tuning(max_message_bytes=MESSAGE_BYTES))
    node = cluster.node(NL)
    prepared = [node.intake.prepare(_bulky(i)) for i in range(100)]
    total = sum(len(p.wire) for p in prepared)
    assert total > 1.5 * MESSAGE_BYTES  # more than one message's worth, queued all at once
    # Hold the writer so all 100 commit in one group: the sender then finds them all pending.
    with writer_held(node.writer):
        futures = [node.intake.submit_prepared(p) for p in prepared]
    ids = {f.result(30).report_id for f in futures}

    wait_until(
        lambda: cluster.drained(NL) and cluster.count(DE, "reports") == len(ids),
        60,
        what="every large report delivered",
        show=lambda: cluster.delivery_state(NL),
    )
    assert {r.id for r in cluster.rows(DE, "SELECT id FROM reports")} == ids
    assert cluster.count(NL, "batches", "kind = 'report'") >= 2


@pytest.mark.timeout(90)
def test_a_report_too_large_to_exchange_never_blocks_the_destination(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(plans=TRIO)
    largest = Submission(
        url_in("DE", "/largest.jpg"),
        make_facts(SiteType.FORUM, True, ["\N{CREDIT CARD}" * 64] * 16, "\N{TEDDY BEAR}" * 2000),
        tuple(
            make_item([content_hash(f"max-{i}", a) for a in HashAlgorithm], Classification.BASELINE)
            for i in range(256)
        ),
    )
    before = make_submission(url_in("DE", "/before.jpg"), hashes=["max-before"])
    after = make_submission(url_in("DE", "/after.jpg"), hashes=["max-after"])

    responses = cluster.submit_mixed(NL, [before, largest, after])
    acked = [r.report_id for r in responses if not r.error_code]
    big = responses[1]
    if big.error_code:
        # Refused at intake: a clear reason, and nothing of it stored or queued.
        assert big.error_code == "report-too-large", big
        assert "split" in big.error
        assert cluster.count(NL, "reports", "url = :u", u=url_in("DE", "/largest.jpg")) == 0
    assert responses[0].report_id in acked
    assert responses[2].report_id in acked

    # Whatever intake acknowledged arrives, the reports behind the large one included.
    wait_until(
        lambda: cluster.drained(NL) and cluster.count(DE, "reports") == len(acked),
        30,
        what="every acknowledged report at de-eco",
        show=lambda: cluster.delivery_state(NL),
    )
    assert {r.id for r in cluster.rows(DE, "SELECT id FROM reports")} == set(acked)
