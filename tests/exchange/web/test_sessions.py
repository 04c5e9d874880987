"""Server-side sessions: ids are random, sessions end with the token or the lifetime, the
store stays bounded, and a forged, unknown or over-long id finds nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auth.tokens import Principal, Scope
from exchange.errors import Overloaded
from exchange.web.limits import RateLimit
from exchange.web.sessions import SessionStore, same_secret
from tests.exchange.factories import FakeClock

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def principal(expires_in: timedelta = timedelta(minutes=15)) -> Principal:
    return Principal("someone", "de-eco", frozenset({Scope.LOG_READ}), None, T0 + expires_in)


def who(subject: str, scope: Scope, expires_in: timedelta = timedelta(minutes=15)) -> Principal:
    return Principal(subject, "de-eco", frozenset({scope}), None, T0 + expires_in)


def store(clock: FakeClock, *, lifetime: float = 3600, most: int = 100) -> SessionStore:
    return SessionStore(clock=clock, lifetime=timedelta(seconds=lifetime), max_sessions=most)


def test_a_session_ends_when_its_token_does() -> None:
    clock = FakeClock(T0)
    sessions = store(clock)
    s = sessions.open(principal(timedelta(minutes=15)))
    assert s.expires_at == T0 + timedelta(minutes=15)
    clock.advance(14 * 60 + 59)
    assert sessions.get(s.id) == s
    clock.advance(1)
    assert sessions.get(s.id) is None
    assert len(sessions) == 0


def test_a_session_ends_at_the_lifetime_when_the_token_lives_longer() -> None:
    clock = FakeClock(T0)
    sessions = store(clock, lifetime=60)
    s = sessions.open(principal(timedelta(hours=2)))
    assert s.expires_at == T0 + timedelta(seconds=60)


def test_ids_and_csrf_tokens_are_random_and_distinct() -> None:
    sessions = store(FakeClock(T0))
    made = [sessions.open(principal()) for _ in range(50)]
    values = {s.id for s in made} | {s.csrf for s in made}
    assert len(values) == 100
    assert all(len(v) >= 40 for v in values)


def test_one_principal_holds_a_bounded_number_of_sessions_its_own_oldest_go_first() -> None:
    sessions = SessionStore(
        clock=FakeClock(T0), lifetime=timedelta(hours=1), max_sessions=100, per_principal=3
    )
    other = sessions.open(who("coordinator", Scope.ADMIN))
    made = [sessions.open(principal()) for _ in range(5)]
    assert len(sessions) == 4
    assert [sessions.get(s.id) is not None for s in made] == [False, False, True, True, True]
    assert sessions.get(other.id) == other


def test_one_low_privilege_principal_cannot_evict_everyone_elses_sessions() -> None:
    """Red-team F1: a stats:read holder logging in max_sessions times ended the admin's session;
    now the full store refuses the newcomer and keeps everyone who is logged in."""
    sessions = SessionStore(clock=FakeClock(T0), lifetime=timedelta(hours=1), max_sessions=100)
    admin = sessions.open(who("coordinator", Scope.ADMIN))
    opened = 0
    for n in range(200):
        try:
            sessions.open(who(f"stats-reader-{n}", Scope.STATS_READ))
            opened += 1
        except Overloaded:
            pass
    assert opened == 99
    assert sessions.get(admin.id) == admin


def test_a_full_store_drops_expired_sessions_before_refusing() -> None:
    clock = FakeClock(T0)
    sessions = store(clock, most=2)
    old = sessions.open(principal(timedelta(minutes=1)))
    kept = sessions.open(who("coordinator", Scope.ADMIN, timedelta(minutes=30)))
    with pytest.raises(Overloaded):
        sessions.open(who("late", Scope.LOG_READ))
    clock.advance(61)
    late = sessions.open(who("late", Scope.LOG_READ))
    assert sessions.get(old.id) is None
    assert sessions.get(kept.id) == kept
    assert sessions.get(late.id) == late


def test_the_rate_limit_refuses_past_the_burst_and_refills_with_time() -> None:
    clock = FakeClock(T0)
    limit = RateLimit(clock, burst=3, every_s=10, most=2)
    assert [limit.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("b")
    clock.advance(10)
    assert limit.allow("a")
    assert not limit.allow("a")
    limit.allow("c")
    assert len(limit) == 2  # bounded: the least recently used key is forgotten


def test_unknown_forged_and_oversized_ids_find_nothing() -> None:
    sessions = store(FakeClock(T0))
    sessions.open(principal())
    for forged in (None, "", "A" * 43, "x" * 129):
        assert sessions.get(forged) is None


def test_closed_session_is_gone() -> None:
    sessions = store(FakeClock(T0))
    s = sessions.open(principal())
    sessions.close(s.id)
    assert sessions.get(s.id) is None


def test_csrf_comparison() -> None:
    assert same_secret("abc", "abc")
    assert not same_secret("abd", "abc")
    assert not same_secret(None, "abc")
    assert not same_secret("", "abc")


def test_kept_answers_are_reused_until_they_are_too_old() -> None:
    from exchange.kept import Kept

    clock = FakeClock(T0)
    kept: Kept[str, int] = Kept(clock, ttl=timedelta(seconds=30), most=2)
    calls: list[str] = []

    def compute(key: str) -> int:
        calls.append(key)
        return len(calls)

    assert kept.get("a", lambda: compute("a")) == 1
    clock.advance(29)
    assert kept.get("a", lambda: compute("a")) == 1
    clock.advance(1)
    assert kept.get("a", lambda: compute("a")) == 2
    kept.get("b", lambda: compute("b"))
    kept.get("c", lambda: compute("c"))  # "a" is the oldest of three: dropped
    assert kept.get("a", lambda: compute("a")) == 5
    assert calls == ["a", "a", "b", "c", "a"]
