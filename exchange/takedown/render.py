"""A notice as an e-mail: plain text for people, X-ARF and JSON for the hoster's tools.

The message is ``multipart/mixed`` with ``X-ARF: YES`` and ``Auto-Submitted: auto-generated``
(RFC 3834) — what X-ARF v0.2 asks of a report mail — and these parts, in this order:

1. the human-readable notice (``text/plain; charset=utf-8``), in the contact's language when
   ``texts.py`` has it (English, Dutch, German), English otherwise: what was found, every URL
   with its hoster, since when it is online and its category, the hotline, how to reply;
2. one X-ARF v0.2 report per URL (``text/plain; charset=utf-8; name="report.txt"``): a YAML
   document opened by ``---`` with ``Reported-From``, ``Category``, ``Report-Type``,
   ``Report-ID``, ``Service``, ``Port``, ``Version``, ``User-Agent``, ``Date``,
   ``Source-Type: uri``, ``Source`` and ``Schema-URL``;
3. ``notice.json`` (``application/json``): every URL with its case reference, when it was
   first seen online, its hoster (ASN, organisation), country and classification category.

Why one X-ARF part per URL: an X-ARF report describes one incident (one ``Source``), and
tools that read X-ARF take the part named ``report.txt`` and parse one YAML document. A
notice groups every URL of one abuse contact, so it carries one complete report per URL
rather than a YAML list no X-ARF schema defines: a tool that reads only the first
``report.txt`` still gets a valid report, one that walks the parts gets them all, and
``notice.json`` lists everything in one document. No evidence part is ever attached — ihx
never carries content — so the reports have no ``Attachment`` field; the schema the reports
name (``docs/xarf/ihx-illegal-content_0.2.json``) says so.

Nothing of the content is in a notice: no image, no hash. The Message-ID is the notice's
(``<notice-id@from-domain>``), so a notice re-sent after a crash is the same message, and the
Date is when the notice was written, not when an attempt ran.
"""

from __future__ import annotations

import json
import quopri
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import compat32
from email.utils import format_datetime
from importlib import metadata
from urllib.parse import urlsplit

import yaml

from exchange.takedown.notice_model import Notice, NoticeUrl
from exchange.takedown.texts import texts_for

XARF_VERSION = "0.2"
XARF_CATEGORY = "abuse"
XARF_REPORT_TYPE = "illegal-content"
XARF_PART_NAME = "report.txt"
JSON_PART_NAME = "notice.json"
JSON_FORMAT = "ihx-notice"
JSON_VERSION = 1
# Where the schema of the reports is published: the file is docs/xarf/ in this repository; a
# hotline that publishes its own copy passes its URL in ``Sender.schema_url``.
SCHEMA_URL = "https://ihx.example/xarf/ihx-illegal-content_0.2.json"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
MAX_7BIT_LINE = 998  # RFC 5322's line limit
# libyaml's safe dumper when PyYAML was built with it (several times faster), else PyYAML's own
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
WIDTH = 72


def _version() -> str:
    try:
        return metadata.version("ihx")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"ihx/{_version()}"


@dataclass(frozen=True, slots=True)
class Sender:
    """Who the notices come from (``[notices]``: hotline, from_address, reply_to)."""

    hotline: str
    from_address: str
    reply_to: str = ""
    user_agent: str = USER_AGENT
    schema_url: str = SCHEMA_URL


def render(notice: Notice, sender: Sender) -> EmailMessage:
    """The notice as the message the relay is given."""
    language, words = texts_for(notice.contact.language if notice.contact else "en")
    msg = EmailMessage()
    msg["From"] = Address(display_name=sender.hotline, addr_spec=sender.from_address)
    msg["To"] = notice.recipient
    if sender.reply_to:
        msg["Reply-To"] = sender.reply_to
    subject = words["subject_escalated" if notice.escalated else "subject"]
    msg["Subject"] = subject.format(ref=notice.id)
    msg["Date"] = format_datetime(notice.created_at.astimezone(UTC))
    msg["Message-ID"] = notice.message_id
    msg["X-ARF"] = "YES"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body(notice, sender, words), charset="utf-8")
    msg["Content-Language"] = language  # after set_content, which clears Content-* headers
    msg.make_mixed()
    for index, url in enumerate(notice.urls, start=1):
        msg.attach(_xarf_part(xarf_report(notice, url, index, sender)))
    msg.add_attachment(
        notice_json(notice, sender).encode(),
        maintype="application",
        subtype="json",
        filename=JSON_PART_NAME,
    )
    return msg


# -- the parts ------------------------------------------------------------------------------


