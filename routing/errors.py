"""Error types of the routing part.

Every error carries a stable machine ``code`` (used in logs, receipts and gRPC details) and a
human message that names what was wrong. The exchange edge maps them to gRPC status codes once.
"""

from __future__ import annotations

from common.errors import IhxError


class RoutingError(IhxError):
    """Base of all routing errors."""

    code = "routing-error"


class InvalidUrl(RoutingError):
    """The reported URL cannot be used: unparseable, unsupported scheme, too long, ..."""

    code = "invalid-url"


class GeoDatabaseError(RoutingError):
    """A GeoIP database file is missing, unreadable or of an unknown layout."""

    code = "geoip-database"


class ResolverConfigError(RoutingError):
    """A resolver was configured with bad data (e.g. a malformed --resolve mapping)."""

    code = "resolver-config"
