"""``ihx token issue --scope stats:read``: the token a coordinator asks a node's statistics with.

Issued by the CLI, the token opens ``GetStatistics`` over real gRPC and the answer verifies
against nl-eokm's key in the signed manifest; the same subject with ``log:read`` only is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from typer.testing import CliRunner

from auth.tokens import Scope
from exchange.cli.main import app
from exchange.client.stubs import StatisticsClient
from exchange.stats.model import Granularity, Period
from exchange.wire.stats_signed import open_statistics
from tests.exchange.cli.conftest import Running

pytestmark = pytest.mark.timeout(60)

NL = "nl-eokm"


def _issue(runner: CliRunner, running: Running, scope: str) -> str:
    result = runner.invoke(
        app,
        [
            "token",
            "issue",
            "--config",
            str(running.config(NL)),
            "--sub",
            "inhope",
            "--scope",
            scope,
        ],
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_a_stats_read_token_gets_signed_statistics(runner: CliRunner, federation: Running) -> None:
    token = _issue(runner, federation, "stats:read")
    assert federation.nodes[NL].verifier.verify(token).scopes == {Scope.STATS_READ}
    today = datetime.now(UTC).date()
    period = Period(today, today, Granularity.DAY)
    with StatisticsClient(federation.address(NL), token=token) as client:
        answer = client.signed(period)
    snapshot = open_statistics(
        answer,
        member=NL,
        period=period,
        manifest=federation.fed.manifest,
        now=datetime.now(UTC),
        max_skew=timedelta(minutes=15),
    )
    assert snapshot.members == (NL,)

    log_only = _issue(runner, federation, "log:read")
    with (
        StatisticsClient(federation.address(NL), token=log_only) as client,
        pytest.raises(grpc.RpcError) as refused,
    ):
        client.signed(period)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
