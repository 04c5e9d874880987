"""The shape of a synthetic year of INHOPE traffic (2024), as a pure function of size and seed.

`bench/replay.py` streams this year through a five-member federation; this module only decides
what is reported, by whom and where it is hosted — no I/O, no clock, so a test can check the
shares (tests/bench/test_replay_shape.py). The figures it is shaped on:

- INHOPE 2024: 2,497,438 content URLs exchanged, 65 % assessed illegal, 37 % new content (the
  rest repeat content hashes already seen in the network);
- hosting as the IWF measured it for 2024: NL 29 %, US 14 %, BG 9 %, HK 8 %, RO 7 %, MY 5 %,
  LT/PL/CZ/LV 3 % each, the remaining 16 % spread over 75 more countries;
- 1.5 % duplicate reports: a URL already reported, again, by another hotline;
- a crawler-driven hotline's burst: 100,000 reports (scaled with the year) in one block.

Each report goes to the member serving its hosting country, else by the manifest's orphan rule,
else to the coordinator (as `routing.decide` does); its origin is one of the other members (the
year counts URLs *exchanged*, so none stays at its origin). Classification belongs to the
content: drawn once per new hash, a repeat carries its first classification.

Arrays (numpy) rather than objects: the full year is 2.5 M reports in about 40 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

YEAR_REPORTS = 2_497_438
ILLEGAL_SHARE = 0.65
NEW_CONTENT_SHARE = 0.37
DUPLICATE_SHARE = 0.015
BURST_REPORTS = 100_000

# IWF 2024 hosting shares, in percent; the tail is spread evenly over TAIL.
HEAD = {"NL": 29, "US": 14, "BG": 9, "HK": 8, "RO": 7, "MY": 5, "LT": 3, "PL": 3, "CZ": 3, "LV": 3}
TAIL = (
    "DE", "FR", "GB", "RU", "UA", "CA", "SE", "SK", "JP", "SG", "IT", "ES", "PT", "BE", "AT",
    "CH", "DK", "FI", "NO", "IE", "IS", "EE", "HU", "SI", "HR", "RS", "BA", "ME", "MK", "AL",
    "GR", "CY", "MT", "LU", "MD", "BY", "TR", "IL", "AE", "SA", "IN", "PK", "BD", "VN", "TH",
    "ID", "PH", "KR", "TW", "CN", "AU", "NZ", "BR", "AR", "CL", "CO", "PE", "MX", "VE", "ZA",
    "NG", "KE", "EG", "MA", "TN", "KZ", "UZ", "GE", "AM", "AZ", "IR", "PA", "CR", "EC", "UY",
    "BO",
)  # fmt: skip

# The five members (id, countries served) and the coordinator, which serves none.
MEMBERS = (
    ("nl-eokm", ("NL",)),
    ("us-ncmec", ("US",)),
    ("bg-safenet", ("BG",)),
    ("ro-salvati", ("RO",)),
    ("de-eco", ("DE",)),
)
COORDINATOR = "inhope"
# Countries without a member placed by the manifest's orphan rule with a neighbouring member;
# every other country without a member (HK, MY, most of Asia …) falls to the coordinator.
ORPHAN_RULES = {
    "LT": "de-eco", "LV": "de-eco", "PL": "de-eco", "CZ": "de-eco", "AT": "de-eco",
    "CH": "de-eco", "DK": "de-eco", "SE": "de-eco", "FI": "de-eco", "NO": "de-eco",
    "EE": "de-eco", "SK": "de-eco", "HU": "de-eco", "SI": "de-eco", "LU": "de-eco",
    "BE": "nl-eokm", "FR": "nl-eokm", "GB": "nl-eokm", "IE": "nl-eokm", "IS": "nl-eokm",
    "ES": "nl-eokm", "PT": "nl-eokm", "IT": "nl-eokm", "MT": "nl-eokm",
    "MD": "ro-salvati", "UA": "ro-salvati", "RS": "bg-safenet", "MK": "bg-safenet",
    "GR": "bg-safenet", "TR": "bg-safenet", "AL": "bg-safenet", "CY": "bg-safenet",
    "CA": "us-ncmec", "MX": "us-ncmec",
}  # fmt: skip
# How much of the year each member submits (its analysts and, for de-eco, its crawler).
SUBMITTERS = {
    "nl-eokm": 0.30,
    "de-eco": 0.25,
    "us-ncmec": 0.20,
    "ro-salvati": 0.15,
    "bg-safenet": 0.10,
}
CRAWLER = "de-eco"
# Classifications of new content: illegal (baseline, national) 65 %, the rest not illegal or
# doubtful. Codes index CLASSIFICATIONS.
CLASSIFICATIONS = ("baseline", "national", "not_illegal", "doubtful")
CLASSIFICATION_P = (0.55, 0.10, 0.30, 0.05)


def countries() -> tuple[list[str], NDArray[np.float64]]:
    """Every hosting country of the year and its probability."""
    names = [*HEAD, *TAIL]
    tail_share = (100 - sum(HEAD.values())) / len(TAIL)
    shares = np.array([*HEAD.values(), *([tail_share] * len(TAIL))], dtype=np.float64)
    return names, shares / shares.sum()


def member_ids() -> list[str]:
    """The members in their index order (the coordinator last)."""
    return [m for m, _ in MEMBERS] + [COORDINATOR]


def holder_of(country: str) -> str:
    """The member responsible for ``country``: its member, else the orphan rule, else the
    coordinator — the manifest's rule, restated so the shape is known before any node runs."""
    for member, served in MEMBERS:
        if country in served:
            return member
    return ORPHAN_RULES.get(country, COORDINATOR)


