"""Creating node directories: keys, settings, a migrated database — one node or a federation.

``write_settings`` and ``init_database`` are what ``ihx init`` uses for a real hotline (see
exchange/cli/node.py). ``provision_federation`` builds a
complete local network on loopback for the demo and the integration tests: a coordinator key,
one key and directory per member, a signed manifest, small GeoIP databases built on the fly and
a static resolver table — everything real (keys, signatures, databases, migrations), nothing
downloaded.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from auth.keys import SigningKey
from auth.manifest import Manifest, Member, MemberKey, sign_manifest
from auth.tls import Issued, create_ca, issue_node_certificate
from auth.tokens import Scope, TokenIssuer
from common.clock import system_clock
from exchange.errors import ConfigError
from exchange.settings import Settings, load_settings
from exchange.store.engine import open_engine
from exchange.store.migrate import upgrade
from routing.geoip_build import build_asn_db, build_country_db

# Where a node's TLS files live, relative to its directory (``write_settings(tls=True)``).
TLS_CERT, TLS_KEY, TLS_CA = "tls/node.crt", "tls/node.key", "tls/ca.crt"
# A SQLite file beside the settings (relative URLs resolve against the settings file).
DEFAULT_DATABASE_URL = "sqlite:///node.db"


# Ports handed out below the kernel's ephemeral range (Linux: 32768-60999): a port the kernel
# picked for us (bind to 0) is free only until the next outgoing connection, which may take it
# before the node binds it (seen in CI: a PostgreSQL connection on a test node's port). Ports
# under the range are never picked for outgoing connections; a random start per process keeps
# concurrent test runs on one machine apart.
_PORTS_LOW, _PORTS_HIGH = 20000, 32700
_port_lock = threading.Lock()
_next_offset: list[int] = []  # the process's next offset into the range, set on first use


def free_port(rng: random.Random = random.SystemRandom()) -> int:  # noqa: B008 - built once
    """A loopback TCP port free now and outside the range the kernel hands out by itself.

    The first call draws the process's starting point from `rng` (a parameter so tests can
    pin it); later calls walk on from the last port handed out.
    """
    span = _PORTS_HIGH - _PORTS_LOW
    with _port_lock:
        if not _next_offset:
            _next_offset.append(rng.randrange(span))
        for _ in range(span):
            port = _PORTS_LOW + _next_offset[0]
            _next_offset[0] = (_next_offset[0] + 1) % span
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise OSError("no free loopback port below the ephemeral range")


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_settings(
    path: Path,
    *,
    member: str,
    listen: str,
    trusted_keys: Sequence[str],
    country_db: Path,
    asn_db: Path | None,
    manifest: str = "manifest.json",
    static_hosts: Mapping[str, Sequence[str]] | None = None,
    extra: str = "",
    tls: bool = False,
    database_url: str = DEFAULT_DATABASE_URL,
    metrics_listen: str | None = None,
) -> None:
    """Write a node's settings; ``tls``: mutual TLS with the files in ``tls/`` beside them;
    ``metrics_listen``: Prometheus metrics served there (``[metrics] listen``).

    Without ``tls`` the node talks plaintext (``insecure_loopback``, loopback ``listen`` only).
    """
    lines = [
        "[node]",
        f"member = {_toml_str(member)}",
        f"listen = {_toml_str(listen)}",
        f"insecure_loopback = {'false' if tls else 'true'}",
        "",
        "[keys]",
        'signing_key = "node.key"',
        "",
        "[manifest]",
        f"path = {_toml_str(manifest)}",
        "trusted_keys = [" + ", ".join(_toml_str(k) for k in trusted_keys) + "]",
        "",
        "[database]",
        f"url = {_toml_str(database_url)}",
        "",
        "[geoip]",
        f"country_db = {_toml_str(str(country_db))}",
    ]
    if asn_db is not None:
        lines.append(f"asn_db = {_toml_str(str(asn_db))}")
    if tls:
        lines += [
            "",
            "[tls]",
            f"cert = {_toml_str(TLS_CERT)}",
            f"key = {_toml_str(TLS_KEY)}",
            f"ca = {_toml_str(TLS_CA)}",
        ]
    if metrics_listen is not None:
        lines += ["", "[metrics]", f"listen = {_toml_str(metrics_listen)}"]
    lines += _resolver_lines(static_hosts)
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")


def _resolver_lines(static_hosts: Mapping[str, Sequence[str]] | None) -> list[str]:
    if static_hosts is None:
        return ["", "[resolver]", 'kind = "dns"']
    return [
        "",
        "[resolver]",
        'kind = "static"',
        "",
        "[resolver.static]",
        *(
            f"{_toml_str(h)} = [" + ", ".join(_toml_str(a) for a in addrs) + "]"
            for h, addrs in static_hosts.items()
        ),
    ]


def init_database(settings: Settings) -> None:
    engine = open_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@dataclass(frozen=True, slots=True)
class MemberPlan:
    id: str
    name: str
    countries: tuple[str, ...]


@dataclass
class Federation:
    root: Path
    coordinator_key: SigningKey
    manifest: Manifest
    settings: dict[str, Settings] = field(default_factory=dict)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    # With ``provision_federation(tls=True)``: the development CA and each member's certificate.
    ca: Issued | None = None
    certificates: dict[str, Issued] = field(default_factory=dict)

    def config_path(self, member: str) -> Path:
        return self.root / member / "node.toml"

    def client_tls(self, member: str) -> tuple[bytes, bytes, bytes]:
        """(CA, certificate, key) for a client presenting ``member``'s node certificate."""
        if self.ca is None:
            raise ConfigError("this federation was provisioned without TLS")
        issued = self.certificates[member]
        return self.ca.certificate_pem, issued.certificate_pem, issued.key_pem

    def token(
        self, member: str, *scopes: Scope, subject: str = "analyst", ttl: float = 900.0
    ) -> str:
        """A token issued by ``member``'s node (as ``ihx token issue``); default scope intake."""
        issuer = TokenIssuer(
            self.keys[member],
            self.settings[member].token_issuer,
            member,
            system_clock,
        )
        granted = scopes or (Scope.REPORTS_SUBMIT,)
        return issuer.issue(subject, granted, ttl=timedelta(seconds=ttl))

    def publish(self, manifest: Manifest, signer: SigningKey | None = None) -> None:
        """Sign ``manifest`` and write it to every node's manifest file (atomically)."""
        data = sign_manifest(manifest, signer or self.coordinator_key)
        for member in self.settings:
            target = self.root / member / "manifest.json"
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        self.manifest = manifest


