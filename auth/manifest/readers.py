"""Network readers: members whose own tokens every node accepts, for read scopes only.

A coordinator reads every member's routing log and statistics. Without this, it needs one token
per member, each minted by that member. The manifest — signed by the coordinator keys, held by
every node — can instead name *network readers*: a member and the scopes it may grant
network-wide. Such a member's node mints tokens whose audience is the network
(``NETWORK_AUDIENCE_PREFIX`` + the network's name) and whose issuer is
``NETWORK_ISSUER_PREFIX`` + its member id, signed with one of its manifest keys, so key rotation
and revocation follow the member's keys with nothing else to publish.

Only ``NETWORK_SCOPES`` (``log:read``, ``stats:read``) can ever be granted network-wide: a
manifest asking for more is refused where it is parsed or built, naming the field — a network
token never submits, pulls, works cases or administers. A manifest without readers renders
exactly as before (the field is left out), so its canonical signed bytes do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from auth.errors import ManifestError
from auth.manifest.checks import member_id_problem, quote, type_name

__all__ = [
    "NETWORK_AUDIENCE_PREFIX",
    "NETWORK_ISSUER_PREFIX",
    "NETWORK_SCOPES",
    "NetworkReader",
    "network_audience",
    "network_issuer",
]

# The only scopes a network token may carry: reading, never writing, never admin.
NETWORK_SCOPES: Final = ("log:read", "stats:read")
NETWORK_AUDIENCE_PREFIX: Final = "ihx-network:"
# Its own namespace, so a network issuer can never be mistaken for a node's own issuer (by
# default the bare member id) or an external one; a node refuses settings that claim it.
NETWORK_ISSUER_PREFIX: Final = "ihx-member:"


def network_audience(network: str) -> str:
    """The ``aud`` of a network token: every node of ``network`` and only them."""
    return f"{NETWORK_AUDIENCE_PREFIX}{network}"


def network_issuer(member_id: str) -> str:
    """The ``iss`` of a network token minted by ``member_id``'s node."""
    return f"{NETWORK_ISSUER_PREFIX}{member_id}"


@dataclass(frozen=True)
class NetworkReader:
    """A member whose network tokens every node accepts, for ``scopes`` (a subset of
    ``NETWORK_SCOPES``, never empty)."""

    member: str
    scopes: frozenset[str]

    def __post_init__(self) -> None:
        if (problem := member_id_problem(self.member)) is not None:
            raise ManifestError(f"member: {problem}")
        if isinstance(self.scopes, str):
            raise ManifestError("scopes: expected a set of scopes, got a string")
        scopes = frozenset(self.scopes)
        if not scopes:
            raise ManifestError("scopes: at least one scope is required")
        for scope in sorted(scopes, key=str):
            if (problem := scope_problem(scope)) is not None:
                raise ManifestError(f"scopes: {problem}")
        object.__setattr__(self, "scopes", scopes)


def scope_problem(scope: object) -> str | None:
    """Why ``scope`` cannot be granted network-wide, or None."""
    if not isinstance(scope, str):
        return f"expected a scope string, got {type_name(scope)}"
    if scope not in NETWORK_SCOPES:
        return (
            f"{quote(scope)} cannot be granted network-wide "
            f"(only {', '.join(NETWORK_SCOPES)}: a network token never writes)"
        )
    return None
