"""Retry delays: 1 s doubling to a 5-minute cap, equal jitter, reset, never giving up."""

from __future__ import annotations

import random

import pytest

from exchange.delivery.backoff import Backoff

# Ceilings of successive delays with the defaults: 1, 2, 4, … 256, then the 300 s cap.
CEILINGS = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0, 300.0]


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
def test_delays_grow_from_one_second_to_the_cap(seed: int) -> None:
    backoff = Backoff(random.Random(seed))
    for ceiling in CEILINGS:
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.failures == len(CEILINGS)


def test_jitter_spans_the_upper_half_of_the_ceiling() -> None:
    rng = random.Random(7)
    firsts = [Backoff(rng).next_delay() for _ in range(2000)]
    assert min(firsts) >= 0.5
    assert max(firsts) <= 1.0
    # Really random within that half: both ends of the range are reached.
    assert min(firsts) < 0.55
    assert max(firsts) > 0.95
    assert len(set(firsts)) > 1900


def test_capped_delays_stay_within_the_cap() -> None:
    backoff = Backoff(random.Random(3))
    for _ in range(20):
        backoff.next_delay()
    capped = [backoff.next_delay() for _ in range(500)]
    assert all(150.0 <= d <= 300.0 for d in capped)
    assert max(capped) > 290.0


def test_never_gives_up() -> None:
    backoff = Backoff(random.Random(5))
    delays = [backoff.next_delay() for _ in range(10_000)]
    assert all(150.0 <= d <= 300.0 for d in delays[20:])
    assert backoff.failures == 10_000


def test_reset_starts_again_from_one_second() -> None:
    backoff = Backoff(random.Random(11))
    for _ in range(8):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0
    assert 0.5 <= backoff.next_delay() <= 1.0
    assert 1.0 <= backoff.next_delay() <= 2.0


def test_deterministic_with_a_seeded_random() -> None:
    def delays(seed: int) -> list[float]:
        backoff = Backoff(random.Random(seed))
        return [backoff.next_delay() for _ in range(15)]

    assert delays(99) == delays(99)
    assert delays(99) != delays(100)


def test_configured_initial_and_maximum() -> None:
    backoff = Backoff(random.Random(1), initial=0.1, maximum=0.5)
    ceilings = [0.1, 0.2, 0.4, 0.5, 0.5]
    for ceiling in ceilings:
        assert ceiling / 2 <= backoff.next_delay() <= ceiling
