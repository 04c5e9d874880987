"""The Helm chart in helm/ihx: lint, render, validate offline, and check what it promises.

Everything runs offline: ``helm_python`` (PyPI ``helm-python-sdk``) carries Helm's Go SDK as a
bundled shared library, and ``kubernetes_validate`` carries the Kubernetes JSON schemas. The chart
is rendered once per values file (the defaults and every file in ``helm/ihx/ci/``) in a
module-scoped fixture; the tests then read the rendered objects.

Every rendered manifest is validated in strict mode (unknown fields are errors) against the
Kubernetes 1.30 schemas. The ServiceMonitor is a Prometheus Operator CRD that kubernetes-validate
has no schema for, so it is validated against ``SERVICE_MONITOR_SCHEMA`` below, which covers
exactly the fields the chart uses (and rejects any other).
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.helm.prometheus_rule import PROMETHEUS_RULE_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "ihx"
CI_VALUES = sorted(CHART.glob("ci/*.yaml"))
KUBERNETES_VERSION = "1.30"
RELEASE = "hotline"
NAMESPACE = "ihx"
FULLNAME = "hotline-ihx"

DEFAULT = "default"
PRODUCTION = "three-replicas-servicemonitor"
SINGLE = "chart-secrets-geoipupdate-single"
VALUES_NAMES = [DEFAULT, *(path.stem for path in CI_VALUES)]

GRPC_PORT = 7443
METRICS_PORT = 9464
CONFIG_PATH = "/etc/ihx/config/node.toml"

_DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}

SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "description": "monitoring.coreos.com/v1 ServiceMonitor, the fields the chart uses; the "
    "types and the duration pattern are those of the Prometheus Operator CRD.",
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": _STRING_MAP,
                "annotations": _STRING_MAP,
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _STRING_MAP},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                        },
                    },
                },
            },
        },
    },
}

CRD_SCHEMAS: Mapping[tuple[str, str], Mapping[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE_SCHEMA,
}


# --------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class Rendered:
    """One rendering of the chart: the values it used (defaults merged), the objects, NOTES."""

    values: dict[str, Any]
    objects: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str = FULLNAME) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]

    def has(self, kind: str, name: str = FULLNAME) -> bool:
        return any(o["metadata"]["name"] == name for o in self.of_kind(kind))

    @property
    def deployment(self) -> dict[str, Any]:
        return self.get("Deployment")

    @property
    def pod_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def node_container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.pod_spec["containers"]
        (container,) = (c for c in containers if c["name"] == "node")
        return container

    def node_toml(self, configmap: str = FULLNAME) -> dict[str, Any]:
        return tomllib.loads(self.get("ConfigMap", configmap)["data"]["node.toml"])


def load_values(name: str) -> dict[str, Any]:
    """User values of one case (the chart's own defaults apply underneath)."""
    if name == DEFAULT:
        return {}
    return helm.values_from_yaml((CHART / "ci" / f"{name}.yaml").read_text(encoding="utf-8"))


def render(chart: helm.Chart, values: dict[str, Any]) -> Rendered:
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    merged = chart.merge_values(values)
    objects: list[dict[str, Any]] = []
    notes = ""
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(values=merged, objects=objects, notes=notes)


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def renders(chart: helm.Chart) -> dict[str, Rendered]:
    """The chart rendered once per values case."""
    return {name: render(chart, load_values(name)) for name in VALUES_NAMES}


def with_values(base: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with top-level keys replaced."""
    values = copy.deepcopy(dict(base))
    values.update(overrides)
    return values


# --------------------------------------------------------------------------------------------
# Tooling is offline


def test_tooling_is_bundled_and_offline() -> None:
    package_dir = Path(helm.__file__).resolve().parent
    assert Path(helm.library_path).resolve().is_relative_to(package_dir), (
        "the Helm library must come from the installed wheel, not from the system"
    )
    assert f"{KUBERNETES_VERSION}.0" in kubernetes_validate.utils.all_versions()
    assert {p.stem for p in CI_VALUES} >= {PRODUCTION, SINGLE}


# --------------------------------------------------------------------------------------------
# Lint and validation of every rendered manifest


@pytest.mark.parametrize("name", VALUES_NAMES)
def test_lint_is_clean(name: str) -> None:
    report = helm.lint(
        CHART, load_values(name), strict=True, kube_version=f"v{KUBERNETES_VERSION}.0"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert problems == []


def validate_object(obj: dict[str, Any]) -> None:
    crd_schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if crd_schema is not None:
        jsonschema.Draft7Validator(crd_schema).validate(obj)
        return
    version = kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert version == KUBERNETES_VERSION


@pytest.mark.parametrize("name", VALUES_NAMES)
def test_every_manifest_validates_strictly(renders: dict[str, Rendered], name: str) -> None:
    rendered = renders[name]
    assert rendered.objects
    failures = []
    for obj in rendered.objects:
        try:
            validate_object(obj)
        except (jsonschema.ValidationError, kubernetes_validate.SchemaNotFoundError) as error:
            where = ".".join(str(p) for p in getattr(error, "path", ()))
            message = getattr(error, "message", str(error))
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {message}")
    assert failures == []


def test_validation_catches_unknown_fields(renders: dict[str, Rendered]) -> None:
    """The validators are not vacuous: strict mode rejects a field Kubernetes does not have."""
    deployment = copy.deepcopy(renders[DEFAULT].deployment)
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"]["tls"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="tls"):
        validate_object(deployment)

    monitor = copy.deepcopy(renders[PRODUCTION].get("ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        validate_object(monitor)
    monitor = copy.deepcopy(renders[PRODUCTION].get("ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(jsonschema.ValidationError):
        validate_object(monitor)


# --------------------------------------------------------------------------------------------
# values.schema.json: bad values fail to render, and the message names the field

SCHEMA_VIOLATIONS = [
    pytest.param({"replicas": 0}, "/replicas", id="replicas-zero"),
    pytest.param({"replicas": "3"}, "/replicas", id="replicas-string"),
    pytest.param({"replicaCount": 3}, "replicaCount", id="unknown-top-level-key"),
    pytest.param({"node": {"member": "NL_EOKM"}}, "/node/member", id="member-uppercase"),
    pytest.param({"node": {"member": "n"}}, "/node/member", id="member-too-short"),
    pytest.param({"node": {"member": "nl-eokm", "id": "x"}}, "id", id="unknown-nested-key"),
    pytest.param({"resources": "large"}, "/resources", id="resources-not-object"),
    pytest.param(
        {"resources": {"requests": {"cpu": ["1"]}}}, "/resources/requests/cpu", id="cpu-list"
    ),
    pytest.param(
        {"resources": {"requests": {"memory": "lots"}}},
        "/resources/requests/memory",
        id="memory-not-quantity",
    ),
    pytest.param({"resources": {"request": {"cpu": "1"}}}, "request", id="resources-typo"),
    pytest.param(
        {"manifest": {"trustedKeys": ["not-a-key"]}}, "/manifest/trustedKeys/0", id="trusted-key"
    ),
    pytest.param({"exchange": {"window": 100}}, "/exchange/window", id="exchange-range"),
    pytest.param({"exchange": {"windows": 8}}, "windows", id="exchange-unknown-key"),
    pytest.param({"geoip": {"source": "s3"}}, "/geoip/source", id="geoip-source-enum"),
    pytest.param({"health": {"port": GRPC_PORT}}, "/health/port", id="health-port-clash"),
    pytest.param({"secrets": {"create": True}}, "/secrets/signingKey", id="created-secret-empty"),
    pytest.param(
        {"secrets": {"signingKey": "ssh-ed25519 AAAA"}}, "/secrets/signingKey", id="key-not-pem"
    ),
    pytest.param(
        {"networkPolicy": {"ingress": {"grpcFrom": [{"cidr": "10.0.0.0/8"}]}}},
        "/networkPolicy/ingress/grpcFrom/0",
        id="peer-without-ipblock",
    ),
    pytest.param(
        {"extraEnv": [{"name": "IHX_EXCHANGE_WINDOW", "value": 8}]},
        "/extraEnv/0/value",
        id="env-value-not-string",
    ),
    pytest.param(
        {"metrics": {"serviceMonitor": {"interval": "often"}}},
        "/metrics/serviceMonitor/interval",
        id="scrape-interval",
    ),
]


@pytest.mark.parametrize(("values", "field"), SCHEMA_VIOLATIONS)
def test_values_breaking_the_schema_fail_to_render(
    chart: helm.Chart, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    message = str(caught.value)
    assert "schema" in message
    assert field in message


def test_pdb_budget_must_leave_a_pod_to_evict(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"podDisruptionBudget\.minAvailable"):
        chart.render(
            {"replicas": 2, "podDisruptionBudget": {"minAvailable": 2}},
            name=RELEASE,
            namespace=NAMESPACE,
        )


# --------------------------------------------------------------------------------------------
# What the rendered objects promise


def all_pod_specs(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    specs = [("Deployment", rendered.pod_spec)]
    specs += [("Job", job["spec"]["template"]["spec"]) for job in rendered.of_kind("Job")]
    return specs


@pytest.mark.parametrize("name", VALUES_NAMES)
def test_pods_run_non_root_read_only_without_privileges(
    renders: dict[str, Rendered], name: str
) -> None:
    rendered = renders[name]
    for kind, spec in all_pod_specs(rendered):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, kind
        assert pod["runAsUser"] == 10001, kind
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, kind
        assert spec["automountServiceAccountToken"] is False, kind
        containers = spec["containers"] + spec.get("initContainers", [])
        for container in containers:
            where = f"{kind}/{container['name']}"
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["runAsUser"] == 10001, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert container["resources"].get("limits", {}).get("memory"), where
            # /tmp is the only writable path: every other mount is read-only.
            writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
            allowed = {"/tmp"} | (
                {"/var/lib/ihx/geoip"} if container["name"] == "geoipupdate" else set()
            )
            assert writable <= allowed, where
            assert "/tmp" in writable, where


@pytest.mark.parametrize("name", VALUES_NAMES)
def test_probes_use_grpc_health_on_a_plaintext_pod_port(
    renders: dict[str, Rendered], name: str
) -> None:
    rendered = renders[name]
    container = rendered.node_container
    health_port = rendered.values["health"]["port"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": GRPC_PORT, "health": health_port, "metrics": METRICS_PORT}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        # The kubelet's grpc probe cannot do (m)TLS, so it must never target the mTLS port.
        assert container[probe]["grpc"] == {"port": health_port}, probe
    env = {e["name"]: e for e in container["env"]}
    assert env["IHX_HEALTH_LISTEN"]["value"] == f"0.0.0.0:{health_port}"
    service_ports = {p["port"] for s in rendered.of_kind("Service") for p in s["spec"]["ports"]}
    assert health_port not in service_ports


@pytest.mark.parametrize("name", VALUES_NAMES)
def test_deployment_shape(renders: dict[str, Rendered], name: str) -> None:
    rendered = renders[name]
    deployment = rendered.deployment
    assert deployment["spec"]["replicas"] == rendered.values["replicas"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    container = rendered.node_container
    # The image's own ENTRYPOINT/CMD start the node; the chart does not override them.
    assert "command" not in container
    assert "args" not in container
    assert container["resources"] == rendered.values["resources"]
    database = rendered.values["database"]
    env = {e["name"]: e for e in container["env"]}
    assert env["IHX_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": database["existingSecret"],
        "key": database["secretKey"],
    }
    for extra in rendered.values["extraEnv"]:
        assert env[extra["name"]] == extra
    spread = rendered.pod_spec.get("topologySpreadConstraints", [])
    if rendered.values["topologySpread"]["enabled"]:
        assert {c["topologyKey"] for c in spread} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }
        for constraint in spread:
            assert constraint["labelSelector"]["matchLabels"] == selector
    else:
        assert spread == []


def test_config_change_rolls_pods_but_manifest_change_does_not(
    chart: helm.Chart, renders: dict[str, Rendered]
) -> None:
    def checksum(rendered: Rendered) -> str:
        annotations = rendered.deployment["spec"]["template"]["metadata"]["annotations"]
        value: str = annotations["checksum/config"]
        return value

    base_values = load_values(PRODUCTION)
    base = renders[PRODUCTION]
    assert re.fullmatch(r"[0-9a-f]{64}", checksum(base))

    tuned = render(chart, with_values(base_values, exchange={"window": 16}))
    assert checksum(tuned) != checksum(base)

    new_manifest = with_values(
        base_values,
        manifest={**base_values["manifest"], "content": '{"manifest": {"epoch": 2}}'},
    )
    epoch2 = render(chart, new_manifest)
    assert epoch2.get("ConfigMap")["data"]["manifest.json"] == '{"manifest": {"epoch": 2}}'
    assert checksum(epoch2) == checksum(base)


def test_chart_made_secret_change_rolls_pods(
    chart: helm.Chart, renders: dict[str, Rendered]
) -> None:
    values = load_values(SINGLE)
    base = renders[SINGLE].deployment["spec"]["template"]["metadata"]["annotations"]
    rotated = render(
        chart,
        with_values(
            values,
            secrets={**values["secrets"], "signingKey": "-----BEGIN PRIVATE KEY-----\nOTHER\n"},
        ),
    ).deployment["spec"]["template"]["metadata"]["annotations"]
    assert rotated["checksum/secret"] != base["checksum/secret"]
    assert rotated["checksum/config"] == base["checksum/config"]


# The [section] key layout the node reads (exchange/settings.py, plus [tls] and [metrics]).
NODE_TOML_KEYS = {
    "node": {"member", "listen", "insecure_loopback"},
    "keys": {"signing_key"},
    "manifest": {"path", "trusted_keys"},
    "database": {"url"},
    "geoip": {"country_db", "asn_db"},
    "resolver": {"kind", "nameservers", "static"},
    "tls": {"cert", "key", "ca"},
    "metrics": {"listen"},
    "auth": {"jwks", "jwks_cache_s", "jwks_refresh_min_s", "jwks_timeout_s", "jwks_max_stale_s"},
    "partners": {"rules", "visibility_timeout_s"},
    "exchange": {
        "max_batch",
        "linger_ms",
        "window",
        "receipt_timeout_s",
        "stream_lifetime_s",
        "backoff_initial_s",
        "backoff_max_s",
        "max_payloads",
        "max_message_bytes",
        "manifest_poll_s",
    },
}


def mounted_path(container: dict[str, Any], pod_spec: dict[str, Any], path: str) -> dict[str, Any]:
    """The volume that provides ``path`` in ``container``; fails if nothing does."""
    target = PurePosixPath(path)
    mounts = [m for m in container["volumeMounts"] if target.is_relative_to(m["mountPath"])]
    assert mounts, f"{path} is not under any volume mount of {container['name']}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volumes: list[dict[str, Any]] = pod_spec["volumes"]
    (volume,) = (v for v in volumes if v["name"] == mount["name"])
    relative = str(target.relative_to(mount["mountPath"]))
    for source in ("configMap", "secret"):
        if source in volume and "items" in volume[source]:
            assert relative in {item["path"] for item in volume[source]["items"]}, path
    return volume


@pytest.mark.parametrize("name", VALUES_NAMES)
def test_node_toml_is_the_settings_layout_and_its_files_are_mounted(
    renders: dict[str, Rendered], name: str
) -> None:
    rendered = renders[name]
    values = rendered.values
    config = rendered.node_toml()
    for section, keys in config.items():
        assert section in NODE_TOML_KEYS, section
        assert set(keys) <= NODE_TOML_KEYS[section], section
    assert "database" not in config, "the DSN comes from a Secret, never from the ConfigMap"
    assert config["node"] == {
        "member": values["node"]["member"],
        "listen": f"0.0.0.0:{GRPC_PORT}",
    }
    assert config["metrics"] == {"listen": f"0.0.0.0:{METRICS_PORT}"}
    assert config["manifest"]["trusted_keys"] == values["manifest"]["trustedKeys"]
    assert config.get("exchange", {}) == values["exchange"]

    pod, container = rendered.pod_spec, rendered.node_container
    assert mounted_path(container, pod, CONFIG_PATH)["configMap"]["name"] == FULLNAME
    manifest_volume = mounted_path(container, pod, config["manifest"]["path"])
    existing = values["manifest"]["existingConfigMap"]
    assert manifest_volume["configMap"]["name"] == (existing or FULLNAME)
    # Whole-directory mounts only: a subPath mount never sees ConfigMap updates.
    assert all("subPath" not in m for m in container["volumeMounts"])

    secrets = values["secrets"]
    existing_secrets = secrets["existing"]
    key_volume = mounted_path(container, pod, config["keys"]["signing_key"])
    tls_volumes = [mounted_path(container, pod, config["tls"][k]) for k in ("cert", "key", "ca")]
    if secrets["create"]:
        assert key_volume["secret"]["secretName"] == FULLNAME
        assert {v["secret"]["secretName"] for v in tls_volumes} == {FULLNAME}
        secret = rendered.get("Secret")
        assert set(secret["data"]) == {"signing.key", "tls.crt", "tls.key", "ca.crt"}
    else:
        assert not rendered.of_kind("Secret")
        assert key_volume["secret"]["secretName"] == existing_secrets["signingKeySecret"]
        assert {v["secret"]["secretName"] for v in tls_volumes} == {existing_secrets["tlsSecret"]}
    for volume in [key_volume, *tls_volumes]:
        assert volume["secret"]["defaultMode"] == 0o440

    geoip = values["geoip"]
    country = mounted_path(container, pod, config["geoip"]["country_db"])
    if geoip["source"] == "geoipupdate":
        assert "emptyDir" in country
        (init,) = pod["initContainers"]
        assert init["name"] == "geoipupdate"
        assert any(m["name"] == country["name"] for m in init["volumeMounts"])
    else:
        assert country["persistentVolumeClaim"] == {
            "claimName": geoip["existingClaim"],
            "readOnly": True,
        }
        assert "initContainers" not in pod
    assert ("asn_db" in config["geoip"]) == bool(geoip["asnFile"])


@pytest.mark.parametrize("name", VALUES_NAMES)
def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(
    renders: dict[str, Rendered], name: str
) -> None:
    rendered = renders[name]
    jobs = rendered.of_kind("Job")
    if not rendered.values["migrations"]["enabled"]:
        assert jobs == []
        assert not rendered.has("ConfigMap", f"{FULLNAME}-migrate")
        return
    job = rendered.get("Job", f"{FULLNAME}-migrate")
    hook_config = rendered.get("ConfigMap", f"{FULLNAME}-migrate")
    for obj in (job, hook_config):
        annotations = obj["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"].split(",")
    # Helm creates hooks in weight order: the Job's config exists before the Job.
    assert int(hook_config["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    assert hook_config["data"]["node.toml"] == rendered.get("ConfigMap")["data"]["node.toml"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["db", "upgrade", "--config", CONFIG_PATH]
    assert mounted_path(container, pod, CONFIG_PATH)["configMap"]["name"] == f"{FULLNAME}-migrate"
    assert pod["restartPolicy"] == "Never"
    # At pre-install time nothing of the release exists yet: the Job may only refer to objects
    # made outside the chart (the database Secret) or hooks of its own.
    assert "serviceAccountName" not in pod
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes) == {"config", "tmp"}


def test_pdb_only_with_more_than_one_replica(
    chart: helm.Chart, renders: dict[str, Rendered]
) -> None:
    assert renders[DEFAULT].get("PodDisruptionBudget")["spec"]["minAvailable"] == 1
    production = renders[PRODUCTION].get("PodDisruptionBudget")
    assert production["spec"]["minAvailable"] == 2
    assert production["spec"]["selector"] == renders[PRODUCTION].deployment["spec"]["selector"]
    assert renders[SINGLE].deployment["spec"]["replicas"] == 1
    assert renders[SINGLE].of_kind("PodDisruptionBudget") == []
    disabled = render(chart, {"podDisruptionBudget": {"enabled": False, "minAvailable": 1}})
    assert disabled.of_kind("PodDisruptionBudget") == []


def test_service_monitor_only_when_enabled(renders: dict[str, Rendered]) -> None:
    assert renders[DEFAULT].of_kind("ServiceMonitor") == []
    assert renders[SINGLE].of_kind("ServiceMonitor") == []
    rendered = renders[PRODUCTION]
    monitor = rendered.get("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    # It selects exactly the in-cluster Service, the one with the metrics port.
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    selected = [s for s in rendered.of_kind("Service") if wanted <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == [FULLNAME]


@pytest.mark.parametrize("name", VALUES_NAMES)
def test_services_expose_grpc_and_metrics_but_never_metrics_outside(
    renders: dict[str, Rendered], name: str
) -> None:
    rendered = renders[name]
    service = rendered.get("Service")
    assert service["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"grpc": (GRPC_PORT, "grpc"), "metrics": (METRICS_PORT, "metrics")}
    selector = service["spec"]["selector"]
    assert selector == rendered.deployment["spec"]["selector"]["matchLabels"]
    external = rendered.values["service"]["external"]
    if external["enabled"]:
        outside = rendered.get("Service", f"{FULLNAME}-external")
        assert outside["spec"]["type"] == "LoadBalancer"
        assert [p["port"] for p in outside["spec"]["ports"]] == [GRPC_PORT]
        assert outside["spec"]["externalTrafficPolicy"] == "Local"
        assert outside["spec"]["loadBalancerSourceRanges"] == external["loadBalancerSourceRanges"]
    else:
        assert not rendered.has("Service", f"{FULLNAME}-external")


def test_service_account_does_not_mount_a_token(renders: dict[str, Rendered]) -> None:
    account = renders[DEFAULT].get("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert renders[DEFAULT].pod_spec["serviceAccountName"] == FULLNAME
    assert renders[SINGLE].of_kind("ServiceAccount") == []
    assert renders[SINGLE].pod_spec["serviceAccountName"] == "hotline-nodes"


def ingress_rules_by_port(policy: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    rules: dict[int, list[dict[str, Any]]] = {}
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), "an ingress rule without `from` admits everyone"
        for port in rule["ports"]:
            rules.setdefault(port["port"], []).extend(rule["from"])
    return rules


def test_network_policy_default_admits_only_monitoring_to_metrics(
    renders: dict[str, Rendered],
) -> None:
    rendered = renders[DEFAULT]
    policy = rendered.get("NetworkPolicy")
    assert policy["spec"]["podSelector"] == rendered.deployment["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert ingress_rules_by_port(policy) == {
        METRICS_PORT: [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ]
    }
    assert "networkPolicy.ingress.grpcFrom is empty" in rendered.notes


def test_network_policy_with_peers(renders: dict[str, Rendered]) -> None:
    rendered = renders[PRODUCTION]
    np_values = rendered.values["networkPolicy"]
    policy = rendered.get("NetworkPolicy")
    rules = ingress_rules_by_port(policy)
    assert set(rules) == {GRPC_PORT, METRICS_PORT}
    assert rules[GRPC_PORT] == np_values["ingress"]["grpcFrom"]
    egress = {
        tuple(sorted((p["protocol"], p["port"]) for p in rule["ports"])): rule.get("to")
        for rule in policy["spec"]["egress"]
    }
    assert egress == {
        (("TCP", 53), ("UDP", 53)): np_values["egress"]["dns"],
        (("TCP", 5432),): np_values["egress"]["postgresql"]["to"],
        (("TCP", GRPC_PORT),): np_values["egress"]["peers"]["to"],
    }
    assert renders[SINGLE].of_kind("NetworkPolicy") == []


def test_network_policy_with_nothing_admitted_denies_all_ingress(chart: helm.Chart) -> None:
    rendered = render(chart, {"networkPolicy": {"ingress": {"grpcFrom": [], "metricsFrom": []}}})
    policy = rendered.get("NetworkPolicy")
    assert policy["spec"]["ingress"] == []
    assert "Ingress" in policy["spec"]["policyTypes"]


def test_notes_warn_about_placeholders(renders: dict[str, Rendered]) -> None:
    assert "node.member is the placeholder" in renders[DEFAULT].notes
    assert "manifest.trustedKeys is empty" in renders[DEFAULT].notes
    assert "WARNING" not in renders[PRODUCTION].notes
    assert "stored in the release's Secret" in renders[SINGLE].notes


# --------------------------------------------------------------------------------------------
# The Dockerfile agrees with the chart


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def test_dockerfile_runs_the_node_as_the_chart_expects() -> None:
    instructions = dockerfile_instructions()
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert len(stages) >= 2, "multi-stage build"
    final = instructions[stages[-1] :]
    values = {word: rest for word, rest in final}
    assert values["USER"].split(":")[0] == "10001"
    assert json.loads(values["ENTRYPOINT"]) == ["ihx"]
    assert json.loads(values["CMD"]) == ["node", "run", "--config", CONFIG_PATH]
    assert set(values["EXPOSE"].split()) == {str(GRPC_PORT), str(METRICS_PORT)}
    assert "COPY --from=builder" in " ".join(f"{w} {r}" for w, r in final)
    assert not any(word == "RUN" and "apt-get" in rest for word, rest in final), "no compilers"


def test_exchange_tuning_schema_matches_the_node() -> None:
    """Every [exchange] key the node knows is settable in the chart, with the node's own range."""
    from exchange.settings import _LIMITS, ExchangeTuning

    schema = json.loads((CHART / "values.schema.json").read_text())
    properties = schema["properties"]["exchange"]["properties"]
    assert set(properties) == set(ExchangeTuning.__dataclass_fields__)
    for key, spec in properties.items():
        assert (spec["minimum"], spec["maximum"]) == _LIMITS[key], key