@dataclass(frozen=True)
class Year:
    """One report per index, in submission order. Members and countries are indices into
    ``members`` and ``countries``; ``url`` and ``content`` are ids (equal id, equal URL or hash)."""

    members: list[str]
    countries: list[str]
    origin: NDArray[np.int8]
    holder: NDArray[np.int8]
    country: NDArray[np.int16]
    url: NDArray[np.int32]
    content: NDArray[np.int32]
    classification: NDArray[np.int8]
    new_content: NDArray[np.bool_]
    duplicate: NDArray[np.bool_]
    burst: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.origin)


def year(fraction: float = 1.0, seed: int = 2024) -> Year:
    """``fraction`` of the year (at least one report), the burst scaled with it."""
    rng = np.random.default_rng(seed)
    names, p = countries()
    members = member_ids()
    holder_by_country = np.array([members.index(holder_of(c)) for c in names], dtype=np.int8)
    n = max(1, round(YEAR_REPORTS * fraction))
    burst_n = min(n, round(BURST_REPORTS * fraction))
    steady_n = n - burst_n

    country = rng.choice(len(names), size=n, p=p).astype(np.int16)
    crawler = members.index(CRAWLER)
    burst = np.zeros(n, dtype=np.bool_)
    start = steady_n * 2 // 5  # the burst comes 40 % into the year
    burst[start : start + burst_n] = True
    # The crawler's burst is of content hosted elsewhere (a node does not send to itself).
    not_crawler = holder_by_country != crawler
    burst_p = np.where(not_crawler, p, 0.0)
    country[burst] = rng.choice(len(names), size=burst_n, p=burst_p / burst_p.sum())
    holder = holder_by_country[country]
    origin = _origins(rng, holder, members)
    origin[burst] = crawler

    content = _contents(rng, n)
    url = np.arange(n, dtype=np.int32)
    duplicate = _duplicates(rng, n, burst)
    _copy_duplicates(rng, duplicate, url, content, country, holder, origin, members)
    # New content is a content id's first report (a duplicate took over an earlier URL's
    # content, so an id drawn as new may now first appear in a repeat).
    new_content = np.zeros(n, dtype=np.bool_)
    new_content[np.unique(content, return_index=True)[1]] = True
    classification = _classes(rng, content)
    return Year(
        members, names, origin, holder, country, url, content, classification,
        new_content, duplicate, burst,
    )  # fmt: skip


def _origins(
    rng: np.random.Generator, holder: NDArray[np.int8], members: list[str]
) -> NDArray[np.int8]:
    """Per report an origin by SUBMITTERS' weights among the members other than its holder."""
    weights = np.array([SUBMITTERS.get(m, 0.0) for m in members])
    origin = np.empty(len(holder), dtype=np.int8)
    for h in range(len(members)):
        at = np.flatnonzero(holder == h)
        w = weights.copy()
        w[h] = 0.0
        origin[at] = rng.choice(len(members), size=len(at), p=w / w.sum())
    return origin


def _contents(rng: np.random.Generator, n: int) -> NDArray[np.int32]:
    """Content ids: a new id with NEW_CONTENT_SHARE, else one seen before (uniformly)."""
    new = rng.random(n) < NEW_CONTENT_SHARE
    new[0] = True
    seen = np.cumsum(new) - 1  # the newest id at each index
    repeat = (rng.random(n) * np.maximum(seen, 0)).astype(np.int64)
    content = np.where(new, seen, np.minimum(repeat, seen))
    return content.astype(np.int32)


def _classes(rng: np.random.Generator, content: NDArray[np.int32]) -> NDArray[np.int8]:
    """One classification per content id, drawn by CLASSIFICATION_P."""
    size = int(content.max()) + 1
    per_content = rng.choice(len(CLASSIFICATIONS), size=size, p=CLASSIFICATION_P)
    return per_content[content].astype(np.int8)


def _duplicates(rng: np.random.Generator, n: int, burst: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """DUPLICATE_SHARE of the steady reports (not the first) re-report an earlier URL."""
    duplicate = (rng.random(n) < DUPLICATE_SHARE) & ~burst
    duplicate[0] = False
    return duplicate


def _copy_duplicates(
    rng: np.random.Generator,
    duplicate: NDArray[np.bool_],
    url: NDArray[np.int32],
    content: NDArray[np.int32],
    country: NDArray[np.int16],
    holder: NDArray[np.int8],
    origin: NDArray[np.int8],
    members: list[str],
) -> None:
    """Each duplicate takes an earlier report's URL, content, country and holder, from another
    origin than that report's (and than the holder)."""
    weights = np.array([SUBMITTERS.get(m, 0.0) for m in members])
    # Origins that reported each duplicated URL: one origin reporting a URL twice would be the
    # same submission again (intake is idempotent), not a duplicate from another hotline.
    reported: dict[int, set[int]] = {}
    for i in np.flatnonzero(duplicate):
        j = int(rng.integers(0, i))
        while duplicate[j]:  # back to the URL's first report
            j = int(rng.integers(0, j)) if j else 0
        used = reported.setdefault(j, {int(origin[j])})
        w = weights.copy()
        w[[holder[j], *used]] = 0.0
        if not w.any():  # every other member already reported it
            duplicate[i] = False
            continue
        url[i], content[i], country[i], holder[i] = url[j], content[j], country[j], holder[j]
        origin[i] = rng.choice(len(members), p=w / w.sum())
        used.add(int(origin[i]))
