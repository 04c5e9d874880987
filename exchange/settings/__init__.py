"""Node settings: one TOML file, overridden by ``IHX_<SECTION>_<KEY>`` environment variables.

The Helm chart and containers set the same variables the file holds, so there is one vocabulary.
Relative paths are resolved against the file's directory, so a node directory can be moved as a
whole. Every problem is a ``ConfigError`` naming the file and the field (``exchange.window must
be from 1 to 64``) — never a traceback.

One section model per ``[section]`` (``sections.py``; ``[exchange]`` is ``ExchangeTuning`` in
``tuning.py``), gathered by ``Settings`` (``model.py``) and read by one loader built on
pydantic-settings (``loader.py``); ``fields.py`` holds the shared field types.

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
    jwks = "trusted-issuers.json"   # optional: external issuers (keys, jwks_uri or discovery)
    jwks_cache_s = 300.0            # fetched keys kept this long …
    jwks_refresh_min_s = 30.0       # … and fetched at most this often per issuer (unknown kid too)
    jwks_timeout_s = 5.0            # each fetch (https only; http on loopback)
    jwks_max_stale_s = 86400.0      # fetched keys serve at most this long while the IdP is down

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
    intake_calls = 64               # concurrent calls per service; see exchange/edge/admission.py

    [log]
    checkpoint_every = 1000         # a signed checkpoint every N entries …
    checkpoint_interval_s = 60.0    # … or T seconds

    [lifecycle]
    retention_days = 365            # closed cases older than this are anonymised; 0 = never
    retention_check_s = 3600.0      # how often the node looks for them

    [stats]                         # the statistics' rollups (issue 14)
    fold_interval_s = 60.0          # how often what changed is folded in (and before a snapshot)
    lookback_s = 30.0               # item states re-read before the last one folded

    [takedown]                      # re-checks of illegal content still online (off by default)
    enabled = true
    user_agent = "ihx-recheck/1 (EOKM hotline; abuse@eokm.nl)"  # required when enabled
    first_interval_s = 3600.0       # re-check hourly …
    first_period_s = 86400.0        # … for the first day,
    interval_s = 86400.0            # then daily
    gone_checks = 3                 # consecutive not-online checks that make it gone …
    on_gone = "act"                 # … recorded as removed/unavailable ("suggest": ask analysts)
    connect_timeout_s = 5.0
    read_timeout_s = 10.0
    max_redirects = 5
    concurrency = 32                # checks at once, and per host:
    per_host_concurrency = 2

    [notices]                       # notices to hosters' abuse contacts (off by default)
    enabled = true
    directory = "abuse-contacts.toml"  # ASN / organisation → abuse address (docs/takedown.md)
    hotline = "Meldpunt Kinderporno (EOKM)"
    from_address = "notices@eokm.nl"
    relay_host = "smtp.eokm.nl"
    relay_port = 587
    starttls = true                 # refuse a relay that does not offer STARTTLS
    username = "notices"            # password: IHX_NOTICES_PASSWORD, not in the file
    interval_s = 86400.0            # a new notice every day while still online …
    escalate_after = 3              # … to the escalation contact after this many
    lea_hold_s = 86400.0            # notices wait this long after reported_to_lea

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

from exchange.settings.loader import load_database_url, load_settings, settings_from_mapping
from exchange.settings.model import Settings
from exchange.settings.sections import PartnerRuleSetting
from exchange.settings.tuning import LIMITS, ExchangeTuning

_LIMITS = LIMITS  # the name tests/helm/test_chart.py has always imported

__all__ = [
    "LIMITS",
    "ExchangeTuning",
    "PartnerRuleSetting",
    "Settings",
    "load_database_url",
    "load_settings",
    "settings_from_mapping",
]
