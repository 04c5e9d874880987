"""Helm values for law-enforcement partners and external token issuers.

Rendered from ``ci/partner-police-oidc.yaml``: the ConfigMap's node.toml carries the partner
rules as ``[[partners.rules]]`` and ``[auth] jwks`` naming trusted-issuers.json, which sits in
the same ConfigMap (and so in the mounted config directory). Both are read back by the node's
own loaders — settings and the trust file — so what the chart writes is what a node accepts. A
changed issuer list rolls the pods (the node reads it once); values a node would refuse
(plain-http JWKS URL, a second key source, an HMAC algorithm, a rule without classifications)
are refused by the chart's schema before anything is applied.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from auth.tokens import TrustedIssuer, load_jwks_issuers
from auth.tokens.remote import RemoteIssuer
from exchange.settings import load_settings
from tests.helm.test_chart import CHART, FULLNAME, Rendered, load_values, render

CASE = "partner-police-oidc"
CONFIG_DIR = "/etc/ihx/config"


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def rendered(chart: helm.Chart) -> Rendered:
    return render(chart, load_values(CASE))


def _unpack(rendered: Rendered, into: Path) -> Path:
    """The ConfigMap's files in ``into``, node.toml pointing there; the node.toml path."""
    data = rendered.get("ConfigMap", FULLNAME)["data"]
    for name, text in data.items():
        (into / name).write_text(text.replace(CONFIG_DIR, str(into)), encoding="utf-8")
    return into / "node.toml"


def test_partner_rules_and_issuers_are_what_the_node_loads(
    rendered: Rendered, tmp_path: Path
) -> None:
    # The DSN comes from a Secret in the pod, as here from the environment.
    env = {"IHX_DATABASE_URL": f"sqlite:///{tmp_path}/node.db"}
    settings = load_settings(_unpack(rendered, tmp_path), env=env)

    rules = {r.partner: r for r in settings.partner_rules}
    assert set(rules) == {"nl-police", "europol"}
    assert rules["nl-police"].countries == {"NL"}
    assert rules["nl-police"].classifications == {"baseline", "national"}
    assert rules["europol"].countries == frozenset()
    assert settings.partners.visibility_timeout_s == 600
    assert settings.jwks_path == tmp_path / "trusted-issuers.json"
    assert settings.auth.jwks_refresh_min_s == 60
    assert settings.auth.jwks_cache_s == 300  # unset: the node's default

    issuers = load_jwks_issuers(settings.jwks_path)
    police = issuers["https://login.politie.example/realms/ihx"]
    europol = issuers["https://sso.europol.example"]
    assert isinstance(police, RemoteIssuer)
    assert isinstance(europol, TrustedIssuer)
    assert set(europol.keys) == {"europol-ec-1"}


def test_the_defaults_write_neither(chart: helm.Chart) -> None:
    config = render(chart, {}).node_toml()
    assert "partners" not in config
    assert "auth" not in config
    assert "trusted-issuers.json" not in render(chart, {}).get("ConfigMap", FULLNAME)["data"]


def test_a_changed_issuer_list_rolls_the_pods(chart: helm.Chart, rendered: Rendered) -> None:
    values = copy.deepcopy(load_values(CASE))
    values["auth"]["trustedIssuers"][0]["iss"] = "https://login.politie.example/realms/other"
    changed = render(chart, values)

    def checksum(r: Rendered) -> str:
        return str(r.deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum(changed) != checksum(rendered)
    assert changed.node_toml() == rendered.node_toml()  # only the issuers file differs


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"jwks_uri": "http://idp.example/jwks"}, "jwks_uri"),
        ({"jwks_uri": "https://idp.example/jwks"}, "oneOf"),
        ({"algorithms": ["HS256"]}, "algorithms"),
        ({"scope": "admin"}, "scope"),
    ],
)
def test_issuers_a_node_would_refuse_are_refused_by_the_schema(
    chart: helm.Chart, change: dict[str, Any], problem: str
) -> None:
    values = copy.deepcopy(load_values(CASE))
    values["auth"]["trustedIssuers"][0].update(change)
    with pytest.raises(Exception, match=re.escape(problem)):
        render(chart, values)


def test_an_ec_key_whose_y_yaml_read_as_true_is_refused(chart: helm.Chart) -> None:
    values = copy.deepcopy(load_values(CASE))
    key = values["auth"]["trustedIssuers"][1]["jwks"]["keys"][0]
    key[True] = key.pop("y")  # what a bare `y:` becomes in YAML 1.1
    with pytest.raises(Exception, match="missing property 'y'"):
        render(chart, values)


def test_a_rule_without_classifications_is_refused_by_the_schema(chart: helm.Chart) -> None:
    values = copy.deepcopy(load_values(CASE))
    del values["partners"]["rules"][0]["classifications"]
    with pytest.raises(Exception, match="classifications"):
        render(chart, values)


def test_the_issuers_file_is_json_the_node_reads(rendered: Rendered) -> None:
    text = rendered.get("ConfigMap", FULLNAME)["data"]["trusted-issuers.json"]
    assert [i["iss"] for i in json.loads(text)["issuers"]] == [
        "https://login.politie.example/realms/ihx",
        "https://sso.europol.example",
    ]
