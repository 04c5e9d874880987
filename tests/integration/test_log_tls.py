"""``ihx log`` against members that speak mutual TLS: ``--tls-config`` presents a node's identity.

Without it the node's TLS port cannot be read at all (no client certificate); with the node's
own node.toml the log is listed and verified over mTLS, the token inside the TLS channel.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from auth.tokens import Scope
from exchange.cli.main import app
from exchange.client.stubs import IntakeClient
from tests.exchange.factories import make_submission, url_in
from tests.integration.support import NL, PLANS, Cluster, provision, wait_until

pytestmark = pytest.mark.timeout(180)


def _ihx(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    return result.exit_code, result.stdout + result.stderr


def test_log_is_read_and_verified_over_mutual_tls(tmp_path: Path) -> None:
    cluster = Cluster(provision(tmp_path / "tls", tls=True))
    try:
        cluster.start(*(p.id for p in PLANS))
        tls = cluster.fed.client_tls(NL)
        with IntakeClient(cluster.address(NL), token=cluster.token(NL), tls=tls) as intake:
            intake.submit(make_submission(url_in("DE", "/tls-log.jpg")))
        wait_until(lambda: cluster.drained(NL), what="nl-eokm's report receipted")
        node, config = cluster.address(NL), str(cluster.config(NL))
        token = cluster.fed.token(NL, Scope.LOG_READ)
        manifest = str(cluster.fed.root / NL / "manifest.json")

        code, output = _ihx("log", "--node", node, "--token", token, "--json")
        assert code != 0  # plaintext to a TLS port: no answer

        code, output = _ihx("log", "--node", node, "--token", token, "--tls-config", config)
        assert code == 0, output
        assert "de-eco" in output  # the report's route to de-eco is in nl-eokm's log
        code, output = _ihx(
            "log", "verify", "--node", node, "--manifest", manifest, "--token", token,
            "--tls-config", config,
        )  # fmt: skip
        assert code == 0, output
    finally:
        cluster.close()
