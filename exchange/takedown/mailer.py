"""Sending a notice through the hotline's SMTP relay (``smtplib``), and what a failure means.

One connection per notice: EHLO; STARTTLS when ``starttls`` is set — and if the relay does
not offer it, nothing is sent (a notice names URLs of abuse material: it never crosses the
network in the clear by accident); EHLO again over TLS; AUTH when a username is set; then the
message, to its one recipient. The TLS context is a parameter, so tests trust a test CA and a
node the system's store.

A failure is classified once, here, for the notifier:

* ``NoticeRefused`` (for good) — a 5xx reply to MAIL FROM, RCPT TO or DATA: the relay or the
  recipient's server will not take this message. The notice fails and goes back to people.
* ``NoticeNotSent`` (for now) — a 4xx reply, no connection, a timeout, a TLS failure, or a
  relay that is set up wrongly (no STARTTLS, no AUTH, login refused, greeting refused). The
  last are not the notice's fault: the notice waits, with back-off, until the relay is fixed.
"""

from __future__ import annotations

import contextlib
import enum
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage

from exchange.errors import NoticeNotSent, NoticeRefused

MAX_REPLY = 160  # the relay's reply text kept in an error (and in the notice row)


@dataclass(frozen=True, slots=True)
class Relay:
    """The relay as ``[notices]`` configures it."""

    host: str
    port: int = 587
    starttls: bool = True
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 30.0
    local_hostname: str | None = None  # the EHLO name (None: this host's FQDN)


class _Stage(enum.Enum):
    """How far a conversation got: before MAIL FROM a failure is the relay's, not the notice's."""

    RELAY = "relay"
    MESSAGE = "message"


class Mailer:
    """Sends one message at a time through ``relay``."""

    def __init__(self, relay: Relay, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.relay = relay
        self._context = ssl_context if ssl_context is not None else ssl.create_default_context()

    @property
    def where(self) -> str:
        return f"{self.relay.host}:{self.relay.port}"

    def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        """Hand ``message`` to the relay for ``recipient``; returns once the relay accepted it.

        Raises ``NoticeRefused`` (5xx to the message) or ``NoticeNotSent`` (anything else).
        """
        stage = _Stage.RELAY
        try:
            smtp = smtplib.SMTP(
                self.relay.host,
                self.relay.port,
                timeout=self.relay.timeout,
                local_hostname=self.relay.local_hostname,
            )
            try:
                self._hello(smtp)
                if self.relay.username:
                    smtp.login(self.relay.username, self.relay.password)
                stage = _Stage.MESSAGE
                smtp.send_message(message, from_addr=sender, to_addrs=[recipient])
                _quit(smtp)
            finally:
                smtp.close()
        except NoticeNotSent:
            raise
        except smtplib.SMTPSenderRefused as error:  # our own address: the relay's setup
            said = _reply(error.smtp_code, error.smtp_error)
            raise NoticeNotSent(f"relay {self.where} refused our sender: {said}") from None
        except smtplib.SMTPRecipientsRefused as error:
            code, reply = next(iter(error.recipients.values()), (0, b""))
            raise _classified(code, reply, f"the recipient {recipient}") from None
        except smtplib.SMTPResponseException as error:
            if stage is _Stage.RELAY:
                said = _reply(error.smtp_code, error.smtp_error)
                raise NoticeNotSent(f"relay {self.where} refused the session: {said}") from None
            raise _classified(error.smtp_code, error.smtp_error, "the message") from None
        except smtplib.SMTPNotSupportedError as error:
            raise NoticeNotSent(f"relay {self.where}: {error}") from None
        except (smtplib.SMTPException, OSError) as error:  # disconnects, timeouts, TLS errors
            raise NoticeNotSent(f"relay {self.where}: {type(error).__name__}: {error}") from None

    def _hello(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo()
        if not self.relay.starttls:
            return
        if not smtp.has_extn("starttls"):
            raise NoticeNotSent(
                f"relay {self.where} does not offer STARTTLS: notices are not sent in the "
                "clear (notices.starttls = false only for a relay on this host)"
            )
        smtp.starttls(context=self._context)
        smtp.ehlo()


def _quit(smtp: smtplib.SMTP) -> None:
    """A polite QUIT once the relay accepted the message; its failure changes nothing."""
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.quit()


_RELAY_POLICY = ("5.7.", "5.3.", "5.5.", "5.4.")  # the relay's own setup, not the recipient


def _classified(code: int, reply: bytes | str, what: str) -> NoticeNotSent:
    """5xx is a refusal for good, unless its enhanced status (RFC 3463) says the relay's own
    policy or state refused (relay access denied, a size limit): that is ours to fix, so the
    notice waits — one misconfigured relay must not mark every hoster's address as refusing."""
    said = _reply(code, reply)
    text = f"the relay refused {what}: {said}"
    enhanced = said.split(" ", 2)[1] if said.count(" ") >= 1 else ""
    if 500 <= code <= 599 and not enhanced.startswith(_RELAY_POLICY):
        return NoticeRefused(text)
    return NoticeNotSent(text)


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}"[:MAX_REPLY]
