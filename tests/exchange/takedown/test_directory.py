"""exchange/takedown/directory.py: the hotline's abuse-contact directory.

The example file shipped in docs/examples/ is the one read here (so the documented format is
the tested one). Every refusal names the file, the entry and the field; a broken edit of the
file in use is logged and the last good directory stays, a good edit is picked up without a
restart.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from exchange.errors import ConfigError
from exchange.takedown.directory import (
    DirectoryFile,
    address_of,
    load_directory,
    parse_directory,
)
from exchange.takedown.model import Contact, Hoster

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "abuse-contacts.toml"
SOURCE = "contacts.toml"


def test_the_shipped_example_loads_and_looks_up_by_asn_then_organisation() -> None:
    directory = load_directory(EXAMPLE)
    assert len(directory) == 4
    by_asn = directory.lookup(Hoster(64500, "Whatever the ASN database says"))
    assert by_asn == Contact(
        key="AS64500",
        address="abuse@hosting.example.nl",
        name="Example Hosting abuse desk",
        language="nl",
        escalation="legal@hosting.example.nl",
    )
    # no entry for the ASN: the organisation, case and spacing ignored
    by_name = directory.lookup(Hoster(64999, "  reseller   CLOUD ltd "))
    assert by_name is not None
    assert by_name.address == "report@reseller-cloud.example.com"
    assert by_name.key == "reseller cloud ltd"
    assert by_name.language == "en"
    assert directory.lookup(Hoster(None, "Example Hosting B.V.")) == by_asn
    assert directory.lookup(Hoster(64999, "Nobody")) is None
    assert directory.lookup(Hoster(None, "")) is None


def test_a_contact_is_found_again_by_its_key() -> None:
    directory = load_directory(EXAMPLE)
    for hoster in (Hoster(64501, ""), Hoster(None, "Reseller Cloud Ltd")):
        contact = directory.lookup(hoster)
        assert contact is not None
        assert directory.contact(contact.key) == contact
    assert directory.contact("AS1") is None


def entry(**fields: object) -> str:
    lines = ["[[contact]]"]
    for key, value in fields.items():
        lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


GOOD = entry(asn=64500, address="abuse@hosting.example.nl")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[contact]\n", "contacts.toml: not valid TOML"),
        ("[hosts]\nx = 1\n", "contacts.toml: unknown key 'hosts'"),
        ("contact = 3\n", "'contact' must be an array of tables"),
        (
            GOOD + entry(asn=64501, address="a@b.example", colour="red"),
            "contact #2: unknown key 'colour'",
        ),
        (entry(address="abuse@x.example"), "contact #1: needs asn or organisation"),
        (entry(asn=64500), "contact #1: address is required"),
        (entry(asn=0, address="a@b.example"), "contact #1: asn 0 is outside 1..4294967295"),
        (entry(asn=4294967296, address="a@b.example"), "asn 4294967296 is outside 1..4294967295"),
        (entry(asn="AS64500", address="a@b.example"), "contact #1: asn must be an integer"),
        (entry(asn=True, address="a@b.example"), "contact #1: asn must be an integer"),
        (
            GOOD + entry(asn=64500, address="b@c.example"),
            "contact #2: asn 64500 is already contact #1's",
        ),
        (
            entry(organisation="Example B.V.", address="a@b.example")
            + entry(organisation="example  b.v.", address="c@d.example"),
            "contact #2: organisation 'example  b.v.' is already contact #1's",
        ),
        (
            entry(asn=64500, address="abuse@"),
            "contact #1: address: 'abuse@' is not an e-mail address",
        ),
        (
            entry(asn=64500, address="not an address"),
            "contact #1: address: 'not an address' is not",
        ),
        (entry(asn=64500, address="Abuse <a@b.example>"), "is not an e-mail address"),
        (entry(asn=64500, address="a@b.example, c@d.example"), "is not an e-mail address"),
        (entry(asn=64500, address="abuse@localhost"), "the domain must be a fully qualified name"),
        (
            entry(asn=64500, address="abuse@[192.0.2.1]"),
            "the domain must be a fully qualified name",
        ),
        (entry(asn=64500, address="abuse@-bad.example"), "'-bad' is not a valid domain label"),
        (
            entry(asn=64500, address="abuse@exämple.de"),
            "is not ASCII (write the domain in its xn--",
        ),
        (entry(asn=64500, address=f"{'a' * 120}@b.example"), "address: longer than 128 characters"),
        (entry(asn=64500, address=3), "contact #1: address: must be an e-mail address"),
        (
            entry(asn=64500, address="a@b.example", escalation="oops"),
            "contact #1: escalation: 'oops' is not an e-mail address",
        ),
        (
            entry(asn=64500, address="a@b.example", escalation="A@B.example"),
            "escalation is the same mailbox as address",
        ),
        (
            entry(asn=64500, address="a@b.example", language="dutch"),
            "language 'dutch' is not an ISO 639-1",
        ),
        (
            entry(asn=64500, address="a@b.example", language="n1"),
            "language 'n1' is not an ISO 639-1",
        ),
        (entry(asn=64500, address="a@b.example", name=5), "contact #1: name must be a string"),
        (entry(organisation="x" * 129, address="a@b.example"), "organisation is longer than 128"),
    ],
)
def test_every_refusal_names_the_file_the_entry_and_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_directory(text, SOURCE)
    assert message in caught.value.message
    assert caught.value.message.startswith(SOURCE)


def test_languages_are_lower_cased_and_default_to_english() -> None:
    directory = parse_directory(
        entry(asn=64500, address="a@b.example", language="DE")
        + entry(asn=64501, address="c@d.example"),
        SOURCE,
    )
    assert directory.by_asn[64500].language == "de"
    assert directory.by_asn[64501].language == "en"


def test_an_address_is_kept_as_written() -> None:
    assert (
        address_of(" Abuse.Desk+ihx@Hosting.Example.NL ", "x")
        == "Abuse.Desk+ihx@Hosting.Example.NL"
    )


def test_a_missing_or_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such abuse-contact directory"):
        load_directory(tmp_path / "absent.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[[contact]]")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_directory(binary)


# -- the file in use ---------------------------------------------------------------------------


def rewrite(path: Path, text: str) -> None:
    """Replace the file and move its mtime on (two writes within a tick must still differ)."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_edits_are_picked_up_and_a_broken_one_keeps_the_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "contacts.toml"
    path.write_text(GOOD, encoding="utf-8")
    watched = DirectoryFile(path)
    assert watched.current().lookup(Hoster(64501, "")) is None

    rewrite(path, GOOD + entry(asn=64501, address="abuse@two.example"))
    assert watched.current().by_asn[64501].address == "abuse@two.example"

    with caplog.at_level(logging.ERROR, logger="exchange.takedown.directory"):
        rewrite(path, GOOD + entry(asn=64501, address="broken"))
        kept = watched.current()
        again = watched.current()
    assert kept.by_asn[64501].address == "abuse@two.example"
    assert again is kept
    refusals = [r for r in caplog.records if "not reloaded" in r.getMessage()]
    assert len(refusals) == 1  # logged once, not at every look
    assert "contact #2: address: 'broken'" in refusals[0].getMessage()

    rewrite(path, entry(asn=64502, address="abuse@three.example"))
    fixed = watched.current()
    assert set(fixed.by_asn) == {64502}


def test_the_file_must_be_good_at_start(tmp_path: Path) -> None:
    path = tmp_path / "contacts.toml"
    path.write_text(entry(asn=64500, address="broken"), encoding="utf-8")
    with pytest.raises(ConfigError, match="contact #1: address"):
        DirectoryFile(path)


def test_a_file_removed_later_keeps_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "contacts.toml"
    path.write_text(GOOD, encoding="utf-8")
    watched = DirectoryFile(path)
    path.unlink()
    assert watched.current().by_asn[64500].address == "abuse@hosting.example.nl"


def test_arrays_nested_thousands_deep_are_a_config_error_not_a_crash() -> None:
    text = "x = " + "[" * 5000 + "]" * 5000
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_directory(text, "abuse-contacts.toml")
