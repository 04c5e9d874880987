"""Node settings: one TOML file, overridden by ``IHX_<SECTION>_<KEY>`` environment variables.

The Helm chart and containers set the same variables the file holds, so there is one vocabulary.
Relative paths are resolved against the file's directory, so a node directory can be moved as a
whole. Every problem is a ``ConfigError`` naming the file and the field (``exchange.window: must
be an integer from 1 to 64``) — never a traceback.

Example::

    [node]
    member = "nl-eokm"
    listen = "127.0.0.1:7701"
    insecure_loopback = true        # plaintext between nodes, refused on non-loopback addresses

    [keys]
    signing_key = "node.key"

    [manifest]
    path = "manifest.json"          # the signed manifest; watched for newer epochs
    trusted_keys = ["<base64 coordinator public key>"]

    [database]
    url = "sqlite:///node.db"

    [geoip]
    country_db = "geo/country.mmdb"
    asn_db = "geo/asn.mmdb"

    [resolver]
    kind = "dns"                    # or "static" with a [resolver.static] table host = ["ip", …]

    [auth]
    issuer = "nl-eokm"              # `iss` of the tokens this node issues (default: member id)
    jwks = "trusted-issuers.json"   # optional: external issuers (RS256/ES256/EdDSA JWKS)

    [partners]
    visibility_timeout_s = 300.0
    [[partners.rules]]              # which partner receives which cases
    partner = "nl-police"
    countries = ["NL"]
    classifications = ["baseline", "national"]

    [exchange]                      # tuning; every key optional (defaults shown)
    backoff_initial_s = 1.0         # retry delays to an unreachable peer: 1 s doubling …
    backoff_max_s = 300.0           # … to 5 min, with jitter; reset when the peer is heard from
    receipt_timeout_s = 30.0        # a peer slower than this to receipt a batch is retried
    max_clock_skew_s = 900.0        # how far a peer's clock may run ahead of ours
    probation_streams = 32          # streams without a verified envelope yet (oldest evicted)
    first_envelope_s = 10.0         # … each ended unless a valid envelope arrives by then
    streams_per_member = 4          # verified streams one member may hold
    stream_idle_timeout_s = 180.0   # a stream without an envelope for this long is ended
    intake_calls = 64               # concurrent calls per service; see exchange/admission.py

    [log]
    checkpoint_every = 1000         # a signed checkpoint every N entries …
    checkpoint_interval_s = 60.0    # … or T seconds

    [tls]                           # mutual TLS between nodes (required unless insecure_loopback)
    cert = "tls/node.crt"
    key = "tls/node.key"
    ca = "tls/ca.crt"

    [metrics]
    listen = "0.0.0.0:9464"         # Prometheus metrics over HTTP; omit to disable

    [health]
    listen = "0.0.0.0:7444"         # plaintext gRPC health only, for Kubernetes probes (which
                                    # cannot speak mTLS); serves no other service
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchange.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ExchangeTuning:
    max_batch: int = 500
    linger_ms: float = 5.0
    window: int = 4
    receipt_timeout_s: float = 30.0
    stream_lifetime_s: float = 600.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    max_payloads: int = 1000
    max_message_bytes: int = 16 * 1024 * 1024
    manifest_poll_s: float = 1.0
    # PostgreSQL with several replicas: how long a replica's claim on a peer's stream lasts
    # unless renewed (a dead replica's peers are taken over after about this long).
    lease_s: float = 10.0
    # How far a peer's clock (an envelope's or receipt's time, a manifest's issued_at) may run
    # ahead of ours before it is refused; see exchange/envelope.py.
    max_clock_skew_s: float = 900.0
    # Admission (exchange/admission.py): what one peer or client can hold of the node. Every
    # budget is a number of concurrent calls; the gRPC worker pool is sized from their sum, so
    # one kind of call can never take the workers another needs.
    max_streams: int = 128  # exchange streams whose first envelope verified, all members
    probation_streams: int = 32  # streams still waiting for a verified first envelope
    streams_per_member: int = 4  # verified streams of one member (a sender uses one)
    streams_per_connection: int = 8  # exchange streams on one client connection
    first_envelope_s: float = 10.0  # a stream that sends no valid envelope by then is ended
    stream_idle_timeout_s: float = 180.0  # the server ends a stream quiet for this long …
    stream_idle_s: float = 60.0  # … and our sender closes its own idle stream well before
    intake_calls: int = 64
    partner_calls: int = 32
    log_calls: int = 16
    other_calls: int = 16  # Exchange.Deliver, health Watch, reflection
    open_calls: int = 32  # health Check, GetNodeInfo: short, never waiting on anything
    calls_per_subject: int = 16  # concurrent token-authenticated calls of one token subject
    health_probe_s: float = 5.0  # how often health probes the database and the worker pool


@dataclass(frozen=True, slots=True)
class PartnerRuleSetting:
    partner: str
    countries: frozenset[str]
    classifications: frozenset[str]


@dataclass(frozen=True, slots=True)
class Settings:
    member: str
    listen: str
    signing_key: Path
    manifest_path: Path
    trusted_keys: tuple[str, ...]
    database_url: str
    country_db: Path
    asn_db: Path | None = None
    insecure_loopback: bool = False
    resolver_kind: str = "dns"
    static_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    nameservers: tuple[str, ...] = ()
    exchange: ExchangeTuning = field(default_factory=ExchangeTuning)
    token_issuer: str = ""
    jwks_path: Path | None = None
    max_token_lifetime_s: float = 900.0
    token_leeway_s: float = 30.0
    partner_rules: tuple[PartnerRuleSetting, ...] = ()
    visibility_timeout_s: float = 300.0
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 60.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    metrics_listen: str | None = None
    health_listen: str | None = None
    source: Path | None = None


_SCHEMA: dict[str, dict[str, type]] = {
    "node": {"member": str, "listen": str, "insecure_loopback": bool},
    "keys": {"signing_key": str},
    "manifest": {"path": str, "trusted_keys": list},
    "database": {"url": str},
    "geoip": {"country_db": str, "asn_db": str},
    "resolver": {"kind": str, "static": dict, "nameservers": list},
    "auth": {"issuer": str, "jwks": str, "max_token_lifetime_s": float, "leeway_s": float},
    "partners": {"visibility_timeout_s": float, "rules": list},
    "log": {"checkpoint_every": int, "checkpoint_interval_s": float},
    "tls": {"cert": str, "key": str, "ca": str},
    "metrics": {"listen": str},
    "health": {"listen": str},
}


def _tuning_fields() -> dict[str, type]:
    defaults = ExchangeTuning()
    return {name: type(getattr(defaults, name)) for name in ExchangeTuning.__dataclass_fields__}


_SCHEMA["exchange"] = _tuning_fields()


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` and apply ``IHX_*`` overrides from ``env`` (default: the process env)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such settings file") from None
    except OSError as error:
        raise ConfigError(f"{file}: cannot read: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: not valid TOML: {error}") from None
    return settings_from_mapping(data, base=file.resolve().parent, env=env, source=file)


def settings_from_mapping(
    data: Mapping[str, Any],
    *,
    base: Path,
    env: Mapping[str, str] | None = None,
    source: Path | None = None,
) -> Settings:
    where = str(source) if source else "settings"
    merged = _validate(data, where)
    _apply_env(merged, os.environ if env is None else env)

    def required(section: str, key: str) -> Any:
        value = merged.get(section, {}).get(key)
        if value in (None, ""):
            raise ConfigError(
                f"{where}: {section}.{key} is required (or set IHX_{section.upper()}_{key.upper()})"
            )
        return value

    def path_of(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    node = merged.get("node", {})
    listen = str(required("node", "listen"))
    insecure = bool(node.get("insecure_loopback", False))
    tls = merged.get("tls", {})
    _check_listen(listen, insecure, where, has_tls=all(tls.get(k) for k in ("cert", "key", "ca")))
    metrics_listen = merged.get("metrics", {}).get("listen")
    if metrics_listen is not None:
        _check_address(str(metrics_listen), "metrics.listen", where)
    health_listen = merged.get("health", {}).get("listen")
    if health_listen is not None:
        _check_address(str(health_listen), "health.listen", where)
    member = str(required("node", "member"))
    db_url = str(required("database", "url"))
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):
        rel = db_url.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            db_url = "sqlite:///" + str(path_of(rel))
    resolver = merged.get("resolver", {})
    kind = str(resolver.get("kind", "dns"))
    if kind not in ("dns", "static"):
        raise ConfigError(f"{where}: resolver.kind must be 'dns' or 'static', not {kind!r}")
    static: dict[str, tuple[str, ...]] = {}
    for host, addresses in dict(resolver.get("static", {})).items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise ConfigError(f"{where}: resolver.static.{host} must be a list of IP addresses")
        static[str(host)] = tuple(addresses)
    trusted = merged.get("manifest", {}).get("trusted_keys", [])
    if not isinstance(trusted, list) or not trusted or not all(isinstance(k, str) for k in trusted):
        raise ConfigError(
            f"{where}: manifest.trusted_keys must list at least one base64 coordinator key"
        )
    asn = merged.get("geoip", {}).get("asn_db")
    auth = merged.get("auth", {})
    partners = merged.get("partners", {})
    log_section = merged.get("log", {})
    _ranges(
        where,
        {
            "auth.max_token_lifetime_s": (auth.get("max_token_lifetime_s", 900.0), 10, 86400),
            "auth.leeway_s": (auth.get("leeway_s", 30.0), 0, 300),
            "partners.visibility_timeout_s": (
                partners.get("visibility_timeout_s", 300.0),
                0.1,
                86400,
            ),
            "log.checkpoint_every": (log_section.get("checkpoint_every", 1000), 1, 10**9),
            "log.checkpoint_interval_s": (
                log_section.get("checkpoint_interval_s", 60.0),
                0.05,
                86400,
            ),
        },
    )
    jwks = auth.get("jwks")
    return Settings(
        member=member,
        listen=listen,
        signing_key=path_of(str(required("keys", "signing_key"))),
        manifest_path=path_of(str(required("manifest", "path"))),
        trusted_keys=tuple(trusted),
        database_url=db_url,
        country_db=path_of(str(required("geoip", "country_db"))),
        asn_db=path_of(str(asn)) if asn else None,
        insecure_loopback=insecure,
        resolver_kind=kind,
        static_hosts=static,
        nameservers=tuple(str(n) for n in resolver.get("nameservers", [])),
        exchange=_tuning(merged.get("exchange", {}), where),
        token_issuer=str(auth.get("issuer") or member),
        jwks_path=path_of(str(jwks)) if jwks else None,
        max_token_lifetime_s=float(auth.get("max_token_lifetime_s", 900.0)),
        token_leeway_s=float(auth.get("leeway_s", 30.0)),
        partner_rules=_partner_rules(partners.get("rules", []), where),
        visibility_timeout_s=float(partners.get("visibility_timeout_s", 300.0)),
        checkpoint_every=int(log_section.get("checkpoint_every", 1000)),
        checkpoint_interval_s=float(log_section.get("checkpoint_interval_s", 60.0)),
        tls_cert=path_of(str(tls["cert"])) if tls.get("cert") else None,
        tls_key=path_of(str(tls["key"])) if tls.get("key") else None,
        tls_ca=path_of(str(tls["ca"])) if tls.get("ca") else None,
        metrics_listen=str(metrics_listen) if metrics_listen else None,
        health_listen=str(health_listen) if health_listen else None,
        source=source,
    )


def _ranges(where: str, checks: Mapping[str, tuple[float, float, float]]) -> None:
    for name, (value, low, high) in checks.items():
        if not low <= value <= high:
            raise ConfigError(f"{where}: {name} must be from {low:g} to {high:g}")


_CLASSIFICATIONS = frozenset({"baseline", "national", "not_illegal", "doubtful"})
_RULE_KEYS = frozenset({"partner", "countries", "classifications"})


def _partner_rules(rules: Any, where: str) -> tuple[PartnerRuleSetting, ...]:
    out = []
    for i, rule in enumerate(rules):
        at = f"{where}: partners.rules[{i}]"
        if not isinstance(rule, dict):
            raise ConfigError(f"{at} must be a table")
        unknown = set(rule) - _RULE_KEYS
        if unknown:
            raise ConfigError(f"{at}: unknown setting {sorted(unknown)[0]}")
        partner = rule.get("partner")
        if not isinstance(partner, str) or not 0 < len(partner) <= 64:
            raise ConfigError(f"{at}.partner: a partner id (1 to 64 characters) is required")
        countries = rule.get("countries", [])
        if not isinstance(countries, list) or not all(
            isinstance(c, str) and len(c) == 2 and c.isupper() for c in countries
        ):
            raise ConfigError(f"{at}.countries: a list of upper-case ISO 3166-1 alpha-2 codes")
        classes = rule.get("classifications", [])
        if (
            not isinstance(classes, list)
            or not classes
            or not all(isinstance(c, str) and c in _CLASSIFICATIONS for c in classes)
        ):
            raise ConfigError(
                f"{at}.classifications: a non-empty list of {', '.join(sorted(_CLASSIFICATIONS))}"
            )
        out.append(PartnerRuleSetting(partner, frozenset(countries), frozenset(classes)))
    return tuple(out)


def _validate(data: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        known = _SCHEMA.get(section)
        if known is None:
            raise ConfigError(f"{where}: unknown section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        for key, value in values.items():
            expected = known.get(key)
            if expected is None:
                raise ConfigError(f"{where}: unknown setting {section}.{key}")
            numeric = isinstance(value, int) and not isinstance(value, bool)
            if expected is float and numeric:
                continue  # an int where a float is expected is fine; converted below
            if not isinstance(value, expected) or (expected is int and not numeric):
                raise ConfigError(
                    f"{where}: {section}.{key} must be {expected.__name__}, "
                    f"not {type(value).__name__}"
                )
        out[section] = {k: (float(v) if known[k] is float else v) for k, v in values.items()}
    return out


def _apply_env(merged: dict[str, dict[str, Any]], env: Mapping[str, str]) -> None:
    for section, keys in _SCHEMA.items():
        for key, kind in keys.items():
            name = f"IHX_{section.upper()}_{key.upper()}"
            if name not in env:
                continue
            raw = env[name]
            value: Any
            try:
                if kind is bool:
                    if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError(raw)
                    value = raw.lower() in ("1", "true", "yes")
                elif kind is int:
                    value = int(raw)
                elif kind is float:
                    value = float(raw)
                elif kind is list:
                    value = [part.strip() for part in raw.split(",") if part.strip()]
                elif kind is dict:
                    continue  # tables cannot come from one variable
                else:
                    value = raw
            except ValueError:
                raise ConfigError(f"{name}: {raw[:40]!r} is not a valid {kind.__name__}") from None
            merged.setdefault(section, {})[key] = value


_LIMITS: dict[str, tuple[float, float]] = {
    "max_batch": (1, 1000),
    "linger_ms": (0, 1000),
    "window": (1, 64),
    "receipt_timeout_s": (0.1, 3600),
    "stream_lifetime_s": (1, 86400),
    "backoff_initial_s": (0.01, 60),
    "backoff_max_s": (0.1, 3600),
    "max_payloads": (1, 10000),
    # A batch must hold at least one maximal report (64 KiB payload) plus envelope overhead.
    "max_message_bytes": (256 * 1024, 64 * 1024 * 1024),
    "manifest_poll_s": (0.05, 3600),
    "lease_s": (1, 3600),
    "max_clock_skew_s": (1, 86400),
    "max_streams": (1, 4096),
    "probation_streams": (1, 1024),
    "streams_per_member": (1, 64),
    "streams_per_connection": (1, 256),
    "first_envelope_s": (0.1, 600),
    "stream_idle_timeout_s": (1, 86400),
    "stream_idle_s": (0.5, 86400),
    "intake_calls": (1, 4096),
    "partner_calls": (1, 4096),
    "log_calls": (1, 4096),
    "other_calls": (1, 4096),
    "open_calls": (1, 4096),
    "calls_per_subject": (1, 4096),
    "health_probe_s": (0.05, 3600),
}


def _tuning(values: Mapping[str, Any], where: str) -> ExchangeTuning:
    for key, value in values.items():
        low, high = _LIMITS[key]
        if not low <= value <= high:
            raise ConfigError(f"{where}: exchange.{key} must be from {low:g} to {high:g}")
    tuning = ExchangeTuning(**values)
    if tuning.stream_idle_s >= tuning.stream_idle_timeout_s:
        # Our sender must close an idle stream before a peer's server would cut it: a cut
        # looks like a failure and costs a backoff.
        raise ConfigError(
            f"{where}: exchange.stream_idle_s must be less than exchange.stream_idle_timeout_s"
        )
    return tuning


def _check_address(listen: str, name: str, where: str) -> str:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {name} must be host:port, not {listen!r}")
    return host.strip("[]")


def _check_listen(listen: str, insecure: bool, where: str, *, has_tls: bool) -> None:
    host = _check_address(listen, "node.listen", where)
    if insecure:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ConfigError(
                f"{where}: node.insecure_loopback is only allowed on a loopback address, "
                f"not {host!r}"
            )
    elif not has_tls:
        raise ConfigError(
            f"{where}: mutual TLS needs tls.cert, tls.key and tls.ca (or set "
            "node.insecure_loopback = true on a loopback address)"
        )


def load_database_url(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> str:
    """Only ``database.url`` (with its IHX_ override): all that ``ihx db upgrade`` needs.

    The migration job of the Helm chart has the settings file and the DSN, but no keys, TLS or
    GeoIP files, so it must not require them.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such settings file") from None
    except OSError as error:
        raise ConfigError(f"{file}: cannot read: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: not valid TOML: {error}") from None
    environ = os.environ if env is None else env
    url = environ.get("IHX_DATABASE_URL") or data.get("database", {}).get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{file}: database.url is required (or set IHX_DATABASE_URL)")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            url = "sqlite:///" + str(file.resolve().parent / rel)
    return url