def provision_federation(
    root: Path,
    plans: Sequence[MemberPlan],
    *,
    coordinator: str,
    now: datetime,
    orphan_rules: Mapping[str, str],
    country_networks: Mapping[str, str],
    asn_networks: Mapping[str, tuple[int, str]],
    static_hosts: Mapping[str, Sequence[str]],
    network: str = "ihx-demo",
    extra_settings: str = "",
    tls: bool = False,
    database_url: Callable[[str], str] | None = None,
    metrics: bool = False,
) -> Federation:
    """A federation on 127.0.0.1; with ``tls``, mutual TLS between the nodes.

    ``tls`` creates a development CA in ``root/tls``, a node certificate per member (for
    127.0.0.1 and localhost) in each node's ``tls/`` directory, and names each certificate's
    fingerprint as the member's ``tls_identity`` in the manifest.

    ``database_url(member)`` gives each member's database URL (e.g. a fresh PostgreSQL database);
    without it every node gets ``node.db``, a SQLite file in its directory. ``metrics``: each
    node serves its metrics on a loopback port of its own (``settings[member].metrics_listen``).
    """
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ConfigError(f"{root}: directory is not empty")
    country_db, asn_db = _geo_databases(root / "geo", country_networks, asn_networks)
    coordinator_key = SigningKey.generate()
    coordinator_key.save(root / "coordinator.key")
    ports = {p.id: free_port() for p in plans}
    keys = {p.id: SigningKey.generate() for p in plans}
    ca, certificates = _development_tls(root, network, plans, now) if tls else (None, {})
    manifest = Manifest(
        network=network,
        epoch=1,
        issued_at=now,
        members=_members(plans, ports, keys, certificates, now),
        orphan_rules=dict(orphan_rules),
        coordinator=coordinator,
        coordinator_keys=(MemberKey.of(coordinator_key.public, now),),
    )
    fed = Federation(root, coordinator_key, manifest, keys=keys, ca=ca, certificates=certificates)
    signed = sign_manifest(manifest, coordinator_key)
    shared = _SharedSettings(
        coordinator_key.public.to_b64(), country_db, asn_db, static_hosts, extra_settings, ca
    )
    for p in plans:
        d = root / p.id
        _write_node_files(d, keys[p.id], signed, ca, certificates.get(p.id))
        fed.settings[p.id] = shared.write(
            d / "node.toml",
            p.id,
            ports[p.id],
            DEFAULT_DATABASE_URL if database_url is None else database_url(p.id),
            f"127.0.0.1:{free_port()}" if metrics else None,
        )
    return fed


