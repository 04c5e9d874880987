"""The sections of a node's settings file, one typed model each, as the file spells them.

Every section is a frozen pydantic model in strict mode: the file's types must be right (a
string where a number belongs is an error naming the field, never a silent conversion; an int
is fine for a float). Unknown keys are refused. ``[exchange]`` lives in ``tuning.py``; the
cross-section rules (listen address vs. TLS) are checked by ``Settings`` in ``model.py``.
Lists and tables carry ``NoDecode``: an environment override of a list is comma-separated text
(converted by the loader), and a table cannot come from one variable at all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode

from exchange.settings.fields import (
    OptionalPath,
    RequiredPath,
    between,
    check_address,
    refuse,
    resolve_sqlite_url,
)

__all__ = [
    "AuthSection",
    "DatabaseSection",
    "GeoipSection",
    "HealthSection",
    "KeysSection",
    "LifecycleSection",
    "LogSection",
    "ManifestSection",
    "MetricsSection",
    "NodeSection",
    "NoticesSection",
    "PartnerRuleSetting",
    "PartnersSection",
    "PdqSection",
    "ResolverSection",
    "StatsSection",
    "TakedownSection",
    "TlsSection",
    "WebSection",
]


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


Required = Annotated[str, Field(min_length=1)]  # missing and "" are both "is required"


class NodeSection(_Section):
    listen: Required  # before member: the first missing key named is the one it always was
    member: Required
    insecure_loopback: bool = False  # plaintext between nodes, loopback addresses only

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        check_address(value, "node.listen")
        return value


class KeysSection(_Section):
    signing_key: RequiredPath


def _key_list(value: object) -> object:
    if not isinstance(value, list):
        return value  # the strict tuple type names the wrong type
    if not value or not all(isinstance(k, str) for k in value):
        raise refuse("manifest.trusted_keys must list at least one base64 coordinator key")
    return tuple(value)


class ManifestSection(_Section):
    path: RequiredPath
    trusted_keys: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_key_list)]


class DatabaseSection(_Section):
    url: Required

    @field_validator("url")
    @classmethod
    def _beside_the_file(cls, url: str, info: ValidationInfo) -> str:
        return resolve_sqlite_url(url, info)


class GeoipSection(_Section):
    country_db: RequiredPath
    asn_db: OptionalPath = None


def _kind(value: object) -> object:
    if not isinstance(value, str):
        raise refuse(f"resolver.kind must be str, not {type(value).__name__}")
    if value not in ("dns", "static"):
        raise refuse(f"resolver.kind must be 'dns' or 'static', not {value!r}")
    return value


def _static_hosts(value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise refuse(f"resolver.static must be dict, not {type(value).__name__}")
    hosts: dict[str, tuple[str, ...]] = {}
    for host, addresses in value.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise refuse(f"resolver.static.{host} must be a list of IP addresses")
        hosts[str(host)] = tuple(addresses)
    return hosts


def _text_list(value: object) -> object:
    return tuple(str(item) for item in value) if isinstance(value, list) else value


class ResolverSection(_Section):
    kind: Annotated[Literal["dns", "static"], BeforeValidator(_kind)] = "dns"
    # [resolver.static] host = ["ip", …]: fixed answers instead of DNS (tests, the demo).
    static: Annotated[dict[str, tuple[str, ...]], NoDecode, PlainValidator(_static_hosts)] = {}
    nameservers: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_text_list)] = ()


class AuthSection(_Section):
    issuer: str = ""  # `iss` of the tokens this node issues; "" = the member id
    jwks: OptionalPath = None  # external issuers (RS256/ES256/EdDSA JWKS, or its URL / OIDC)
    max_token_lifetime_s: float = between(900.0, 10, 86400)
    leeway_s: float = between(30.0, 0, 300)
    # Issuers whose keys are fetched (jwks_uri, discovery): kept this long, fetched again at
    # most this often (an unknown kid asks once, within it), each request within the timeout.
    jwks_cache_s: float = between(300.0, 10, 86400)
    jwks_refresh_min_s: float = between(30.0, 1, 3600)
    jwks_timeout_s: float = between(5.0, 0.5, 60)
    # Keys fetched once serve at most this long while the IdP cannot be reached; past it, the
    # issuer's tokens are UNAVAILABLE (a key the IdP withdrew cannot stay trusted for ever).
    jwks_max_stale_s: float = between(86400.0, 60, 30 * 86400)


@dataclass(frozen=True, slots=True)
class PartnerRuleSetting:
    partner: str
    countries: frozenset[str]
    classifications: frozenset[str]


_CLASSIFICATIONS = frozenset({"baseline", "national", "not_illegal", "doubtful"})
_RULE_KEYS = frozenset({"partner", "countries", "classifications"})


def _partner_rule(rule: object, at: str) -> PartnerRuleSetting:
    if not isinstance(rule, dict):
        raise refuse(f"{at} must be a table")
    unknown = set(rule) - _RULE_KEYS
    if unknown:
        raise refuse(f"{at}: unknown setting {sorted(unknown)[0]}")
    partner = rule.get("partner")
    if not isinstance(partner, str) or not 0 < len(partner) <= 64:
        raise refuse(f"{at}.partner: a partner id (1 to 64 characters) is required")
    countries = rule.get("countries", [])
    if not isinstance(countries, list) or not all(
        isinstance(c, str) and len(c) == 2 and c.isupper() for c in countries
    ):
        raise refuse(f"{at}.countries: a list of upper-case ISO 3166-1 alpha-2 codes")
    classes = rule.get("classifications", [])
    if (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, str) and c in _CLASSIFICATIONS for c in classes)
    ):
        raise refuse(
            f"{at}.classifications: a non-empty list of {', '.join(sorted(_CLASSIFICATIONS))}"
        )
    return PartnerRuleSetting(partner, frozenset(countries), frozenset(classes))


def _partner_rules(value: Any) -> tuple[PartnerRuleSetting, ...]:
    if not isinstance(value, list | tuple):
        raise refuse(f"partners.rules must be list, not {type(value).__name__}")
    return tuple(_partner_rule(rule, f"partners.rules[{i}]") for i, rule in enumerate(value))


class PartnersSection(_Section):
    visibility_timeout_s: float = between(300.0, 0.1, 86400)
    # [[partners.rules]]: which partner receives which cases.
    rules: Annotated[tuple[PartnerRuleSetting, ...], NoDecode, PlainValidator(_partner_rules)] = ()


class LogSection(_Section):
    checkpoint_every: int = between(1000, 1, 10**9)  # a signed checkpoint every N entries …
    checkpoint_interval_s: float = between(60.0, 0.05, 86400)  # … or T seconds


class LifecycleSection(_Section):
    # Closed cases older than this are anonymised (URL, hashes, addresses overwritten; the
    # classification, countries, hoster and timings kept). 0 = never.
    retention_days: int = between(365, 0, 36500)
    retention_check_s: float = between(3600.0, 0.05, 86400)  # how often the node looks


class StatsSection(_Section):
    # The statistics' rollups are folded from what changed every ``fold_interval_s`` (and before
    # each snapshot); item states updated up to ``lookback_s`` before the last one folded are
    # read again, for a writer whose transaction committed late (reading one twice adds nothing).
    fold_interval_s: float = between(60.0, 0.05, 86400)
    lookback_s: float = between(30.0, 0.0, 3600)


class PdqSection(_Section):
    """Near-duplicate matching of PDQ hashes (exchange/pdq/, docs/pdq.md)."""

    # Hamming distance of a match, inclusive (Meta's recommendation for PDQ: 31). The index is
    # exact up to 40; past it the probes grow combinatorially.
    max_distance: int = between(31, 0, 40)
    # Hashes of lower quality are stored and matched exactly, never as near duplicates.
    min_quality: int = between(50, 0, 100)
    # The index file, so a restart loads it; "" = beside a SQLite database (pdq-index.npz),
    # none for another database (the index is then rebuilt from the sightings at start).
    index_path: OptionalPath = None
    # Write PDQ qualities (ContentHash field 3) into reports and announcements. Off in this
    # release: a node older than the field refuses them for good. Switch on once the
    # coordinator confirms every member runs this version or later (docs/pdq.md).
    send_quality: bool = False
    # The change feed the index follows (pdq_changes) is trimmed this often, below the lowest
    # cursor of the processes following it (node, web view, replicas); one not heard from
    # within the lease no longer holds it back, and rebuilds its index if it comes back. A
    # follower notes its cursor at every trim, so the lease is at least three intervals.
    trim_interval_s: float = between(60.0, 1, 3600)
    follower_lease_s: float = between(900.0, 3, 30 * 86400)
    # The node saves its index file this often (from the trim loop; a temporary file renamed
    # over it) and trims no change past the file's cursor: a restart after kill -9, ``ihx
    # match`` and a web view starting load the file and apply at most this much feed.
    save_interval_s: float = between(600.0, 10, 86400)

    @model_validator(mode="after")
    def _lease_spans_trims(self) -> PdqSection:
        if self.trim_interval_s * 3 > self.follower_lease_s:
            raise refuse(
                f"pdq.trim_interval_s ({self.trim_interval_s:g} s) must be at most a third of "
                f"pdq.follower_lease_s ({self.follower_lease_s:g} s): a follower notes its "
                "cursor at each trim, and one not heard from within the lease is trimmed past"
            )
        return self


class TakedownSection(_Section):
    """Re-checks of illegal content still online, at the node holding the case."""

    enabled: bool = False  # off until the hotline names itself in ``user_agent``
    # Sent with every check: the hotline's name and a contact, so a hoster knows who asks.
    user_agent: Annotated[str, Field(max_length=200)] = ""
    first_interval_s: float = between(3600.0, 0.01, 7 * 86400)  # this often at first …
    first_period_s: float = between(86400.0, 0, 90 * 86400)  # … for this long,
    interval_s: float = between(86400.0, 0.01, 30 * 86400)  # then this often
    gone_checks: int = between(3, 1, 100)  # consecutive not-online checks that make it gone
    on_gone: Literal["act", "suggest"] = "act"  # record the action, or ask an analyst
    connect_timeout_s: float = between(5.0, 0.05, 60)
    read_timeout_s: float = between(10.0, 0.05, 120)
    deadline_s: float = between(30.0, 0.1, 600)  # a whole check, however the host dribbles
    max_redirects: int = between(5, 0, 20)
    concurrency: int = between(32, 1, 1024)  # checks at once, over all hosts
    per_host_concurrency: int = between(2, 1, 64)  # checks at once against one host
    tick_s: float = between(5.0, 0.01, 3600)  # how often the scheduler looks for due checks
    batch: int = between(1000, 1, 100_000)  # due checks taken per look
    move_checks: int = between(2, 1, 20)  # consecutive checks in a new country that move it

    @field_validator("user_agent")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise refuse("takedown.user_agent must be printable text on one line")
        return value

    @model_validator(mode="after")
    def _named_when_enabled(self) -> TakedownSection:
        if self.enabled and not self.user_agent.strip():
            raise refuse(
                "takedown.user_agent is required when takedown.enabled: name the hotline "
                'and a contact, e.g. "ihx-recheck/1 (EOKM hotline; abuse@eokm.nl)"'
            )
        return self


class NoticesSection(_Section):
    """Notices to hosting providers' abuse contacts, sent through the hotline's SMTP relay."""

    enabled: bool = False
    directory: OptionalPath = None  # the abuse-contact directory (TOML), required when enabled
    hotline: Annotated[str, Field(max_length=200)] = ""  # who the notices are from, in their text
    from_address: Annotated[str, Field(max_length=254)] = ""
    reply_to: Annotated[str, Field(max_length=254)] = ""
    relay_host: Annotated[str, Field(max_length=255)] = ""
    relay_port: int = between(587, 1, 65535)
    starttls: bool = True  # refuse to send if the relay does not offer STARTTLS
    username: Annotated[str, Field(max_length=254)] = ""
    password: SecretStr | None = None  # better IHX_NOTICES_PASSWORD than in the file
    timeout_s: float = between(30.0, 0.05, 300)
    interval_s: float = between(86400.0, 0.01, 30 * 86400)  # a new notice while still online
    escalate_after: int = between(3, 1, 1000)  # notices before the escalation contact
    lea_hold_s: float = between(0.0, 0, 90 * 86400)  # after reported_to_lea, notices wait
    retry_max_s: float = between(3600.0, 0.01, 86400)  # back-off ceiling of a failed send
    tick_s: float = between(10.0, 0.01, 3600)

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> NoticesSection:
        if not self.enabled:
            return self
        missing = [
            f"notices.{name}"
            for name in ("directory", "hotline", "from_address", "relay_host")
            if not getattr(self, name)
        ]
        if missing:
            raise refuse(f"notices.enabled needs {', '.join(missing)}")
        return self


class TlsSection(_Section):
    # Mutual TLS between nodes (required unless node.insecure_loopback).
    cert: OptionalPath = None
    key: OptionalPath = None
    ca: OptionalPath = None


class MetricsSection(_Section):
    listen: str | None = None  # Prometheus metrics over HTTP; None = off
    # The database gauges (queues, partner backlog, outbox, failing peers) are read this often
    # by one thread, never per scrape (exchange/ops/gauges.py).
    refresh_s: float = between(15.0, 0.05, 3600)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            check_address(value, "metrics.listen")
        return value


class HealthSection(_Section):
    # Plaintext gRPC health only, for Kubernetes probes (which cannot speak mTLS).
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            check_address(value, "health.listen")
        return value


MAX_TRUSTED_PROXIES = 64


def _proxy_list(value: object) -> object:
    """``[web] trusted_proxies``: addresses or CIDR ranges, each checked, at most 64."""
    items = _text_list(value)
    if not isinstance(items, tuple):
        return items
    if len(items) > MAX_TRUSTED_PROXIES:
        raise refuse(f"web.trusted_proxies: at most {MAX_TRUSTED_PROXIES} entries")
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise refuse(
                f"web.trusted_proxies: {item[:60]!r} is not an IP address or CIDR range"
            ) from None
    return items


class WebSection(_Section):
    """``ihx web``: the read-only dashboard, its own process beside the node (docs/web.md)."""

    enabled: bool = False  # `ihx web` refuses to start unless the operator turned it on
    listen: str = "127.0.0.1:8080"  # HTTP(S) for browsers; TLS below, or a proxy in front
    tls_cert: OptionalPath = None  # both or neither: HTTPS and Secure cookies
    tls_key: OptionalPath = None
    session_lifetime_s: float = between(3600.0, 60, 86400)  # never beyond the token's own expiry
    max_sessions: int = between(10_000, 1, 1_000_000)  # memory bound: full refuses new logins
    # Secure + __Host- cookies and HSTS. None: on unless listening on loopback without TLS; set
    # it true behind a TLS-terminating proxy (the Helm chart does).
    secure_cookies: bool | None = None
    login_burst: int = between(20, 1, 1_000_000)  # logins at once per client address, then 1/3 s
    # Logins at once from every address together, then as many again per minute: the second
    # line when many addresses try tokens.
    login_total_burst: int = between(200, 1, 1_000_000)
    # The reverse proxies whose X-Forwarded-For names the client (addresses or CIDRs). Empty:
    # none — the client is the connection's peer, and the header is ignored from anyone.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_proxy_list)] = ()
    max_connections: int = between(200, 1, 100_000)  # connections + requests at once; then 503
    header_timeout_s: float = between(10.0, 0.5, 300)  # a request's line and headers due within
    # Keep a PDQ index in the view for the case page's near-known content: as much memory as
    # the node's (about 113 bytes a hash: 1.1 GiB at 10 M, docs/pdq.md). Off: the case page
    # says ``ihx case show`` lists it (GetCase on the node), and the view keeps no index.
    pdq_index: bool = True

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        check_address(value, "web.listen")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> WebSection:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise refuse("web.tls_cert and web.tls_key go together (both or neither)")
        return self
