"""A test federation whose nodes serve law-enforcement partners and coordinators.

Every node gets a short visibility timeout (0.5 s) and fast signed checkpoints (every 10 entries
or 0.2 s); nl-eokm and de-eco get partner rules of their own, written into their settings files
before they start:

- nl-eokm: ``nl-police`` receives NL-hosted baseline and national cases;
- de-eco: ``de-bka`` receives DE-hosted baseline cases, ``de-lka`` DE-hosted national ones (a
  second partner on the same node, to show that partners never reach each other's cases).

Tokens come from each node's own issuer (``Federation.token``), as ``ihx token issue`` makes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from auth.tokens import Scope
from exchange.settings import load_settings
from tests.integration.support import DE, FAST_TUNING, NL, PLANS, Cluster, provision, tuning

NL_POLICE, DE_BKA, DE_LKA = "nl-police", "de-bka", "de-lka"
VISIBILITY_TIMEOUT_S = 0.5

_PARTNER_SECTIONS = (
    f"\n[partners]\nvisibility_timeout_s = {VISIBILITY_TIMEOUT_S}\n"
    + "\n[log]\ncheckpoint_every = 10\ncheckpoint_interval_s = 0.2\n"
)
PARTNER_TUNING = FAST_TUNING + _PARTNER_SECTIONS

# member → (partner, countries, classifications)
RULES: Mapping[str, Sequence[tuple[str, Sequence[str], Sequence[str]]]] = {
    NL: [(NL_POLICE, ["NL"], ["baseline", "national"])],
    DE: [(DE_BKA, ["DE"], ["baseline"]), (DE_LKA, ["DE"], ["national"])],
}


def _rules_toml(rules: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> str:
    def strings(values: Sequence[str]) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    return "".join(
        f'\n[[partners.rules]]\npartner = "{partner}"\ncountries = {strings(countries)}\n'
        f"classifications = {strings(classes)}\n"
        for partner, countries, classes in rules
    )


def partner_cluster(
    make_cluster: Callable[..., Cluster],
    *,
    start: bool = True,
    exchange: Mapping[str, float | int] | None = None,
) -> Cluster:
    """The four-member test federation with the partner rules above; all started if ``start``.

    ``exchange`` replaces or adds ``[exchange]`` settings of the test tuning.
    """
    settings = tuning(**exchange) + _PARTNER_SECTIONS if exchange else PARTNER_TUNING
    return _with_rules(make_cluster(extra_settings=settings, start=()), start=start)


def new_partner_cluster(root: Path, *, start: bool = True) -> Cluster:
    """As ``partner_cluster``, provisioned in ``root``; the caller closes it (for wider scopes)."""
    return _with_rules(Cluster(provision(root, extra_settings=PARTNER_TUNING)), start=start)


def _with_rules(cluster: Cluster, *, start: bool) -> Cluster:
    for member, rules in RULES.items():
        path = cluster.config(member)
        path.write_text(path.read_text(encoding="utf-8") + _rules_toml(rules), encoding="utf-8")
        cluster.fed.settings[member] = load_settings(path, env={})
    if start:
        cluster.start(*(p.id for p in PLANS))
    return cluster


def pull_token(cluster: Cluster, member: str, partner: str) -> str:
    """A ``cases:pull`` token for ``partner`` issued by ``member``'s node."""
    return cluster.fed.token(member, Scope.CASES_PULL, subject=partner)


def log_token(cluster: Cluster, member: str, subject: str = "inhope-coordinator") -> str:
    """A coordinator's ``log:read`` token issued by ``member``'s node."""
    return cluster.fed.token(member, Scope.LOG_READ, subject=subject)


def stop_senders(cluster: Cluster) -> None:
    """Close every node's outgoing streams first, so stopping the nodes waits out no grace.

    A node's server lets in-flight calls finish (up to its grace period) when it stops, and a
    peer's sender keeps its stream open until that peer stops too: stopping all senders first
    makes teardown take milliseconds instead of seconds.
    """
    for node in cluster.nodes.values():
        for sender in list(node.senders.values()):
            sender.stop()
