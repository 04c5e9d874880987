"""The routing decision: which member is responsible for a traced URL, and why.

Rules, in order (DESIGN.md "Decision"):
  untraceable (no hosting country)        → the coordinator, reason ``untraceable``;
  the country is served by this node      → a local case, reason ``local``;
  the country is served by another member → that member, reason ``served-member``;
  an orphan rule names a member           → that member, reason ``orphan-rule``;
  otherwise                               → the coordinator, reason ``coordinator-fallback``.
Every decision carries the manifest epoch it was made under and a one-line explanation, so the
routing log can show and a coordinator can reproduce it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from auth.manifest import Manifest


class DecisionReason(enum.StrEnum):
    SERVED_MEMBER = "served-member"
    LOCAL = "local"
    ORPHAN_RULE = "orphan-rule"
    COORDINATOR_FALLBACK = "coordinator-fallback"
    UNTRACEABLE = "untraceable"


@dataclass(frozen=True, slots=True)
class Decision:
    member: str
    reason: DecisionReason
    country: str | None
    explanation: str
    manifest_epoch: int
    local: bool


def decide(
    country: str | None,
    manifest: Manifest,
    self_member: str | None,
    *,
    untraceable_reason: str | None = None,
) -> Decision:
    """Apply the routing rules to a hosting country (None = untraceable)."""

    def made(member: str, reason: DecisionReason, explanation: str) -> Decision:
        return Decision(
            member=member,
            reason=reason,
            country=country,
            explanation=explanation,
            manifest_epoch=manifest.epoch,
            local=member == self_member,
        )

    if country is None:
        why = untraceable_reason or "no hosting country"
        return made(
            manifest.coordinator,
            DecisionReason.UNTRACEABLE,
            f"untraceable ({why}): sent to coordinator {manifest.coordinator}",
        )
    served = manifest.member_for_country(country)
    if served is not None:
        if served.id == self_member:
            return made(served.id, DecisionReason.LOCAL, f"{country} is served by this node")
        return made(
            served.id, DecisionReason.SERVED_MEMBER, f"{country} is served by member {served.id}"
        )
    orphan = manifest.orphan_rules.get(country)
    if orphan is not None:
        return made(
            orphan,
            DecisionReason.ORPHAN_RULE,
            f"no member serves {country}; orphan rule assigns it to {orphan}",
        )
    return made(
        manifest.coordinator,
        DecisionReason.COORDINATOR_FALLBACK,
        f"no member serves {country} and no orphan rule: sent to coordinator "
        f"{manifest.coordinator}",
    )


class Decider:
    """``decide`` with a cache: a decision depends only on (country, reason, manifest, node).

    Intake decides for every report; the explanation strings and objects are built once per
    country and manifest instead. A new manifest object clears the cache.
    """

    def __init__(self, self_member: str | None) -> None:
        self._self = self_member
        self._manifest: Manifest | None = None
        self._cache: dict[tuple[str | None, str | None], Decision] = {}

    def decide(
        self, country: str | None, manifest: Manifest, *, untraceable_reason: str | None = None
    ) -> Decision:
        if manifest is not self._manifest:
            self._manifest = manifest
            self._cache = {}
        key = (country, untraceable_reason if country is None else None)
        found = self._cache.get(key)
        if found is None:
            found = decide(country, manifest, self._self, untraceable_reason=untraceable_reason)
            if len(self._cache) < 4096:
                self._cache[key] = found
        return found
