"""The ``[exchange]`` section: how a node sends, receives and admits — every key optional.

``ExchangeTuning`` is a frozen (pydantic) dataclass, so the sender, the admission interceptor and
tests use it as a plain value (``ExchangeTuning(window=8)``, ``dataclasses.replace``) while the
loader validates a file's table against the same declarations. Each field is declared once with
its default and range (``between``); ``LIMITS`` is read back from them, and the Helm chart's
values schema is tested against it, so the chart can never allow what the node refuses.
"""

from __future__ import annotations

from pydantic import ConfigDict, model_validator
from pydantic.dataclasses import dataclass

from exchange.settings.fields import between, limits, refuse

__all__ = ["LIMITS", "ExchangeTuning"]


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class ExchangeTuning:
    max_batch: int = between(500, 1, 1000)
    linger_ms: float = between(5.0, 0, 1000)
    # Hash announcements are background traffic (a peer's index needs them within seconds, no
    # delivery waits on them): a short batch waits this long for more (delivery/batches.py).
    announcement_linger_ms: float = between(250.0, 0, 10000)
    window: int = between(4, 1, 64)
    receipt_timeout_s: float = between(30.0, 0.1, 3600)
    stream_lifetime_s: float = between(600.0, 1, 86400)
    backoff_initial_s: float = between(1.0, 0.01, 60)
    backoff_max_s: float = between(300.0, 0.1, 3600)
    max_payloads: int = between(1000, 1, 10000)
    # A batch must hold at least one maximal report (64 KiB payload) plus envelope overhead.
    max_message_bytes: int = between(16 * 1024 * 1024, 256 * 1024, 64 * 1024 * 1024)
    manifest_poll_s: float = between(1.0, 0.05, 3600)
    # PostgreSQL with several replicas: how long a replica's claim on a peer's stream lasts
    # unless renewed (a dead replica's peers are taken over after about this long).
    lease_s: float = between(10.0, 1, 3600)
    # How far a peer's clock (an envelope's or receipt's time, a manifest's issued_at) may run
    # ahead of ours before it is refused; see exchange/wire/envelope.py.
    max_clock_skew_s: float = between(900.0, 1, 86400)
    # Admission (exchange/edge/admission.py): what one peer or client can hold of the node.
    # Every budget is a number of concurrent calls; the gRPC worker pool is sized from their
    # sum, so one kind of call can never take the workers another needs.
    max_streams: int = between(128, 1, 4096)  # verified exchange streams, all members
    probation_streams: int = between(32, 1, 1024)  # streams awaiting a verified first envelope
    streams_per_member: int = between(4, 1, 64)  # verified streams of one member (a sender: 1)
    streams_per_connection: int = between(8, 1, 256)  # exchange streams on one connection
    first_envelope_s: float = between(10.0, 0.1, 600)  # no valid envelope by then: ended
    stream_idle_timeout_s: float = between(180.0, 1, 86400)  # the server ends a quiet stream …
    stream_idle_s: float = between(60.0, 0.5, 86400)  # … our sender closes its own well before
    intake_calls: int = between(64, 1, 4096)
    partner_calls: int = between(32, 1, 4096)
    log_calls: int = between(16, 1, 4096)
    hello_calls: int = between(8, 1, 4096)  # Exchange.Hello: fast, rate-limited per member
    probe_streams: int = between(8, 1, 4096)  # health Watch and reflection streams …
    probes_per_connection: int = between(2, 1, 256)  # … of which one connection holds so many
    probe_max_s: float = between(300.0, 1, 86400)  # … each then cancelled (clients re-open)
    other_calls: int = between(16, 1, 4096)  # Exchange.Deliver, Statistics
    open_calls: int = between(32, 1, 4096)  # health Check, GetNodeInfo: short, never waiting
    cases_calls: int = between(32, 1, 4096)  # Cases: queues, reads, assess, act, withdraw
    watch_streams: int = between(16, 1, 4096)  # Cases.WatchCases streams open at once
    watch_max_s: float = between(900.0, 1, 86400)  # a watch then ends; its client resumes
    calls_per_subject: int = between(16, 1, 4096)  # concurrent calls of one token subject
    health_probe_s: float = between(5.0, 0.05, 3600)  # how often health probes db and workers

    @model_validator(mode="after")
    def _idle_close_before_idle_cut(self) -> ExchangeTuning:
        # Our sender must close an idle stream before a peer's server would cut it: a cut
        # looks like a failure and costs a backoff.
        if self.stream_idle_s >= self.stream_idle_timeout_s:
            raise refuse("exchange.stream_idle_s must be less than exchange.stream_idle_timeout_s")
        # Announcements waiting on an open stream must fall due before it is closed as idle.
        if self.announcement_linger_ms / 1000 >= self.stream_idle_s:
            raise refuse(
                "exchange.announcement_linger_ms must be less than exchange.stream_idle_s "
                "(in milliseconds)"
            )
        return self


# {key: (low, high)} of every [exchange] key, read from the declarations above.
LIMITS: dict[str, tuple[float, float]] = limits(ExchangeTuning)
