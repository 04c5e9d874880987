"""One coordinator identity across the network: a network token read by every node.

Three real nodes (nl-eokm, de-eco and the coordinator inhope). The coordinator publishes a
manifest naming inhope a network reader for ``log:read`` and ``stats:read``; every node picks
it up live. ``ihx token issue --network`` at inhope then mints one token with which
``ihx log --network`` and ``ihx stats --network`` read every member. A network token carrying
``cases:pull`` or ``reports:submit`` — signed with inhope's real key — is refused at every node
with PERMISSION_DENIED naming the rule, a token for another network is refused everywhere, and
once a manifest revokes inhope's key the same token stops working at every node, and the CLI
names each node that refused it and exits 1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from typer.testing import CliRunner

from auth.manifest import (
    Manifest,
    bump_epoch,
    network_audience,
    network_issuer,
    revoke_key,
    set_network_reader,
)
from auth.tokens import Scope, TokenIssuer
from common.clock import system_clock
from exchange.cli.main import app
from exchange.client.stubs import LogClient
from exchange.wire.codec import submission_to_proto
from ihx.v1 import intake_pb2_grpc as igrpc
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import partner_pb2_grpc as pgrpc
from tests.exchange.factories import make_submission, url_in
from tests.integration.conftest import MakeCluster
from tests.integration.support import COORDINATOR, DE, NL, PLANS, Cluster, wait_until

pytestmark = pytest.mark.timeout(120)

MEMBERS = (NL, DE, COORDINATOR)


def _ihx(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    return result.exit_code, result.stdout, result.stderr


def _publish(cluster: Cluster, manifest: Manifest) -> Manifest:
    manifest = bump_epoch(manifest, issued_at=max(datetime.now(UTC), manifest.issued_at))
    cluster.fed.publish(manifest)
    wait_until(
        lambda: all(cluster.node(m).manifests.current().epoch == manifest.epoch for m in MEMBERS),
        what=f"every node at epoch {manifest.epoch}",
    )
    return manifest


def _forged(cluster: Cluster, *scopes: Scope, audience: str | None = None) -> str:
    """A network token signed with inhope's real key, by an issuer that checks no grant."""
    issuer = TokenIssuer(
        cluster.fed.keys[COORDINATOR],
        network_issuer(COORDINATOR),
        audience or network_audience(cluster.fed.manifest.network),
        system_clock,
    )
    return issuer.issue("coordinator", scopes, ttl=timedelta(minutes=5))


def _refusal(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def _pull(cluster: Cluster, member: str, token: str) -> grpc.RpcError:
    with grpc.insecure_channel(cluster.address(member)) as channel:
        stub = pgrpc.PartnerStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        return _refusal(
            lambda: list(stub.PullCases(ppb.PullCasesRequest(), metadata=metadata, timeout=10))
        )


def _submit(cluster: Cluster, member: str, token: str) -> grpc.RpcError:
    request = submission_to_proto(make_submission(url_in("DE", "/net/1.jpg")))
    with grpc.insecure_channel(cluster.address(member)) as channel:
        stub = igrpc.IntakeStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        return _refusal(lambda: stub.SubmitReport(request, metadata=metadata, timeout=10))


def _log_refusal(cluster: Cluster, member: str, token: str) -> grpc.RpcError:
    with LogClient(cluster.address(member), token=token) as client:
        return _refusal(lambda: list(client.entries()))


def test_one_coordinator_token_reads_the_whole_network(make_cluster: MakeCluster) -> None:
    plans = tuple(p for p in PLANS if p.id in MEMBERS)
    cluster = make_cluster(plans=plans)
    fed = cluster.fed
    manifest = fed.root / NL / "manifest.json"
    # To de-eco, and (JP: no member, no rule) to the coordinator: every log has entries.
    cluster.submit(NL, [make_submission(url_in(cc, f"/net/0-{cc}.jpg")) for cc in ("DE", "JP")])
    wait_until(lambda: cluster.drained(NL), what="the reports receipted")

    # Before the grant, inhope is no network reader: its node refuses to mint the token.
    code, _, stderr = _ihx(
        "token", "issue", "--config", str(cluster.config(COORDINATOR)), "--sub", "coordinator",
        "--scope", "log:read", "--network",
    )  # fmt: skip
    assert code == 2
    assert "inhope is not a network reader" in stderr

    reads = frozenset({"log:read", "stats:read"})
    granted = _publish(cluster, set_network_reader(fed.manifest, COORDINATOR, reads))
    code, stdout, stderr = _ihx(
        "token", "issue", "--config", str(cluster.config(COORDINATOR)), "--sub", "coordinator",
        "--scope", "log:read", "--scope", "stats:read", "--network",
    )  # fmt: skip
    assert code == 0, stderr
    token = stdout.strip()

    # One token, every member's log and figures.
    code, stdout, stderr = _ihx("log", "--network", str(manifest), "--token", token, "--json")
    assert code == 0, stderr
    assert {json.loads(line)["node"] for line in stdout.splitlines()} == set(MEMBERS)
    today = datetime.now(UTC).date()
    code, stdout, stderr = _ihx(
        "stats", "--config", str(cluster.config(COORDINATOR)), "--network", "--token", token,
        "--from", str(today - timedelta(days=1)), "--to", str(today), "--by", "day", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout)["members"] == {"answered": sorted(MEMBERS), "missing": {}}

    # Write scopes in a network token, even signed with the reader's real key: denied everywhere.
    pull, submit = _forged(cluster, Scope.CASES_PULL), _forged(cluster, Scope.REPORTS_SUBMIT)
    other_network = _forged(cluster, Scope.LOG_READ, audience=network_audience("other-net"))
    for member in MEMBERS:
        for refusal in (_pull(cluster, member, pull), _submit(cluster, member, submit)):
            assert refusal.code() is grpc.StatusCode.PERMISSION_DENIED, member
            assert "token-network-scope" in (refusal.details() or "")
            assert "network_readers" in (refusal.details() or "")
        refusal = _log_refusal(cluster, member, other_network)
        assert refusal.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "token-audience" in (refusal.details() or "")
    assert cluster.count(DE, "reports", "url LIKE '%/net/1.jpg'") == 0

    # The reader's key revoked: the very same token stops at every node.
    key_id = fed.keys[COORDINATOR].key_id
    _publish(cluster, revoke_key(granted, COORDINATOR, key_id, at=datetime.now(UTC)))
    for member in MEMBERS:
        refusal = _log_refusal(cluster, member, token)
        assert refusal.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "token-key-not-valid" in (refusal.details() or "")
    code, _, stderr = _ihx("log", "--network", str(manifest), "--token", token)
    assert code == 1
    for member in MEMBERS:
        address = cluster.address(member)
        assert f"{member} ({address}): UNAUTHENTICATED: token-key-not-valid" in stderr
