"""The hotline's abuse-contact directory: which mailbox gets the notices about a hoster.

A TOML file the hotline maintains (``[notices] directory``), one ``[[contact]]`` table per
hoster, keyed by AS number and/or organisation name (docs/takedown.md has the format). A
hoster is looked up by its ASN first — the re-trace knows it exactly — and by its
organisation name (case-insensitive) only when the ASN has no entry or is unknown.

Everything in the file is validated before any of it is used, and every refusal is a
``ConfigError`` naming the file, the entry (1-based, in file order) and the field: a bad
address (parsed by ``email.headerregistry``, plus the few rules SMTP delivery adds: ASCII, a
fully qualified domain), an ASN outside 1..4294967295, a duplicate key, an unknown key.

``DirectoryFile`` picks up edits without a restart: each ``current()`` compares the file's
identity (inode, size, mtime) with the one it loaded, and reloads on a change. A new version
that does not validate is logged once and the last good directory stays in force — a typo in
the file must not stop the notices that were going out.
"""

from __future__ import annotations

import logging
import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from email.errors import HeaderParseError, MessageDefect
from email.headerregistry import Address
from pathlib import Path
from typing import Any

from exchange.errors import ConfigError
from exchange.lifecycle.model import MAX_REF
from exchange.takedown.model import Contact, Hoster

log = logging.getLogger(__name__)

MAX_ASN = 4_294_967_295  # 32-bit AS numbers (RFC 6793); 0 is reserved (RFC 7607)
MAX_ORGANISATION = 128  # as the watches and the scorecard store it
MAX_NAME = 200
# An address is also the reported_to_host action's recipient, which every member checks
# against the lifecycle's reference limit.
MAX_ADDRESS = MAX_REF
_KEYS = frozenset({"asn", "organisation", "address", "name", "language", "escalation"})
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True, slots=True)
class Directory:
    """Contacts by AS number and by organisation name (case-folded)."""

    by_asn: Mapping[int, Contact]
    by_organisation: Mapping[str, Contact]

    def lookup(self, hoster: Hoster) -> Contact | None:
        """The contact for ``hoster``: by ASN first, else by organisation; None if neither."""
        if hoster.asn is not None:
            found = self.by_asn.get(hoster.asn)
            if found is not None:
                return found
        if hoster.organisation:
            return self.by_organisation.get(_fold(hoster.organisation))
        return None

    def contact(self, key: str) -> Contact | None:
        """The contact whose ``Contact.key`` is ``key`` (a notice written earlier names it)."""
        if key.startswith("AS") and key[2:].isdigit():
            return self.by_asn.get(int(key[2:]))
        return self.by_organisation.get(key)

    def __len__(self) -> int:
        return len({id(c) for c in (*self.by_asn.values(), *self.by_organisation.values())})


EMPTY = Directory({}, {})


def _fold(organisation: str) -> str:
    return " ".join(organisation.split()).casefold()


# -- parsing --------------------------------------------------------------------------------


def parse_directory(text: str, source: str) -> Directory:
    """The directory in ``text`` (TOML); ``source`` names it in every error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    except (RecursionError, ValueError):  # arrays nested thousands deep
        raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None
    unknown = sorted(set(data) - {"contact"})
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (only [[contact]] tables)")
    entries = data.get("contact", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{source}: 'contact' must be an array of tables ([[contact]])")
    by_asn: dict[int, Contact] = {}
    by_organisation: dict[str, Contact] = {}
    first_seen: dict[object, int] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"{source}: contact #{number}"
        asn, organisation, contact = _entry(entry, where)
        for key in ([("asn", asn)] if asn is not None else []) + (
            [("organisation", _fold(organisation))] if organisation else []
        ):
            if key in first_seen:
                raise ConfigError(
                    f"{where}: {key[0]} {entry[key[0]]!r} is already contact #{first_seen[key]}'s"
                )
            first_seen[key] = number
        if asn is not None:
            by_asn[asn] = contact
        if organisation:
            by_organisation[_fold(organisation)] = contact
    return Directory(by_asn, by_organisation)


def load_directory(path: Path) -> Directory:
    """The directory in the file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such abuse-contact directory") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    return parse_directory(text, str(path))


