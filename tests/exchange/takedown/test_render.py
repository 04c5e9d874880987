"""exchange/takedown/render.py: a notice as an e-mail, read back with the ``email`` package.

The message is parsed from its bytes as a mail client (or a hoster's X-ARF parser) would: the
headers X-ARF asks for, the human text in the contact's language, one X-ARF YAML report per URL
and a JSON document listing every URL — and nothing of the content.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml

from exchange.takedown.model import Contact, Hoster
from exchange.takedown.notice_model import (
    Notice,
    NoticeUrl,
    message_id_for,
    notice_id_for,
)
from exchange.takedown.render import SCHEMA_URL, Sender, render

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SENDER = Sender(
    hotline="Meldpunt Kinderporno (EOKM)",
    from_address="notices@hotline.example.nl",
    reply_to="analysts@hotline.example.nl",
)
HOSTER = Hoster(64500, "Example Hosting B.V.")
URLS = (
    NoticeUrl("c-aaaa", "https://bad.example.nl/a.jpg", HOSTER, "NL", T0, 2, "baseline"),
    # a URL whose query would break naive YAML (": " and " #")
    NoticeUrl(
        "c-bbbb", "http://bad.example.nl:8080/b?q=x: y #z", HOSTER, "NL", None, 1, "national"
    ),
)


def contact(language: str = "en", name: str = "Example Hosting") -> Contact:
    return Contact(
        "AS64500", "abuse@hosting.example.nl", name, language, "legal@hosting.example.nl"
    )


def notice(**changes: Any) -> Notice:
    fields: dict[str, Any] = {
        "id": "n-0123456789abcdef0123456789abcdef",
        "message_id": "<n-0123456789abcdef0123456789abcdef@hotline.example.nl>",
        "recipient": "abuse@hosting.example.nl",
        "escalated": False,
        "created_at": T0 + timedelta(days=1),
        "urls": URLS,
        "previous": 0,
        "contact": contact(),
    }
    fields.update(changes)
    return Notice(**fields)


def read_back(n: Notice, sender: Sender = SENDER) -> EmailMessage:
    parsed = message_from_bytes(render(n, sender).as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(msg: EmailMessage) -> list[EmailMessage]:
    payload = msg.get_payload()
    assert isinstance(payload, list)
    return payload


def text_of(msg: EmailMessage) -> str:
    body = parts(msg)[0]
    assert body.get_content_type() == "text/plain"
    content = body.get_content()
    assert isinstance(content, str)
    return content


def test_the_headers_are_what_x_arf_and_rfc_3834_ask_for() -> None:
    msg = read_back(notice())
    assert msg.get_content_type() == "multipart/mixed"
    assert msg["X-ARF"] == "YES"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["To"] == "abuse@hosting.example.nl"
    assert msg["From"].addresses[0].addr_spec == "notices@hotline.example.nl"
    assert msg["From"].addresses[0].display_name == "Meldpunt Kinderporno (EOKM)"
    assert msg["Reply-To"] == "analysts@hotline.example.nl"
    assert msg["Message-ID"] == "<n-0123456789abcdef0123456789abcdef@hotline.example.nl>"
    assert msg["Date"].datetime == T0 + timedelta(days=1)
    assert "[n-0123456789abcdef0123456789abcdef]" in msg["Subject"]


def test_parts_in_order_body_one_xarf_report_per_url_then_json() -> None:
    msg = read_back(notice())
    kinds = [(p.get_content_type(), p.get_filename()) for p in parts(msg)]
    assert kinds == [
        ("text/plain", None),
        ("text/plain", "report.txt"),
        ("text/plain", "report.txt"),
        ("application/json", "notice.json"),
    ]
    for report in parts(msg)[1:3]:
        assert report.get_param("name") == "report.txt"
        assert report.get_content_charset() == "utf-8"


def xarf_reports(msg: EmailMessage) -> list[dict[str, Any]]:
    out = []
    for part in parts(msg):
        if part.get_filename() == "report.txt":
            text = part.get_content()
            assert text.startswith("---\n")
            out.append(yaml.safe_load(text))
    return out


def test_each_xarf_report_is_one_complete_v0_2_document() -> None:
    first, second = xarf_reports(read_back(notice()))
    assert first == {
        "Reported-From": "notices@hotline.example.nl",
        "Category": "abuse",
        "Report-Type": "illegal-content",
        "Report-ID": "n-0123456789abcdef0123456789abcdef-1@hotline.example.nl",
        "Service": "https",
        "Port": 443,
        "Version": "0.2",
        "User-Agent": SENDER.user_agent,
        "Date": "2026-03-01T12:00:00Z",  # first seen online
        "Source-Type": "uri",
        "Source": "https://bad.example.nl/a.jpg",
        "Schema-URL": SCHEMA_URL,
    }
    assert second["Source"] == "http://bad.example.nl:8080/b?q=x: y #z"  # exactly, quoted
    assert (second["Service"], second["Port"]) == ("http", 8080)
    assert second["Date"] == "2026-03-02T12:00:00Z"  # unknown since: the notice's date
    assert second["Report-ID"].endswith("-2@hotline.example.nl")


def test_the_json_lists_every_url_with_case_hoster_and_category() -> None:
    msg = read_back(notice(previous=2))
    (attachment,) = [p for p in parts(msg) if p.get_filename() == "notice.json"]
    document = json.loads(attachment.get_content())
    assert document["format"] == "ihx-notice"
    assert document["version"] == 1
    assert document["notice"] == "n-0123456789abcdef0123456789abcdef"
    assert document["message_id"] == msg["Message-ID"]
    assert document["previous_notices"] == 2
    assert document["escalation"] is False
    assert document["urls"] == [
        {
            "url": "https://bad.example.nl/a.jpg",
            "case": "c-aaaa",
            "first_seen_online": "2026-03-01T12:00:00Z",
            "hoster": {"asn": 64500, "organisation": "Example Hosting B.V."},
            "country": "NL",
            "category": "baseline",
            "items": 2,
        },
        {
            "url": "http://bad.example.nl:8080/b?q=x: y #z",
            "case": "c-bbbb",
            "first_seen_online": None,
            "hoster": {"asn": 64500, "organisation": "Example Hosting B.V."},
            "country": "NL",
            "category": "national",
            "items": 1,
        },
    ]


def test_the_text_names_every_url_the_hotline_and_how_to_reply() -> None:
    text = text_of(read_back(notice()))
    assert text.startswith("Dear Example Hosting,\n")
    for url in URLS:
        assert url.url in text
        assert url.case_id in text
    assert "online since 2026-03-01 12:00 UTC" in text
    assert "hosted by AS64500 Example Hosting B.V." in text
    assert "category: baseline" in text
    assert "category: national" in text
    assert "Meldpunt Kinderporno (EOKM)" in text
    assert "reply to this message (analysts@hotline.example.nl)" in text
    assert "n-0123456789abcdef0123456789abcdef" in text
    assert "earlier notice" not in text
    assert "escalation contact" not in text
    assert all(len(line) <= 78 for line in text.splitlines() if "://" not in line)


def test_a_reminder_and_an_escalation_say_so() -> None:
    msg = read_back(notice(escalated=True, previous=3, recipient="legal@hosting.example.nl"))
    text = text_of(msg)
    assert msg["Subject"].startswith("Escalation:")
    assert "Our notices to abuse@hosting.example.nl have not led" in " ".join(text.split())
    assert "3 earlier notice(s)" in text
    assert json.loads(parts(msg)[-1].get_content())["escalation"] is True


@pytest.mark.parametrize(
    ("language", "greeting", "subject", "since"),
    [
        ("nl", "Geachte Example Hosting,", "Melding:", "online sinds 2026-03-01"),
        ("de", "Sehr geehrte Damen und Herren (Example Hosting),", "Hinweis:", "abrufbar seit"),
        ("fr", "Dear Example Hosting,", "Notice:", "online since"),  # no French: English
    ],
)
def test_the_text_is_in_the_contacts_language(
    language: str, greeting: str, subject: str, since: str
) -> None:
    msg = read_back(notice(contact=contact(language)))
    text = text_of(msg)
    assert text.startswith(greeting)
    assert msg["Subject"].startswith(subject)
    assert since in text
    assert parts(msg)[0]["Content-Language"] == (language if language != "fr" else "en")
    # the machine-readable parts are the same in every language
    assert xarf_reports(msg) == xarf_reports(read_back(notice()))


def test_german_umlauts_survive_the_round_trip() -> None:
    text = text_of(read_back(notice(contact=contact("de"))))
    assert "Prüfungen" in text
    assert "Grüßen" in text


def test_a_contact_gone_from_the_directory_gets_english_without_a_name() -> None:
    text = text_of(read_back(notice(contact=None)))
    assert text.startswith("Dear abuse team,")


def test_nothing_of_the_content_is_in_the_message() -> None:
    raw = render(notice(), SENDER).as_string()
    for word in ("sha256", "md5", "pdq", "hash", "image/", "video/"):
        assert word not in raw.lower()


def test_ids_are_implied_so_a_resend_is_the_same_message() -> None:
    created = T0 + timedelta(days=1)
    one = notice_id_for("abuse@h.example", ["c-2", "c-1"], created)
    assert one == notice_id_for("ABUSE@h.example", ["c-1", "c-2"], created)
    assert one != notice_id_for("abuse@h.example", ["c-1"], created)
    assert one != notice_id_for("abuse@h.example", ["c-1", "c-2"], created + timedelta(seconds=1))
    assert one.startswith("n-")
    assert len(one) == 34
    assert message_id_for(one, "Notices@Hotline.Example.NL") == f"<{one}@hotline.example.nl>"
    first, again = (
        read_back(notice(id=one, message_id=message_id_for(one, SENDER.from_address))) for _ in "12"
    )
    assert first["Message-ID"] == again["Message-ID"] == f"<{one}@hotline.example.nl>"
    assert first["Date"] == again["Date"]
    assert parts(first)[-1].get_content() == parts(again)[-1].get_content()


SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "xarf" / "ihx-illegal-content_0.2.json"


def test_the_reports_are_what_the_shipped_schema_says() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["id"] == SCHEMA_URL
    properties = schema["properties"]
    for report in xarf_reports(read_back(notice())):
        assert set(report) == set(properties)  # every field, and no other
        for name, value in report.items():
            rule = properties[name]
            assert isinstance(value, int if rule["type"] == "integer" else str), name
            if "enum" in rule:
                assert value in rule["enum"], name


def test_a_url_longer_than_a_mail_line_survives() -> None:
    long_url = "https://bad.example.nl/" + "a/b=c&" * 300  # 1,823 characters, '=' included
    long_notice = notice(urls=(replace(URLS[0], url=long_url),))
    raw = render(long_notice, SENDER).as_string()
    assert all(len(line) <= 998 for line in raw.splitlines())
    msg = read_back(long_notice)
    (report,) = xarf_reports(msg)
    assert report["Source"] == long_url
    assert parts(msg)[1]["Content-Transfer-Encoding"] == "quoted-printable"
    assert long_url in text_of(msg)
    assert json.loads(parts(msg)[-1].get_content())["urls"][0]["url"] == long_url
