"""``Settings``: a node's whole configuration, one typed section per ``[section]`` of its file.

The sections are the description (type, default, range, environment name); ``Settings`` adds
only what spans sections — the listen address against TLS — and read-only shortcuts under the
names the rest of the node has always used (``settings.member`` is ``settings.node.member``).
The shortcuts are aliases, not a second description: nothing about a setting is declared here,
and they keep the many call sites (and the tests) short. It is a plain pydantic model, so
validating it never reads the process environment; the loader reads the overrides through
pydantic-settings with the ``IHX_`` vocabulary (``loader.py``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from exchange.settings.fields import check_address, refuse
from exchange.settings.sections import (
    AuthSection,
    DatabaseSection,
    GeoipSection,
    HealthSection,
    KeysSection,
    LifecycleSection,
    LogSection,
    ManifestSection,
    MetricsSection,
    NodeSection,
    NoticesSection,
    PartnerRuleSetting,
    PartnersSection,
    PdqSection,
    ResolverSection,
    StatsSection,
    TakedownSection,
    TlsSection,
    WebSection,
)
from exchange.settings.tuning import ExchangeTuning

__all__ = ["Settings"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    node: NodeSection
    keys: KeysSection
    manifest: ManifestSection
    database: DatabaseSection
    geoip: GeoipSection
    resolver: ResolverSection = ResolverSection()
    auth: AuthSection = AuthSection()
    partners: PartnersSection = PartnersSection()
    exchange: ExchangeTuning = ExchangeTuning()
    log: LogSection = LogSection()
    lifecycle: LifecycleSection = LifecycleSection()
    takedown: TakedownSection = TakedownSection()
    stats: StatsSection = StatsSection()
    pdq: PdqSection = PdqSection()
    notices: NoticesSection = NoticesSection()
    tls: TlsSection = TlsSection()
    metrics: MetricsSection = MetricsSection()
    health: HealthSection = HealthSection()
    web: WebSection = WebSection()
    _source: Path | None = PrivateAttr(default=None)  # the file read, if any

    @model_validator(mode="after")
    def _listen_is_loopback_or_tls(self) -> Settings:
        host = check_address(self.node.listen, "node.listen")
        if self.node.insecure_loopback:
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise refuse(
                    f"node.insecure_loopback is only allowed on a loopback address, not {host!r}"
                )
        elif not (self.tls.cert and self.tls.key and self.tls.ca):
            raise refuse(
                "mutual TLS needs tls.cert, tls.key and tls.ca (or set "
                "node.insecure_loopback = true on a loopback address)"
            )
        return self

    def from_file(self, source: Path | None) -> Settings:
        """These settings, remembering the file they were read from."""
        self._source = source
        return self

    @property
    def source(self) -> Path | None:
        return self._source

    # -- shortcuts under the node's long-standing names (aliases of section fields) ----------

    @property
    def member(self) -> str:
        return self.node.member

    @property
    def listen(self) -> str:
        return self.node.listen

    @property
    def insecure_loopback(self) -> bool:
        return self.node.insecure_loopback

    @property
    def signing_key(self) -> Path:
        return self.keys.signing_key

    @property
    def manifest_path(self) -> Path:
        return self.manifest.path

    @property
    def trusted_keys(self) -> tuple[str, ...]:
        return self.manifest.trusted_keys

    @property
    def database_url(self) -> str:
        return self.database.url

    @property
    def country_db(self) -> Path:
        return self.geoip.country_db

    @property
    def asn_db(self) -> Path | None:
        return self.geoip.asn_db

    @property
    def resolver_kind(self) -> str:
        return self.resolver.kind

    @property
    def static_hosts(self) -> Mapping[str, tuple[str, ...]]:
        return self.resolver.static

    @property
    def nameservers(self) -> tuple[str, ...]:
        return self.resolver.nameservers

    @property
    def token_issuer(self) -> str:
        return self.auth.issuer or self.node.member

    @property
    def jwks_path(self) -> Path | None:
        return self.auth.jwks

    @property
    def max_token_lifetime_s(self) -> float:
        return self.auth.max_token_lifetime_s

    @property
    def token_leeway_s(self) -> float:
        return self.auth.leeway_s

    @property
    def partner_rules(self) -> tuple[PartnerRuleSetting, ...]:
        return self.partners.rules

    @property
    def visibility_timeout_s(self) -> float:
        return self.partners.visibility_timeout_s

    @property
    def checkpoint_every(self) -> int:
        return self.log.checkpoint_every

    @property
    def checkpoint_interval_s(self) -> float:
        return self.log.checkpoint_interval_s

    @property
    def retention_days(self) -> int:
        return self.lifecycle.retention_days

    @property
    def tls_cert(self) -> Path | None:
        return self.tls.cert

    @property
    def tls_key(self) -> Path | None:
        return self.tls.key

    @property
    def tls_ca(self) -> Path | None:
        return self.tls.ca

    @property
    def metrics_listen(self) -> str | None:
        return self.metrics.listen

    @property
    def health_listen(self) -> str | None:
        return self.health.listen
