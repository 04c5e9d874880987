"""Request streams on a reader thread, and the one way a servicer ends a call with an error.

Why: both streaming servicers (exchange_service.py, intake_service.py) read their request stream
on a reader thread, so requests keep flowing while earlier ones wait for their group commit, and
answer in request order from a bounded queue. The reader, its back-pressure and its shutdown rules
are the same for both, so they live here once.

A request stream's messages are decoded by ``decoding.DecodeGuard`` as the reader thread takes
them: a message that is not valid protobuf raises ``MalformedRequest`` there, and the reader hands
it to the answering loop, which answers everything before it and then ends the stream with
INVALID_ARGUMENT. Any other end of the request iterator (the client half-closed, cancelled or went
away) just ends the stream.

``abort`` maps every exception once, by ``status.status_for``, to a status with a one-line
message; nothing else leaks (an INTERNAL one is logged with its traceback).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc

from exchange.edge.status import status_for
from exchange.errors import MalformedRequest, error_code, error_message

log = logging.getLogger(__name__)

ENDED = object()
"""Queued by ``nudge``: no answer, only a wake-up for the answering loop."""


def abort(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    if status_for(error) is grpc.StatusCode.INTERNAL:
        log.exception("internal error", exc_info=error)
    context.abort(status_for(error), f"{error_code(error)}: {error_message(error)}")


def offer(pending: queue.Queue[Any], entry: Any, context: grpc.ServicerContext) -> bool:
    """Queue ``entry`` for the answering loop; False once the RPC is over.

    The queue is bounded (back-pressure), and once the RPC has ended — cancelled by the client,
    aborted, past its deadline — nobody takes from it any more: a reader blocked on a full queue
    would then hang for ever, one thread per broken stream.
    """
    while True:
        try:
            pending.put(entry, timeout=0.5)
            return True
        except queue.Full:
            if not context.is_active():
                return False


def read_requests(
    name: str,
    requests: Iterator[Any],
    take: Callable[[Any], Any],
    pending: queue.Queue[Any],
    context: grpc.ServicerContext,
) -> None:
    """Start a reader thread: each request through ``take`` into ``pending``, then None.

    An exception from ``take``, or a malformed message (``MalformedRequest`` from the decoding
    guard), is queued after everything before it — so that is answered first — and ends the
    reading; a client that half-closes, cancels or goes away just ends it.
    """

    def read() -> None:
        try:
            for request in requests:
                try:
                    entry = take(request)
                except Exception as error:
                    offer(pending, error, context)
                    return
                if not offer(pending, entry, context):
                    return
        except MalformedRequest as error:
            offer(pending, error, context)
        except Exception:
            log.debug("%s: the client ended the stream", name)
        finally:
            offer(pending, None, context)

    threading.Thread(target=read, name=name, daemon=True).start()


def nudge(pending: queue.Queue[Any]) -> None:
    """Wake a stream's answering loop; a full queue means it is awake anyway."""
    with contextlib.suppress(queue.Full):
        pending.put_nowait(ENDED)
