"""The replay's synthetic year (bench/replay_shape.py) has the shares it claims to have.

bench/ is not a package (its scripts run as files), so the module is loaded from its path.
A small fraction of the year (25,000 reports) keeps this fast; the tolerances are a few
standard errors of a share at that size.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from auth.manifest import Manifest
from routing.decision import decide
from tests.auth.factories import make_member, member_key, signing_key
from tests.bench.scripts import load

shape = load("replay_shape")


@pytest.fixture(scope="module")
def year() -> object:
    return shape.year(0.01, seed=7)


def test_size_and_burst_scale_with_the_fraction(year: object) -> None:
    assert len(year) == round(shape.YEAR_REPORTS * 0.01)
    burst = np.flatnonzero(year.burst)
    assert len(burst) == round(shape.BURST_REPORTS * 0.01)
    assert np.all(np.diff(burst) == 1)  # one block
    crawler = year.members.index(shape.CRAWLER)
    assert np.all(year.origin[burst] == crawler)


def test_hosting_shares_are_the_iwf_2024_figures(year: object) -> None:
    shares = np.bincount(year.country, minlength=len(year.countries)) / len(year)
    for country, percent in shape.HEAD.items():
        assert shares[year.countries.index(country)] == pytest.approx(percent / 100, abs=0.01)
    assert len(year.countries) == len(shape.HEAD) + len(shape.TAIL) >= 80


def test_illegal_new_content_and_duplicate_shares(year: object) -> None:
    assert np.mean(year.classification <= 1) == pytest.approx(0.65, abs=0.015)
    assert year.new_content.mean() == pytest.approx(0.37, abs=0.015)
    assert 0.01 <= year.duplicate.mean() <= 0.02


def test_repeats_and_duplicates_refer_to_what_came_before(year: object) -> None:
    first_seen: dict[int, int] = {}
    for i, c in enumerate(year.content.tolist()):
        first_seen.setdefault(c, i)
        assert year.new_content[i] == (first_seen[c] == i)
    same = year.classification[[first_seen[c] for c in year.content.tolist()]]
    assert np.array_equal(same, year.classification)  # a repeat keeps its classification
    origins: dict[int, set[int]] = {}
    for i in range(len(year)):
        url, origin = int(year.url[i]), int(year.origin[i])
        assert origin not in origins.setdefault(url, set()), (
            "same origin, same URL: not a duplicate"
        )
        origins[url].add(origin)
        assert year.duplicate[i] == (url != i)


def test_every_report_goes_where_the_manifest_routes_it(year: object) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    manifest = Manifest(
        network="replay",
        epoch=1,
        issued_at=now,
        members=(
            *(make_member(m, served) for m, served in shape.MEMBERS),
            make_member(shape.COORDINATOR),
        ),
        orphan_rules=dict(shape.ORPHAN_RULES),
        coordinator=shape.COORDINATOR,
        coordinator_keys=(member_key(signing_key("coordinator")),),
    )
    routed = {c: decide(c, manifest, None).member for c in year.countries}
    holders = [year.members[h] for h in year.holder]
    assert holders == [routed[year.countries[c]] for c in year.country]
    assert not np.any(year.origin == year.holder)  # every report is exchanged
    assert shape.COORDINATOR not in {year.members[o] for o in year.origin}
    assert {"orphan-rule", "coordinator-fallback"} <= {
        decide(c, manifest, None).reason.value for c in year.countries
    }


def test_the_same_seed_gives_the_same_year() -> None:
    a, b = shape.year(0.001, seed=3), shape.year(0.001, seed=3)
    assert np.array_equal(a.country, b.country)
    assert np.array_equal(a.origin, b.origin)
    assert not np.array_equal(a.country, shape.year(0.001, seed=4).country)
