"""What every page handler is given: the node's parts the view reads, the gate, the renderer.

``bind`` turns a ``handler(web, request)`` into the plain endpoint Starlette runs in its thread
pool (the reads are blocking SQLAlchemy calls; the event loop never waits on the database).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from common.clock import Clock
from exchange.kept import Kept
from exchange.lifecycle.model import Queue
from exchange.lifecycle.views import CaseViews
from exchange.local import LocalNode
from exchange.ops.status import NodeStatus
from exchange.pdq.matcher import PdqMatcher
from exchange.takedown.notice_model import HosterScore
from exchange.web.audit import ViewAudit
from exchange.web.figures import Snapshots
from exchange.web.gate import Gate
from exchange.web.limits import RateLimit
from exchange.web.render import Renderer


@dataclass
class Web:
    local: LocalNode
    gate: Gate
    renderer: Renderer
    views: CaseViews
    audit: ViewAudit
    snapshots: Snapshots
    queue_counts: Kept[str, dict[Queue, int]]
    status: Kept[str, tuple[datetime, NodeStatus]]
    clock: Clock
    case_views: RateLimit  # case pages per session (each may write a log entry)
    hosts: Kept[str, tuple[datetime, list[HosterScore]]]  # the scorecard, as of when computed
    # The view's own near-duplicate index, behind ``views`` (case pages); None: [web] pdq_index
    # is off (the case page then points to ``ihx case show``).
    pdq: PdqMatcher | None
    # One full chain verification at a time: it reads the whole log.
    verifying: threading.Lock = field(default_factory=threading.Lock)


Handler = Callable[[Web, Request], Response]


def bind(web: Web, handler: Handler) -> Callable[[Request], Response]:
    def endpoint(request: Request) -> Response:
        return handler(web, request)

    endpoint.__name__ = handler.__name__
    return endpoint
