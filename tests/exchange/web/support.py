"""The web view under test: a real uvicorn server on loopback over a real node's database.

``WebServer`` runs ``exchange.web`` for one node of a test federation in a thread (its own
event loop), on a free port, with a clock the tests can move (``ShiftedClock``: the real time
plus an offset, to expire tokens and sessions without waiting). ``Http`` is a small client over
urllib that never follows redirects and keeps the cookies it is given, for the checks that need
the raw answer (headers, status codes, forged cookies, CSRF).
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

import uvicorn

from exchange.settings import Settings
from exchange.settings.sections import WebSection
from exchange.tools.provision import free_port
from exchange.web.server import server_for


@dataclass
class ShiftedClock:
    offset: timedelta = timedelta(0)
    frozen: datetime | None = None  # a test that counts on time standing still sets it

    def __call__(self) -> datetime:
        return self.frozen if self.frozen is not None else datetime.now(UTC) + self.offset

    @contextmanager
    def standing_still(self) -> Iterator[None]:
        """Time stops for a rate-limit test: on a loaded machine a second may pass inside a
        burst and refill it."""
        self.frozen = self()
        try:
            yield
        finally:
            self.frozen = None


class WebServer:
    def __init__(
        self,
        settings: Settings,
        clock: ShiftedClock,
        *,
        tls: tuple[Path, Path] | None = None,
        **web_fields: Any,
    ) -> None:
        self.port = free_port()
        cert, key = tls or (None, None)
        # Every test logs in from 127.0.0.1: the per-address login limit is tested on its own.
        fields: dict[str, Any] = {
            "login_burst": 1_000_000,
            "login_total_burst": 1_000_000,
            **web_fields,
        }
        web = WebSection(
            enabled=True, listen=f"127.0.0.1:{self.port}", tls_cert=cert, tls_key=key, **fields
        )
        self.settings = settings.model_copy(update={"web": web})
        self.scheme = "https" if tls else "http"
        self.clock = clock
        self.server: uvicorn.Server = server_for(self.settings, clock=clock)
        self._thread = threading.Thread(target=self.server.run, name="ihx-web", daemon=True)

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web view did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(20)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Message
    body: str

    def cookie(self, name: str) -> str | None:
        """The Set-Cookie header that sets ``name`` (whole, with its attributes)."""
        for value in self.headers.get_all("set-cookie") or []:
            if value.startswith(name + "="):
                return value
        return None


@dataclass
class Http:
    base: str
    cookies: dict[str, str] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None

    def _open(self, request: urllib.request.Request) -> Answer:
        if self.cookies:
            request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        opener = urllib.request.build_opener(
            _NoRedirect, urllib.request.HTTPSHandler(context=self.tls)
        )
        try:
            response: HTTPResponse = opener.open(request, timeout=30)
        except urllib.error.HTTPError as error:
            answer = Answer(error.code, error.headers, error.read().decode())
        else:
            answer = Answer(response.status, response.headers, response.read().decode())
        for value in answer.headers.get_all("set-cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return answer

    def get(self, path: str) -> Answer:
        return self._open(urllib.request.Request(self.base + path))

    def post(
        self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None
    ) -> Answer:
        data = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method="POST", headers=headers or {}
        )
        return self._open(request)
