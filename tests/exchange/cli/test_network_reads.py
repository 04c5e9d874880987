"""``--token`` for every member's reads: one network token, or each member's own.

A token for every member is only ever a network token of this manifest's network: a token for
one node sent to all could be replayed by each of them to that node. The audience is read
unverified only to choose; a member's failure names the member, its address and the gRPC code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import jwt
import pytest

from auth.manifest import Manifest, network_audience, set_network_reader
from exchange.cli.common import CliError
from exchange.cli.network_reads import NetworkTokens, member_failure, parse_network_tokens
from tests.auth.factories import COORDINATOR, NETWORK, make_manifest


@pytest.fixture
def manifest() -> Manifest:
    return set_network_reader(make_manifest(), COORDINATOR, frozenset({"log:read"}))


def _token(aud: object) -> str:
    now = datetime.now(UTC)
    claims = {"aud": aud, "iss": "x", "exp": now + timedelta(minutes=5), "sub": "s"}
    return jwt.encode(claims, "not-a-secret-that-matters-here-0123456789", algorithm="HS256")


def test_one_network_token_goes_to_every_member(manifest: Manifest) -> None:
    token = _token(network_audience(NETWORK))
    tokens = parse_network_tokens([token, "de-eco=mine.own.token"], manifest)

    assert tokens == NetworkTokens(token, {"de-eco": "mine.own.token"})
    assert tokens.token_for("nl-eokm") == token
    assert tokens.token_for("de-eco") == "mine.own.token"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([_token("de-eco")], "must be a network token (audience ihx-network:inhope-test"),
        ([_token("ihx-network:other")], "this one is for ihx-network:other"),
        ([_token([network_audience(NETWORK)])], "must be a network token"),
        (["a.b.c"], "--token: not a JWT"),
        (["xx-nobody=t"], "'xx-nobody' is not a member of the manifest"),
        (["de-eco=x", "de-eco=y"], "'de-eco' given twice"),
        (["de-eco="], "the token is empty"),
    ],
)
def test_tokens_that_could_be_replayed_or_are_wrong_are_refused(
    manifest: Manifest, values: list[str], message: str
) -> None:
    with pytest.raises(CliError) as caught:
        parse_network_tokens(values, manifest)
    assert message in caught.value.message


def test_two_tokens_for_everyone_are_refused(manifest: Manifest) -> None:
    token = _token(network_audience(NETWORK))
    with pytest.raises(CliError, match="one token for every member at most"):
        parse_network_tokens([token, token], manifest)


class _Refusal(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_a_failure_names_the_member_its_address_and_the_code() -> None:
    error = _Refusal(grpc.StatusCode.PERMISSION_DENIED, "token-network-scope: only\x1b[31m reads")
    text = member_failure("de-eco", "127.0.0.1:7702", error)
    assert text.startswith("de-eco (127.0.0.1:7702): PERMISSION_DENIED: token-network-scope")
    assert text.isprintable()
    long = member_failure("de-eco", "a:1", _Refusal(grpc.StatusCode.INTERNAL, "x" * 1000))
    assert len(long) < 260
