"""Property-based fuzzing: parsers and verifiers either succeed or raise their typed errors.

What is already a property elsewhere is not repeated here:

* canonical URL idempotence over WHATWG-shaped URLs — ``tests/routing/test_canonical.py``
  (``test_canonicalisation_is_idempotent``); this module adds URLs built from hostile parts;
* Merkle proofs, any single-bit change of leaf, proof, root or size fails —
  ``tests/auth/test_merkle.py`` (``test_any_single_bit_change_is_detected``);
* codec round trips of items, submissions and announcements — ``tests/exchange/test_codec.py``;
  this module adds whole ``Report`` round trips.

New here: reports round-trip through the codec; the manifest parser, fed random documents and
mutations of a valid one, returns a ``Manifest`` or raises ``ManifestError`` and nothing else;
opening randomly mutated envelopes raises only ``ExchangeError`` or ``AuthError``. Settings are
bounded (≤ 200 examples, no deadline) so the module runs in seconds.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth.errors import AuthError, ManifestError
from auth.manifest import manifest_to_document, parse_manifest
from exchange.domain import Classification, Report, SiteType, make_facts
from exchange.errors import ExchangeError
from exchange.wire.codec import parse_report, report_from_proto, report_to_proto
from exchange.wire.envelope import Limits, open_envelope
from ihx.v1 import exchange_pb2 as xpb
from routing.canonical import canonicalize
from routing.errors import InvalidUrl
from tests.exchange.factories import (
    T0,
    make_decision,
    make_network,
    make_report,
    make_test_item,
    report_wire,
    seal_batch,
)

pytestmark = pytest.mark.timeout(60)

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- canonical URLs from hostile parts ----------------------------------------------------------

_hostile_text = st.sampled_from(
    [
        "",
        "%00",
        "\x00",
        "\r\n",
        "\t",
        " ",
        "%2e%2e/",
        "../",
        "./",
        "//",
        "\\",
        "@",
        ":",
        "#",
        "?",
        "%",
        "%zz",
        "%C3%A9",
        "é",
        "\u202e",
        "\ufeff",
        "\u0430",
        "ß",
        "ﬀ",
        "Ⅸ",
        "xn--",
        "xn--zz",
        "[",
        "]",
        "::",
        "0x7f",
        "0177",
        "4294967295",
        "%41",
        "\u3002",
        "．",
        "A",
    ]
)
_schemes = st.sampled_from(["http", "https", "ftp", "HTTP", "hTtPs"])
_hosts = st.sampled_from(
    [
        "example.com",
        "EXAMPLE.com",
        "exa\u0430mple.com",
        "faß.de",
        "xn--fa-hia.de",
        "127.0.0.1",
        "0x7f.1",
        "3232235777",
        "[::1]",
        "[::ffff:10.0.0.1]",
        "[64:ff9b::a00:1]",
        "example.com.",
        "ex%41mple.com",
        "例え.テスト",
        "a" * 63 + ".com",
        "münchen.de",
    ]
)


@st.composite
def hostile_urls(draw: st.DrawFn) -> str:
    parts = [
        draw(_schemes),
        draw(st.sampled_from(["://", ":/", ":\\\\", "://user:pw@"])),
        draw(_hosts),
        draw(st.sampled_from(["", ":80", ":443", ":21", ":0", ":65535", ":8080"])),
        "/",
        "".join(draw(st.lists(_hostile_text | st.text(max_size=4), max_size=6))),
        draw(st.sampled_from(["", "?", "?a=b", "?a=%zz&b"])),
        draw(st.sampled_from(["", "#", "#frag"])),
    ]
    return "".join(parts)


@BOUNDED
@given(hostile_urls())
def test_canonical_url_of_hostile_parts_is_idempotent(raw: str) -> None:
    try:
        first = canonicalize(raw)
    except InvalidUrl:
        return
    again = canonicalize(first.url)
    assert again.url == first.url
    assert again.url_key == first.url_key


# -- codec: whole reports ------------------------------------------------------------------------

_seeds = st.text(alphabet="abcdef0123456789", min_size=1, max_size=8)
_notes = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"),
        blacklist_characters="\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    ),
    max_size=200,
)


@st.composite
def reports(draw: st.DrawFn) -> Report:
    seeds = draw(st.lists(_seeds, min_size=1, max_size=5, unique=True))
    items = [
        make_test_item(s, classification=draw(st.sampled_from(list(Classification)))) for s in seeds
    ]
    facts = make_facts(
        draw(st.sampled_from(list(SiteType))),
        draw(st.booleans()),
        draw(st.lists(st.sampled_from(["visa", "bitcoin", "paypal"]), max_size=3, unique=True)),
        draw(_notes),
    )
    path = draw(st.text(alphabet="abcxyz09-_", max_size=20))
    return make_report(
        url=f"https://hosting-de.example/{path}",
        items=items,
        facts=facts,
        received_at=T0 + timedelta(microseconds=draw(st.integers(0, 10**12))),
    )


@BOUNDED
@given(reports())
def test_report_round_trips_through_the_codec(report: Report) -> None:
    decision = make_decision(report.decision_member)
    wire = report_to_proto(report, None, decision).SerializeToString(deterministic=True)
    assert report_from_proto(parse_report(wire)) == report


# -- the manifest parser -------------------------------------------------------------------------

_NETWORK = make_network()
_VALID_DOC = manifest_to_document(_NETWORK.manifest)

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


_ALL_PATHS = _paths(_VALID_DOC)[1:]


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(_VALID_DOC)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_ALL_PATHS))
        target = doc
        try:
            for key in path[:-1]:
                target = target[key]
            if draw(st.booleans()):
                target[path[-1]] = draw(_json | st.sampled_from(["XX", "EU", "nl", "", "\x00"]))
            elif isinstance(target, dict):
                target.pop(path[-1], None)
        except (KeyError, IndexError, TypeError):
            continue
    return doc


@BOUNDED
@given(_json | mutated_documents())
def test_manifest_parser_raises_only_manifest_errors(document: Any) -> None:
    problem = ""
    try:
        parsed = parse_manifest(document)
    except ManifestError as error:
        problem = error.message
    if problem:
        assert "\n" not in problem
        return
    # What parses is a manifest whose document form parses back to itself.
    assert parse_manifest(manifest_to_document(parsed)) == parsed


# -- opening mutated envelopes -------------------------------------------------------------------

_NOW = T0
_PAYLOADS = [report_wire(make_report(hashes=[f"fuzz-{i}"])) for i in range(3)]
_ENVELOPE = seal_batch(_PAYLOADS, signed_at=T0).to_proto().SerializeToString()
_LIMITS = Limits()


def _open(data: bytes) -> None:
    envelope = xpb.Envelope()
    envelope.ParseFromString(data)
    open_envelope(
        envelope, manifest=_NETWORK.manifest, self_member="de-eco", now=_NOW, limits=_LIMITS
    )


def test_the_unmutated_envelope_opens() -> None:
    _open(_ENVELOPE)


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> bytes:
    data = bytearray(_ENVELOPE)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


@BOUNDED
@given(mutated_envelopes())
def test_mutated_envelopes_raise_only_typed_errors(data: bytes) -> None:
    from google.protobuf.message import DecodeError

    try:
        _open(data)
    except (ExchangeError, AuthError, DecodeError):
        return
    # Opened: then it must be the original, byte for byte in everything signed or hashed.
    envelope = xpb.Envelope()
    envelope.ParseFromString(data)
    original = xpb.Envelope()
    original.ParseFromString(_ENVELOPE)
    assert envelope.header == original.header
    assert list(envelope.payloads) == list(original.payloads)


@BOUNDED
@given(st.binary(max_size=512))
def test_random_report_payloads_raise_only_typed_errors(data: bytes) -> None:
    try:
        report_from_proto(parse_report(data))
    except ExchangeError:
        return


def test_far_timestamps_in_a_report_are_typed_errors() -> None:
    msg = parse_report(_PAYLOADS[0])
    msg.received_at.seconds = 253402300800
    with pytest.raises(ExchangeError, match="range"):
        report_from_proto(msg)
    assert datetime(9999, 12, 31, tzinfo=UTC) > T0
