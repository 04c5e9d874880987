"""exchange/takedown/mailer.py against real aiosmtpd relays on 127.0.0.1.

What is shown: a message reaches the relay as sent (envelope and bytes); STARTTLS with a test CA
and AUTH (the relay saw TLS and the login); a relay that does not offer STARTTLS, a relay whose
certificate is not trusted and a refused login send nothing and are temporary; a 4xx reply is
temporary and a 5xx to the recipient or the message permanent; no relay listening, and a relay
that never answers (timeout), are temporary.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest

from exchange.errors import NoticeNotSent, NoticeRefused
from exchange.takedown.mailer import Mailer, Relay
from exchange.tools.provision import free_port
from tests.exchange.takedown.smtp import RelayTls, SmtpRelay

FROM = "notices@hotline.example.nl"
TO = "abuse@hosting.example.nl"


def message(subject: str = "notice") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = TO
    msg["Subject"] = subject
    msg["Message-ID"] = "<n-1@hotline.example.nl>"
    msg.set_content("https://bad.example.nl/a.jpg is online\n")
    return msg


def plain(relay: SmtpRelay, **options: object) -> Mailer:
    return Mailer(Relay("127.0.0.1", relay.port, starttls=False, timeout=5, **options))  # type: ignore[arg-type]


def test_a_message_reaches_the_relay_as_sent(relay: SmtpRelay) -> None:
    plain(relay).send(message("first"), sender=FROM, recipient=TO)
    (got,) = relay.messages
    assert (got.mail_from, got.rcpt_tos, got.tls, got.login) == (FROM, (TO,), False, None)
    assert got.message["Subject"] == "first"
    assert got.message["Message-ID"] == "<n-1@hotline.example.nl>"
    assert "bad.example.nl/a.jpg" in got.message.get_content()


def test_starttls_with_the_test_ca_and_auth(
    make_relay: Callable[..., SmtpRelay], relay_tls: RelayTls
) -> None:
    relay = make_relay(tls=relay_tls, users={"notices": "s3cret"})
    mailer = Mailer(
        Relay("127.0.0.1", relay.port, username="notices", password="s3cret", timeout=5),
        ssl_context=relay_tls.client_context(),
    )
    mailer.send(message(), sender=FROM, recipient=TO)
    (got,) = relay.messages
    assert got.tls is True
    assert got.login == "notices"
    assert relay.logins == [("notices", True)]


def test_the_password_never_shows_in_the_relay_settings() -> None:
    assert "s3cret" not in repr(Relay("relay", password="s3cret"))


def test_a_relay_without_starttls_gets_nothing(relay: SmtpRelay) -> None:
    mailer = Mailer(Relay("127.0.0.1", relay.port, starttls=True, timeout=5))
    with pytest.raises(NoticeNotSent, match="does not offer STARTTLS") as caught:
        mailer.send(message(), sender=FROM, recipient=TO)
    assert caught.value.temporary is True
    assert relay.messages == []
    assert relay.attempts == 0


def test_an_untrusted_certificate_sends_nothing(
    make_relay: Callable[..., SmtpRelay], relay_tls: RelayTls
) -> None:
    relay = make_relay(tls=relay_tls)
    mailer = Mailer(Relay("127.0.0.1", relay.port, timeout=5))  # the system's CAs only
    with pytest.raises(NoticeNotSent, match="SSLCertVerificationError"):
        mailer.send(message(), sender=FROM, recipient=TO)
    assert relay.messages == []


def test_a_refused_login_is_the_relays_problem_not_the_notices(
    make_relay: Callable[..., SmtpRelay], relay_tls: RelayTls
) -> None:
    relay = make_relay(tls=relay_tls, users={"notices": "s3cret"})
    mailer = Mailer(
        Relay("127.0.0.1", relay.port, username="notices", password="wrong", timeout=5),
        ssl_context=relay_tls.client_context(),
    )
    with pytest.raises(NoticeNotSent, match="refused the session: 535") as caught:
        mailer.send(message(), sender=FROM, recipient=TO)
    assert not isinstance(caught.value, NoticeRefused)
    assert relay.messages == []
    # smtplib tries each mechanism the relay offers (PLAIN, LOGIN): every one refused
    assert relay.logins
    assert all(login == ("notices", False) for login in relay.logins)


def test_auth_is_not_offered_in_the_clear(
    make_relay: Callable[..., SmtpRelay], relay_tls: RelayTls
) -> None:
    relay = make_relay(tls=relay_tls, users={"notices": "s3cret"})
    mailer = plain(relay, username="notices", password="s3cret")
    with pytest.raises(NoticeNotSent, match="AUTH"):
        mailer.send(message(), sender=FROM, recipient=TO)
    assert relay.logins == []
    assert relay.messages == []


def test_4xx_is_temporary_and_the_next_attempt_goes_through(relay: SmtpRelay) -> None:
    relay.data_replies.append("451 4.3.0 try again later")
    mailer = plain(relay)
    with pytest.raises(NoticeNotSent, match=re.escape("451 4.3.0 try again later")) as caught:
        mailer.send(message(), sender=FROM, recipient=TO)
    assert not isinstance(caught.value, NoticeRefused)
    assert relay.messages == []
    mailer.send(message(), sender=FROM, recipient=TO)
    assert len(relay.messages) == 1
    assert relay.attempts == 2


def test_5xx_to_the_message_is_permanent(relay: SmtpRelay) -> None:
    relay.data_replies.append("554 5.6.0 message content refused")
    with pytest.raises(
        NoticeRefused, match=re.escape("the message: 554 5.6.0 message content refused")
    ) as caught:
        plain(relay).send(message(), sender=FROM, recipient=TO)
    assert caught.value.temporary is False
    assert relay.messages == []


@pytest.mark.parametrize(
    "reply", ["554 5.7.1 relay access denied", "552 5.3.4 message too big for the relay"]
)
def test_a_refusal_by_the_relays_own_policy_is_ours_to_fix_not_the_hosters(
    relay: SmtpRelay, reply: str
) -> None:
    """One misconfigured relay must not mark every hoster's address as refusing notices."""
    relay.data_replies.append(reply)
    with pytest.raises(NoticeNotSent, match=re.escape(reply)) as caught:
        plain(relay).send(message(), sender=FROM, recipient=TO)
    assert not isinstance(caught.value, NoticeRefused)
    relay.rcpt_replies[TO] = "554 5.7.1 relay access denied"
    with pytest.raises(NoticeNotSent) as caught:
        plain(relay).send(message(), sender=FROM, recipient=TO)
    assert not isinstance(caught.value, NoticeRefused)


