"""A real SMTP relay on loopback for the notice tests (aiosmtpd), recording what it accepts.

``SmtpRelay`` runs aiosmtpd's threaded ``Controller`` on 127.0.0.1 and a free port, and can be
made to behave like the relays a node meets:

* ``tls=`` a ``RelayTls`` (a CA and a server certificate for 127.0.0.1, made with
  ``cryptography`` through ``auth.tls``): the relay offers STARTTLS; the client trusts it only
  with ``RelayTls.client_context()``;
* ``users={"notices": "secret"}``: AUTH is offered (after STARTTLS) and required;
* ``data_replies`` / ``rcpt_replies``: scripted answers — ``relay.data_replies.append("451 …")``
  makes the next DATA answer 451 and accept nothing; later messages are accepted again.

Every accepted message is a ``Received`` (envelope, bytes, whether the session was TLS and who
logged in); ``relay.messages`` lists them, ``relay.parsed()`` as ``EmailMessage``s, and
``relay.refused`` the messages a scripted DATA reply turned away.

Use it as a context manager, or through the fixtures of ``tests/exchange/takedown/conftest.py``
(``relay``, ``make_relay``, ``relay_tls``); an integration test imports ``SmtpRelay`` and
``RelayTls`` from here.
"""

from __future__ import annotations

import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from auth.tls import Issued, create_ca, issue_node_certificate
from exchange.tools.provision import free_port

RELAY_NAME = "relay.test"


@dataclass(frozen=True)
class RelayTls:
    """A test CA and the relay's certificate for 127.0.0.1 (files under ``directory``)."""

    ca: Issued
    server: Issued
    directory: Path

    @classmethod
    def create(cls, directory: Path) -> RelayTls:
        now = datetime.now(UTC)
        ca = create_ca("ihx test relay CA", now=now)
        server = issue_node_certificate(ca, "relay", hosts=["127.0.0.1", "localhost"], now=now)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "relay.crt").write_bytes(server.certificate_pem)
        (directory / "relay.key").write_bytes(server.key_pem)
        (directory / "ca.crt").write_bytes(ca.certificate_pem)
        return cls(ca, server, directory)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.directory / "relay.crt", self.directory / "relay.key")
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA (and nothing else)."""
        return ssl.create_default_context(cadata=self.ca.certificate_pem.decode())


@dataclass(frozen=True)
class Received:
    """One message the relay accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Handler:
    relay: SmtpRelay
    data_replies: deque[str] = field(default_factory=deque)
    rcpt_replies: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self,
        server: Any,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        login = session.auth_data.login.decode() if session.authenticated else None
        received = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=envelope.original_content or b"",
            tls=session.ssl is not None,
            login=login,
        )
        with self.relay.lock:
            self.relay.attempts += 1
            if self.data_replies:
                self.relay.refused.append(received)
                return self.data_replies.popleft()
            self.relay.messages.append(received)
        return "250 2.0.0 accepted for delivery"


class SmtpRelay:
    """An aiosmtpd relay on 127.0.0.1; ``start``/``stop`` or ``with SmtpRelay(...) as relay``."""

    def __init__(
        self,
        *,
        tls: RelayTls | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.refused: list[Received] = []  # messages answered with a scripted DATA reply
        self.attempts = 0  # DATA commands seen (accepted or not)
        self.logins: list[tuple[str, bool]] = []  # (user, accepted)
        self._users = dict(users or {})
        self._handler = _Handler(self)
        self.port = free_port()
        options: dict[str, Any] = {}
        if tls is not None:
            options["tls_context"] = tls.server_context()
        if users:
            options.update(authenticator=self._authenticate, auth_required=True)
        self._controller = Controller(
            self._handler,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname=RELAY_NAME,
            **options,
        )

    @property
    def data_replies(self) -> deque[str]:
        """Scripted answers to the next DATA commands (first in, first used)."""
        return self._handler.data_replies

    @property
    def rcpt_replies(self) -> dict[str, str]:
        """Scripted answers to RCPT TO per address (every time)."""
        return self._handler.rcpt_replies

    def _authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        accepted = self._users.get(user) == password
        with self.lock:
            self.logins.append((user, accepted))
        return AuthResult(success=accepted, handled=False, auth_data=auth_data)

    def start(self) -> SmtpRelay:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpRelay:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def parsed(self) -> list[EmailMessage]:
        with self.lock:
            return [m.message for m in self.messages]
