"""``ihx token issue``: a token the node accepts, with exactly the scopes asked for.

The token is printed on one line; nl-eokm's verifier (and its RPCs over real gRPC) accept it for
the subject and scopes given and nothing more. An unknown scope, a lifetime beyond the node's
maximum (or below one second) and an invalid subject are refused with one error line, exit 2.
"""

from __future__ import annotations

import base64
import json
from typing import Any, cast

import grpc
import pytest
from typer.testing import CliRunner, Result

from auth.tokens import Scope
from exchange.cli.main import app
from exchange.client.stubs import IntakeClient, LogClient, PartnerClient
from tests.exchange.cli.conftest import Running
from tests.exchange.factories import make_submission

pytestmark = pytest.mark.timeout(60)

NL = "nl-eokm"


def issue(runner: CliRunner, running: Running, *args: str) -> Result:
    return runner.invoke(app, ["token", "issue", "--config", str(running.config(NL)), *args])


def payload(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    return cast(dict[str, Any], json.loads(base64.urlsafe_b64decode(segment + "==")))


def status(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return cast(grpc.Call, info.value).code()


def test_issued_token_is_accepted_with_exactly_its_scopes(
    runner: CliRunner, federation: Running
) -> None:
    result = issue(
        runner, federation, "--sub", "nl-police", "--scope", "cases:pull", "--scope", "log:read"
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    token = lines[0]

    node = federation.nodes[NL]
    principal = node.verifier.verify(token)
    assert principal.subject == "nl-police"
    assert principal.scopes == {Scope.CASES_PULL, Scope.LOG_READ}
    assert principal.issuer == node.settings.token_issuer
    claims = payload(token)
    assert claims["aud"] == NL
    assert claims["exp"] - claims["iat"] == 900  # the default lifetime

    # Over the wire: the two scopes open their RPCs, intake stays closed.
    address = federation.address(NL)
    with LogClient(address, token=token) as log:
        held = federation.query(NL, "SELECT count(*) FROM routing_log")[0][0]
        assert len(list(log.entries())) == held
    with PartnerClient(address, token=token) as partner:
        # Accepted by the interceptor; nl-police is no configured partner of this node.
        assert status(lambda: list(partner.pull())) is grpc.StatusCode.PERMISSION_DENIED
    with IntakeClient(address, token=token) as intake:
        assert status(lambda: intake.submit(make_submission())) is grpc.StatusCode.PERMISSION_DENIED
    # Another node does not take it.
    with LogClient(federation.address("de-eco"), token=token) as other:
        assert status(lambda: list(other.entries())) is grpc.StatusCode.UNAUTHENTICATED


def test_ttl_and_admin_scope(runner: CliRunner, federation: Running) -> None:
    result = issue(runner, federation, "--sub", "inhope-ops", "--scope", "admin", "--ttl", "60")
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    claims = payload(token)
    assert claims["exp"] - claims["iat"] == 60
    assert claims["scope"] == "admin"
    principal = federation.nodes[NL].verifier.verify(token)
    assert principal.scopes == {Scope.ADMIN}
    with IntakeClient(federation.address(NL), token=token) as intake:
        assert intake.submit(make_submission()).report_id


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sub", "x", "--scope", "cases:delete"], "--scope: unknown scope 'cases:delete'"),
        (["--sub", "x", "--scope", "log:read", "--scope", "ADMIN"], "unknown scope 'ADMIN'"),
        (["--sub", "x", "--scope", "log:read", "--ttl", "901"], "--ttl: must be from 1 to 900"),
        (["--sub", "x", "--scope", "log:read", "--ttl", "86400"], "--ttl: must be from 1 to 900"),
        (["--sub", "x", "--scope", "log:read", "--ttl", "0"], "--ttl: must be from 1 to 900"),
        (["--sub", "has space", "--scope", "log:read"], "subject must be"),
    ],
    ids=["unknown-scope", "scope-case", "ttl-901", "ttl-day", "ttl-zero", "bad-subject"],
)
def test_bad_requests_exit_2_with_one_line(
    runner: CliRunner, federation: Running, args: list[str], message: str
) -> None:
    result = issue(runner, federation, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("ihx: error: ")
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr
