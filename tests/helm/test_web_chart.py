"""The web view in the Helm chart: off by default; when on, its own Deployment (``ihx web``,
HTTP probes on /healthz, no signing key or TLS key mounted), Service and NetworkPolicy, never
selecting the node's pods. (Every values file, ``ci/web-enabled.yaml`` included, is also linted,
validated strictly and checked for non-root pods by test_chart.py.)"""

from __future__ import annotations

import helm_python as helm
import pytest

from tests.helm.test_chart import (
    DEFAULT,
    FULLNAME,
    NAMESPACE,
    RELEASE,
    Rendered,
    chart,  # noqa: F401  (fixture)
    renders,  # noqa: F401  (fixture)
)

WEB = f"{FULLNAME}-web"
ENABLED = "web-enabled"


def test_web_is_off_by_default(renders: dict[str, Rendered]) -> None:  # noqa: F811
    rendered = renders[DEFAULT]
    assert rendered.values["web"]["enabled"] is False
    for kind in ("Deployment", "Service", "NetworkPolicy"):
        assert not rendered.has(kind, WEB), kind
    assert "Web view" not in rendered.notes
    assert f"port-forward svc/{WEB} 8080" in renders[ENABLED].notes


def test_web_deployment_runs_ihx_web_with_http_probes(renders: dict[str, Rendered]) -> None:  # noqa: F811
    rendered = renders[ENABLED]
    deployment = rendered.get("Deployment", WEB)
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["web", "--config", "/etc/ihx/config/node.toml"]
    env = {e["name"]: e for e in container["env"]}
    assert env["IHX_WEB_ENABLED"]["value"] == "true"
    assert env["IHX_WEB_LISTEN"]["value"] == "0.0.0.0:8080"
    assert env["IHX_WEB_SESSION_LIFETIME_S"]["value"] == "1800"
    assert env["IHX_WEB_SECURE_COOKIES"]["value"] == "true"  # TLS ends at the ingress
    assert env["IHX_WEB_PDQ_INDEX"]["value"] == "true"  # the chart documents its memory
    # The ingress controller's range: its X-Forwarded-For names the client for the login limit.
    assert env["IHX_WEB_TRUSTED_PROXIES"]["value"] == "10.244.0.0/16"
    assert "IHX_DATABASE_URL" in env
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    # It verifies tokens with the manifest's keys: no signing key, TLS key or GeoIP volume.
    assert {v["name"] for v in spec["volumes"]} == {"config", "tmp"}
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert labels["app.kubernetes.io/component"] == "web"
    # The node's objects never select the web pods, nor the web's the node's.
    node_selector = rendered.deployment["spec"]["selector"]["matchLabels"]
    assert rendered.get("Service")["spec"]["selector"] == node_selector
    assert node_selector != labels


def test_web_service_and_network_policy(renders: dict[str, Rendered]) -> None:  # noqa: F811
    rendered = renders[ENABLED]
    service = rendered.get("Service", WEB)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8080, "http")]
    web_labels = rendered.get("Deployment", WEB)["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == web_labels
    policy = rendered.get("NetworkPolicy", WEB)
    assert policy["spec"]["podSelector"]["matchLabels"] == web_labels
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == rendered.values["web"]["networkPolicy"]["from"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    egress_ports = {p["port"] for r in policy["spec"]["egress"] for p in r["ports"]}
    assert egress_ports == {53, 5432}


@pytest.mark.parametrize("port", [7443, 7444, 9464, 80])
def test_web_port_may_not_clash_or_be_privileged(chart: helm.Chart, port: int) -> None:  # noqa: F811
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.render({"web": {"enabled": True, "port": port}}, name=RELEASE, namespace=NAMESPACE)
    assert "schema" in str(caught.value)
    assert "/web/port" in str(caught.value)


def test_web_pod_is_locked_down_like_the_node(renders: dict[str, Rendered]) -> None:  # noqa: F811
    rendered = renders[ENABLED]
    spec = rendered.get("Deployment", WEB)["spec"]["template"]["spec"]
    assert spec["securityContext"] == rendered.pod_spec["securityContext"]
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    assert container["securityContext"] == rendered.node_container["securityContext"]
    assert container["resources"]["limits"]["memory"]
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp"}