def _entry(entry: dict[str, Any], where: str) -> tuple[int | None, str, Contact]:
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
        )
    asn = _asn(entry.get("asn"), where)
    organisation = _text(entry, "organisation", where, MAX_ORGANISATION)
    if asn is None and not organisation:
        raise ConfigError(f"{where}: needs asn or organisation (or both)")
    if "address" not in entry:
        raise ConfigError(f"{where}: address is required (the abuse mailbox)")
    address = address_of(entry["address"], f"{where}: address")
    escalation = ""
    if "escalation" in entry:
        escalation = address_of(entry["escalation"], f"{where}: escalation")
        if escalation.casefold() == address.casefold():
            raise ConfigError(f"{where}: escalation is the same mailbox as address")
    contact = Contact(
        key=f"AS{asn}" if asn is not None else _fold(organisation),
        address=address,
        name=_text(entry, "name", where, MAX_NAME),
        language=_language(entry.get("language", "en"), where),
        escalation=escalation,
    )
    return asn, organisation, contact


def _asn(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: asn must be an integer (AS64500 is written 64500)")
    if not 1 <= value <= MAX_ASN:
        raise ConfigError(f"{where}: asn {value} is outside 1..{MAX_ASN}")
    return value


def _text(entry: dict[str, Any], key: str, where: str, limit: int) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string")
    value = " ".join(value.split())
    if len(value) > limit:
        raise ConfigError(f"{where}: {key} is longer than {limit} characters")
    if not value.isprintable():
        raise ConfigError(f"{where}: {key} contains a control character")
    return value


def _language(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) != 2 or not value.isascii() or not value.isalpha():
        raise ConfigError(
            f"{where}: language {value!r} is not an ISO 639-1 code (two letters, e.g. 'nl')"
        )
    return value.lower()


def address_of(value: object, where: str) -> str:
    """``value`` as a bare e-mail address (``abuse@example.net``), or a ``ConfigError``."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be an e-mail address such as abuse@example.net")
    text = value.strip()
    try:
        parsed = Address(addr_spec=text)
    except (ValueError, IndexError, HeaderParseError, MessageDefect) as error:
        # IndexError: the standard library's parser on "user@" (no domain at all)
        reason = str(error) or "no domain"
        raise ConfigError(f"{where}: {text[:80]!r} is not an e-mail address ({reason})") from None
    if not parsed.username or not parsed.domain:
        raise ConfigError(f"{where}: {text[:80]!r} needs a mailbox and a domain")
    if not text.isascii():
        raise ConfigError(
            f"{where}: {text[:80]!r} is not ASCII (write the domain in its xn-- form; the "
            "relay may not speak SMTPUTF8)"
        )
    _check_domain(parsed.domain, text, where)
    if len(text) > MAX_ADDRESS:
        raise ConfigError(f"{where}: longer than {MAX_ADDRESS} characters")
    return text


def _check_domain(domain: str, text: str, where: str) -> None:
    """A fully qualified host name: mail for an abuse desk never goes to a bare host or an
    address literal."""
    labels = domain.lower().split(".")
    if len(labels) < 2 or domain.startswith("["):
        raise ConfigError(f"{where}: {text[:80]!r}: the domain must be a fully qualified name")
    for label in labels:
        if (
            not 1 <= len(label) <= 63
            or not _LABEL_CHARS.issuperset(label)
            or label.startswith("-")
            or label.endswith("-")
        ):
            raise ConfigError(f"{where}: {text[:80]!r}: {label!r} is not a valid domain label")


# -- the file, watched ------------------------------------------------------------------------


class DirectoryFile:
    """The directory at ``path``, reloaded when the file changes.

    The first load must succeed (a node does not start with a broken directory); after that a
    broken edit is logged once and ignored until the file changes again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._identity = self._stat()
        self._current = load_directory(path)
        self._refused: tuple[int, int, int] | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> Directory:
        """The directory as the file says now (or the last good one, if it no longer does)."""
        identity = self._stat()
        if identity is None or identity in (self._identity, self._refused):
            return self._current
        with self._lock:
            if identity in (self._identity, self._refused):
                return self._current
            try:
                loaded = load_directory(self.path)
            except ConfigError as error:
                self._refused = identity
                log.error(
                    "abuse-contact directory not reloaded, the last good one stays: %s", error
                )
                return self._current
            self._current, self._identity, self._refused = loaded, identity, None
        log.info("abuse-contact directory reloaded", extra={"contacts": len(loaded)})
        return loaded
