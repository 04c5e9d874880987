"""``already_canonical`` against the parser it stands in for: whatever it accepts, the URL
Standard (ada_url) serialises unchanged — over the WHATWG suite's inputs, a seeded corpus of
tricky generated URLs and Hypothesis's. And it does accept the common forms (else it saves
nothing), and canonicalisation gives the same answers with it as without it."""

from __future__ import annotations

import random

import ada_url
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing import canonical
from routing.already_canonical import already_canonical
from tests.routing.test_whatwg_conformance import URL_CASES

# Characters a generated URL is made of: every printable ASCII character (the ones the standard
# encodes, drops or reads specially among them), a few controls, and non-ASCII.
TRICKY = [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\n", "\x00", "é", "ß", "\u0301", "例"]
PIECES = [".", "..", "%2e", "%2E", "%2F", "%41", "%", "%g1", "xn--", "-", "0x", "%7e", "%7E"]


def _plain(rng: random.Random, alphabet: str, most: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, most)))


def generated_url(rng: random.Random) -> str:
    """A URL near the fast path's edge: a plain one, half of them then changed at one or two
    places by a character or piece the standard treats specially."""
    scheme = rng.choice(["http", "https", "ftp", "https", "https", "HTTP", "ws", "file"])
    labels = [_plain(rng, "abcdefghijklmnopqrstuvwxyz0123456789-", 8) for _ in range(2)]
    last = rng.choice(["com", "nl", "x1", "com", "nl", "1", "0x1f", "a-", "Com", "xn--p1ai"])
    host = ".".join([*labels[: rng.randrange(0, 3)], last])
    host += rng.choice(["", "", "", "", "", ".", ":80", ":8080"])
    segments = [_plain(rng, "abcXYZ019-._~!$&'()*+,;=:@", 6) for _ in range(rng.randrange(4))]
    url = f"{scheme}://{host}/" + "/".join(segments)
    if rng.random() < 0.4:
        url += "?" + _plain(rng, "abc=&/?019-._~", 10)
    for _ in range(rng.choice([0, 0, 1, 2])):
        at = rng.randrange(len(url) + 1)
        piece = rng.choice(TRICKY + PIECES)
        url = url[:at] + piece + url[at + rng.choice([0, 0, 1]) :]
    return url


def parser_keeps(url: str) -> bool:
    try:
        return bool(ada_url.normalize_url(url) == url)
    except ValueError:
        return False


def test_every_whatwg_input_it_accepts_the_parser_keeps_as_it_is() -> None:
    accepted = [c["input"] for c in URL_CASES if already_canonical(c["input"])]

    assert accepted, "no WHATWG input took the fast path: the test would prove nothing"
    assert [url for url in accepted if not parser_keeps(url)] == []


def test_every_generated_url_it_accepts_the_parser_keeps_as_it_is() -> None:
    rng = random.Random(20261207)
    urls = [generated_url(rng) for _ in range(60_000)]
    accepted = [url for url in urls if already_canonical(url)]

    # Enough of both kinds near the edge, or the corpus no longer tests the edge.
    assert 0.1 < len(accepted) / len(urls) < 0.9
    assert [url for url in accepted if not parser_keeps(url)] == []


@settings(max_examples=3000, deadline=None)
@given(st.randoms(use_true_random=False))
def test_hypothesis_urls_it_accepts_the_parser_keeps_as_they_are(rng: random.Random) -> None:
    url = generated_url(rng)
    if already_canonical(url):
        assert parser_keeps(url), url


@given(st.lists(st.sampled_from(TRICKY + PIECES), max_size=20).map("".join))
@settings(max_examples=2000, deadline=None)
def test_any_path_and_query_text_it_accepts_the_parser_keeps(text: str) -> None:
    url = "https://host.example/" + text
    if already_canonical(url):
        assert parser_keeps(url), url


@pytest.mark.parametrize(
    "url",
    [
        "https://host1.example.nl/p1/p2/img7.jpg?id=7",
        "http://localhost/",
        "ftp://files.example.com/pub/a%20b.zip",
        "https://a-b.c-d.example/x_y~z/(1)/!$&'*+,;=:@/",
        "https://example.com/search?q=a/b?c&d=%41",
        "https://example.com/?",
        "https://example.com//double/slash",
    ],
)
def test_the_common_forms_take_the_fast_path(url: str) -> None:
    assert already_canonical(url)
    assert parser_keeps(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("HTTP://example.com/", "scheme lower-cased"),
        ("https://Example.com/", "host lower-cased"),
        ("https://example.com", "path added"),
        ("https://example.com:443/", "default port dropped"),
        ("https://example.com:8080/", "a port: left to the parser"),
        ("https://u:p@example.com/", "userinfo"),
        ("https://example.com/#top", "fragment"),
        ("https://example.com/a/./b", "dot segment"),
        ("https://example.com/a/%2e%2E/b", "encoded dot segment"),
        ("https://example.com/a/..", "dot segment at the end"),
        ("https://example.com/%zz", "a bad escape: left to the parser"),
        ("https://example.com/a\\b", "backslash read as slash"),
        ("https://example.com/a b", "space encoded"),
        ("https://example.com/a^b", "left to the parser"),
        ("https://example.com/?q='", "quote encoded in a special query"),
        ("https://example.com./", "trailing dot"),
        ("https://example.123/", "numeric last label: IPv4"),
        ("https://example.0x1f/", "hex last label: IPv4"),
        ("https://192.168.0.1/", "IPv4 literal"),
        ("https://xn--p1ai.example/", "punycode is checked"),
        ("https://bücher.example/", "IDN"),
        (" https://example.com/", "leading space trimmed"),
        ("https://example.com/\n", "newline removed"),
        ("wss://example.com/", "another scheme"),
    ],
)
def test_what_the_parser_must_decide_is_left_to_it(url: str, why: str) -> None:
    assert not already_canonical(url), why


def test_canonicalisation_is_the_same_with_and_without_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(7)
    urls = [generated_url(rng) for _ in range(5_000)] + [c["input"] for c in URL_CASES]

    def outcomes() -> list[object]:
        results: list[object] = []
        for url in urls:
            try:
                results.append(canonical.canonicalize(url))
            except canonical.InvalidUrl as error:
                results.append((error.code, str(error)))
        return results

    with_fast_path = outcomes()
    monkeypatch.setattr(canonical, "already_canonical", lambda url: False)
    assert outcomes() == with_fast_path
