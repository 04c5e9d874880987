"""Error types of the node: ``ExchangeError`` and its children.

Errors are types with a stable machine ``code`` and a one-line message safe to show a caller.
This module is pure (the domain raises these); the one mapping of every error — these and the
roots of ``routing`` and ``auth`` — to a gRPC status lives at the edge, ``edge/status.py``.
"""

from __future__ import annotations

from common.errors import IhxError


class ExchangeError(IhxError):
    """Base of the node's errors. ``code`` is stable and machine-readable."""

    code = "exchange-error"


class InvalidReport(ExchangeError):
    """A report or one of its parts fails validation."""

    code = "invalid-report"


class InvalidEnvelope(ExchangeError):
    """An envelope is malformed, over a limit, or inconsistent with its signed header."""

    code = "invalid-envelope"


class WrongRecipient(ExchangeError):
    code = "wrong-recipient"


class SequenceConflict(ExchangeError):
    """A sequence number reused with different content."""

    code = "sequence-conflict"


class ConfigError(ExchangeError):
    """Settings or node files are missing or malformed; the message names the field or file."""

    code = "config"


class ListenError(ConfigError):
    """A listen address the node cannot bind (in use, not ours, not permitted); the message names
    the address and why, so ``ihx node run`` says it in one line instead of failing later."""

    code = "listen"


class NotFound(ExchangeError):
    code = "not-found"


class MalformedRequest(ExchangeError):
    """A request message is not valid protobuf for its method: nothing of it was read."""

    code = "request-malformed"


class UnknownFields(ExchangeError):
    """A message carries fields its schema does not define: ihx stores and serves only known bytes.

    Unknown fields could carry anything — media included — past every check of the known ones,
    so they are refused wherever bytes come in, never skipped.
    """

    code = "unknown-field"


class OutOfRange(ExchangeError):
    """An integer (sequence, index, size, limit) outside the range the node can represent."""

    code = "out-of-range"


class EpochAhead(ExchangeError):
    """A peer signed under a manifest newer than any this node holds: retry once it has it."""

    code = "manifest-epoch-ahead"


class Overloaded(ExchangeError):
    """A caller holds its share of streams or workers already: nothing was started for it."""

    code = "overloaded"


class ShuttingDown(ExchangeError):
    """The node began to stop: it finishes the calls it took but takes no new work."""

    code = "shutting-down"


class InvalidHello(ExchangeError):
    """A peer's hello (``Exchange.Hello``) that is malformed, incomplete or signed at a time
    outside the receiver's clock skew of its own: nobody's sender was woken."""

    code = "invalid-hello"


class HelloReplayed(InvalidHello):
    """A hello signed no later than one already taken from that member: a replay."""

    code = "hello-replayed"


class HelloFlood(Overloaded):
    """More hellos from one member than a restarting node sends: refused unread."""

    code = "hello-rate"


class QuotaExceeded(ExchangeError):
    """A caller reached the most the node keeps for it (feedback per case, …): nothing stored."""

    code = "quota-exceeded"


class StorageUnavailable(ExchangeError):
    """The database refused the write (disk full, read-only, locked): nothing was stored."""

    code = "storage-unavailable"


class NoticeNotSent(ExchangeError):
    """The SMTP relay did not take a notice to a hoster's abuse contact, for now: a 4xx reply,
    no connection, a TLS failure, or a relay set up wrongly (no STARTTLS, login refused). The
    notice stays pending and is tried again after a back-off."""

    code = "notice-not-sent"
    temporary = True


class NoticeRefused(NoticeNotSent):
    """The relay refused a notice for good (a 5xx reply to the sender, the recipient or the
    message): the notice fails and its cases go back to an analyst."""

    code = "notice-refused"
    temporary = False


class InvalidEvent(ExchangeError):
    """A case event, assessment or action fails validation (a field, a code, a length)."""

    code = "invalid-event"


class TransitionRefused(ExchangeError):
    """A lifecycle step the rules forbid; the message names the rule and the item."""

    code = "transition-refused"


class NotAssigned(ExchangeError):
    """Only the member assigned to a case may assess or act on it (and only an origin may
    withdraw its own report)."""

    code = "not-assigned"


class NotYet(ExchangeError):
    """An envelope came before what it depends on (a case event before the receipt that names
    the case): nothing of it is stored, and the sender delivers it again after a back-off."""

    code = "not-yet"


class MoveUnknown(ExchangeError):
    """A take-over whose move has not reached this node long after it was made: refused on its
    own, so it cannot hold back the rest of its sender's events for ever."""

    code = "move-unknown"


class TransferRefused(ExchangeError):
    """A moved case's transfer that its receiver will not take: the message names why (not the
    holder's to move, evidence that does not verify, a country this member does not serve)."""

    code = "transfer-refused"


class InvalidStatisticsRequest(ExchangeError):
    """A statistics request the node will not answer: a malformed date, an unknown granularity,
    a period that ends before it starts, or one with more buckets than a snapshot may hold."""

    code = "stats-request-invalid"


class StatisticsRefused(ExchangeError):
    """A member's signed statistics failed a check (signature, member, period, edges, a series,
    a count, its time): never merged; ``code`` names the check, the message what was wrong."""

    code = "stats-refused"


def error_code(error: Exception) -> str:
    """The stable code of one of our errors; anything else (a driver's error included, whose own
    ``code`` means something else) is ``internal``."""
    return error.code if isinstance(error, IhxError) else "internal"


def error_message(error: Exception) -> str:
    """A one-line message safe to show a caller (no traceback, no internals)."""
    if isinstance(error, IhxError):
        return error.message
    return "internal error"
