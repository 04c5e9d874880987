"""What an external issuer's tokens may do: the trust file's ``grant`` and ``subjects``.

A partner's identity provider signs whatever its operators (or an intruder) ask, so the node
caps it: by default its tokens may carry ``cases:pull`` alone — ``admin`` or ``cases:work``
only when the file lists them — and, with ``subjects``, only the subjects that pattern matches
whole. Checked for keys in the file and for keys fetched by discovery (red-team rt2: a
compromised partner IdP granted itself admin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auth.errors import PermissionDenied, TrustConfigError
from auth.tokens import Scope, TokenPolicy, TokenVerifier, load_jwks_issuers
from auth.tokens.remote import RemoteIssuer
from tests.auth.test_remote_issuers import (  # noqa: F401 (fixtures)
    Idp,
    MakeWorld,
    _first,
    idp,
    make_world,
)
from tests.auth.token_factories import (
    AUDIENCE,
    NOW,
    POLICE_ISSUER,
    POLICE_KID,
    FakeClock,
    external_token,
    public_jwk,
    rsa_key,
    ts,
    write_json,
)


def _verifier(tmp_path: Path, **limits: Any) -> TokenVerifier:
    entry = {
        "iss": POLICE_ISSUER,
        "algorithms": ["RS256"],
        "jwks": {"keys": [public_jwk(rsa_key("police"), POLICE_KID)]},
        **limits,
    }
    path = write_json(tmp_path / "issuers.json", {"issuers": [entry]})
    policy = TokenPolicy(audience=AUDIENCE, issuers=load_jwks_issuers(path))
    return TokenVerifier(policy, FakeClock(NOW))


def _police(scope: str, sub: str = "nl-police") -> str:
    iat = ts(NOW)
    return external_token(
        POLICE_ISSUER, POLICE_KID, "RS256", rsa_key("police"), iat=iat, exp=iat + 300,
        scope=scope, sub=sub,
    )  # fmt: skip


def test_by_default_an_external_issuer_grants_cases_pull_only(tmp_path: Path) -> None:
    verifier = _verifier(tmp_path)
    assert verifier.verify(_police("cases:pull")).scopes == {Scope.CASES_PULL}
    for scope in ("admin", "cases:work", "cases:pull log:read"):
        with pytest.raises(PermissionDenied) as caught:
            verifier.verify(_police(scope))
        assert caught.value.code == "token-issuer-scope"


def test_a_listed_grant_allows_its_scopes_and_no_more(tmp_path: Path) -> None:
    verifier = _verifier(tmp_path, grant=["cases:pull", "cases:work"])
    assert verifier.verify(_police("cases:work")).has(Scope.CASES_WORK)
    with pytest.raises(PermissionDenied):
        verifier.verify(_police("admin"))
    assert _verifier(tmp_path, grant=["admin"]).verify(_police("admin")).has(Scope.ADMIN)


def test_subjects_limit_whom_an_issuer_may_name(tmp_path: Path) -> None:
    verifier = _verifier(tmp_path, subjects=r"nl-police(-[a-z]+)?")
    assert verifier.verify(_police("cases:pull", sub="nl-police-west")).subject
    for sub in ("be-police", "nl-police-west-x1", "xnl-police"):
        with pytest.raises(PermissionDenied) as caught:
            verifier.verify(_police("cases:pull", sub=sub))
        assert caught.value.code == "token-subject"


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ({"grant": []}, r"issuers\[0\]\.grant: must be a non-empty list"),
        ({"grant": "admin"}, r"issuers\[0\]\.grant: must be a non-empty list"),
        ({"grant": ["cases:pull", "root"]}, r"issuers\[0\]\.grant\[1\]: must be one of"),
        ({"subjects": "("}, r"issuers\[0\]\.subjects: not a regular expression"),
        ({"subjects": ""}, r"issuers\[0\]\.subjects: must be a regular expression"),
    ],
)
def test_bad_limits_are_refused_at_load(
    tmp_path: Path, limits: dict[str, Any], problem: str
) -> None:
    with pytest.raises(TrustConfigError, match=problem):
        _verifier(tmp_path, **limits)


def test_fetched_keys_carry_the_entrys_limits(
    make_world: MakeWorld,  # noqa: F811
    idp: Idp,  # noqa: F811
) -> None:
    idp.serve_keys((rsa_key("police"), "k1"))  # the partner's OIDC IdP, compromised
    world = make_world(idp.base, discovery=True)
    assert isinstance(world.remote, RemoteIssuer)
    now = ts(world.clock.now)
    admin = external_token(
        idp.base, "k1", "RS256", rsa_key("police"), iat=now, exp=now + 300,
        scope="admin cases:work", sub="nl-police",
    )  # fmt: skip
    with pytest.raises(PermissionDenied) as caught:
        _first(world, admin)
    assert caught.value.code == "token-issuer-scope"