def _geo_databases(
    geo: Path, country_networks: Mapping[str, str], asn_networks: Mapping[str, tuple[int, str]]
) -> tuple[Path, Path]:
    """Small country and ASN databases built in ``geo`` from the given networks."""
    geo.mkdir()
    country_db = build_country_db(geo / "country.mmdb", country_networks)
    asn_db = build_asn_db(geo / "asn.mmdb", asn_networks)
    return country_db, asn_db


def _development_tls(
    root: Path, network: str, plans: Sequence[MemberPlan], now: datetime
) -> tuple[Issued, dict[str, Issued]]:
    """A development CA (written to ``root/tls``) and a loopback certificate per member."""
    ca = create_ca(f"{network} test CA", now=now)
    certificates = {
        p.id: issue_node_certificate(ca, p.id, hosts=["127.0.0.1", "localhost"], now=now)
        for p in plans
    }
    _write_tls(root / "tls" / "ca.crt", root / "tls" / "ca.key", ca)
    return ca, certificates


def _members(
    plans: Sequence[MemberPlan],
    ports: Mapping[str, int],
    keys: Mapping[str, SigningKey],
    certificates: Mapping[str, Issued],
    now: datetime,
) -> tuple[Member, ...]:
    return tuple(
        Member(
            id=p.id,
            name=p.name,
            countries=frozenset(p.countries),
            endpoint=f"127.0.0.1:{ports[p.id]}",
            keys=(MemberKey.of(keys[p.id].public, now),),
            tls_identity=certificates[p.id].fingerprint if p.id in certificates else None,
        )
        for p in plans
    )


def _write_node_files(
    d: Path, key: SigningKey, signed: bytes, ca: Issued | None, certificate: Issued | None
) -> None:
    """A member's node directory: its key, the signed manifest and (with a CA) its TLS files."""
    d.mkdir()
    key.save(d / "node.key")
    (d / "manifest.json").write_bytes(signed)
    if ca is not None and certificate is not None:
        _write_tls(d / TLS_CERT, d / TLS_KEY, certificate)
        (d / TLS_CA).write_bytes(ca.certificate_pem)


@dataclass(frozen=True)
class _SharedSettings:
    """What every node of a provisioned federation has in common in its settings."""

    trusted_key: str
    country_db: Path
    asn_db: Path
    static_hosts: Mapping[str, Sequence[str]]
    extra: str
    ca: Issued | None

    def write(
        self,
        config: Path,
        member: str,
        port: int,
        database_url: str,
        metrics_listen: str | None = None,
    ) -> Settings:
        """Write ``member``'s settings to ``config``, load them and migrate its database."""
        write_settings(
            config,
            member=member,
            listen=f"127.0.0.1:{port}",
            trusted_keys=[self.trusted_key],
            country_db=self.country_db,
            asn_db=self.asn_db,
            static_hosts=self.static_hosts,
            extra=self.extra,
            tls=self.ca is not None,
            database_url=database_url,
            metrics_listen=metrics_listen,
        )
        settings = load_settings(config, env={})
        init_database(settings)
        return settings


def _write_tls(cert: Path, key: Path, issued: Issued) -> None:
    cert.parent.mkdir(parents=True, exist_ok=True)
    cert.write_bytes(issued.certificate_pem)
    key.touch(mode=0o600)  # private from the first byte
    key.write_bytes(issued.key_pem)


def write_replica_settings(config: Path, name: str, listen: str) -> Path:
    """Settings for another replica of the node of ``config``, beside it as ``name``.

    The same member, key, manifest and database (several replicas share one PostgreSQL database);
    only ``node.listen`` differs, so replicas can run side by side on one host.
    """
    lines = config.read_text(encoding="utf-8").splitlines()
    section, replaced = "", False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped.strip("[]").strip()
        elif section == "node" and stripped.split("=", 1)[0].strip() == "listen":
            lines[i] = f"listen = {_toml_str(listen)}"
            replaced = True
    if not replaced:
        raise ConfigError(f"{config}: no node.listen to replace")
    target = config.with_name(name)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target