def body(notice: Notice, sender: Sender, words: Mapping[str, str]) -> str:
    """The human-readable notice."""
    contact = notice.contact
    greeting = (
        words["greeting_named"].format(name=contact.name)
        if contact is not None and contact.name
        else words["greeting"]
    )
    prose = [words["intro"].format(hotline=sender.hotline), words["request"]]
    if notice.escalated and contact is not None:
        prose.append(words["escalation"].format(address=contact.address))
    if notice.previous:
        prose.append(words["reminder"].format(previous=notice.previous))
    lines = [words["urls"].format(count=len(notice.urls))]
    for number, url in enumerate(notice.urls, start=1):
        lines.extend(_url_lines(number, url, words))
    reply_to = sender.reply_to or sender.from_address
    closing = [
        words["reply"].format(reply_to=reply_to, ref=notice.id),
        words["machine"],
        words["recheck"],
    ]
    paragraphs = [
        greeting,
        *(_wrap(p) for p in prose),
        "\n".join(lines),
        *(_wrap(p) for p in closing),
        f"{words['closing']}\n{sender.hotline}",
    ]
    return "\n\n".join(paragraphs) + "\n"


def _wrap(paragraph: str) -> str:
    # Short lines: the body stays 7bit (or readable quoted-printable) and reads in any client.
    return textwrap.fill(paragraph, width=WIDTH, break_long_words=False, break_on_hyphens=False)


def _url_lines(number: int, url: NoticeUrl, words: Mapping[str, str]) -> list[str]:
    since = (
        words["since"].format(since=f"{url.online_since.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
        if url.online_since is not None
        else words["since_unknown"]
    )
    details = [
        since,
        words["hosted_by"].format(hoster=url.hoster.label),
        words.get(url.category, url.category),
        words["case"].format(case=url.case_id),
    ]
    return [f"{number:>3}. {url.url}", *(f"     {d}" for d in details)]


def _xarf_part(report: str) -> EmailMessage:
    """One ``report.txt`` part, its headers set as plain text (``compat32``: not parsed): a
    notice has up to 500 of them, and ``add_attachment`` parsing every header was most of the
    cost of a notice."""
    part = EmailMessage(policy=compat32)
    part["Content-Type"] = f'text/plain; charset="utf-8"; name="{XARF_PART_NAME}"'
    part["Content-Disposition"] = f'attachment; filename="{XARF_PART_NAME}"'
    # ASCII (the YAML escapes anything else); 7bit unless a very long URL needs soft breaks
    if max(len(line) for line in report.splitlines()) <= MAX_7BIT_LINE:
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(report)
    else:
        part["Content-Transfer-Encoding"] = "quoted-printable"
        part.set_payload(quopri.encodestring(report.encode("ascii")).decode("ascii"))
    return part


def xarf_report(notice: Notice, url: NoticeUrl, index: int, sender: Sender) -> str:
    """The X-ARF v0.2 report of one URL (a YAML document)."""
    parts = urlsplit(url.url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # canonical URLs have a valid port; a stored one cannot be trusted more
        port = _DEFAULT_PORTS.get(scheme)
    domain = sender.from_address.rpartition("@")[2].lower()
    report = {
        "Reported-From": sender.from_address,
        "Category": XARF_CATEGORY,
        "Report-Type": XARF_REPORT_TYPE,
        "Report-ID": f"{notice.id}-{index}@{domain}",
        "Service": scheme,
        "Port": port,
        "Version": XARF_VERSION,
        "User-Agent": sender.user_agent,
        "Date": _time(url.online_since or notice.created_at),
        "Source-Type": "uri",
        "Source": url.url,
        "Schema-URL": sender.schema_url,
    }
    return yaml.dump(
        report,
        Dumper=_DUMPER,
        explicit_start=True,
        sort_keys=False,
        allow_unicode=False,
        width=4096,
    )


def notice_json(notice: Notice, sender: Sender) -> str:
    """The notice as one JSON document: every URL with its case, hoster and category."""
    document = {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "notice": notice.id,
        "message_id": notice.message_id,
        "date": _time(notice.created_at),
        "hotline": sender.hotline,
        "reported_from": sender.from_address,
        "escalation": notice.escalated,
        "previous_notices": notice.previous,
        "urls": [
            {
                "url": u.url,
                "case": u.case_id,
                "first_seen_online": _time(u.online_since) if u.online_since else None,
                "hoster": {"asn": u.hoster.asn, "organisation": u.hoster.organisation},
                "country": u.country,
                "category": u.category,
                "items": u.items,
            }
            for u in notice.urls
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