def test_5xx_to_the_recipient_is_permanent_4xx_temporary(relay: SmtpRelay) -> None:
    relay.rcpt_replies[TO] = "550 5.1.1 no such mailbox"
    with pytest.raises(
        NoticeRefused, match=re.escape(f"the recipient {TO}: 550 5.1.1 no such mailbox")
    ):
        plain(relay).send(message(), sender=FROM, recipient=TO)
    relay.rcpt_replies[TO] = "450 4.2.1 mailbox busy"
    with pytest.raises(NoticeNotSent) as caught:
        plain(relay).send(message(), sender=FROM, recipient=TO)
    assert not isinstance(caught.value, NoticeRefused)
    assert relay.messages == []


def test_no_relay_listening_is_temporary() -> None:
    mailer = Mailer(Relay("127.0.0.1", free_port(), starttls=False, timeout=2))
    with pytest.raises(NoticeNotSent, match="ConnectionRefusedError"):
        mailer.send(message(), sender=FROM, recipient=TO)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung relay)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        yield server.getsockname()[1]


def test_a_relay_that_never_answers_times_out(silent_port: int) -> None:
    mailer = Mailer(Relay("127.0.0.1", silent_port, starttls=False, timeout=0.3))
    with pytest.raises(NoticeNotSent, match="timed out"):
        mailer.send(message(), sender=FROM, recipient=TO)
