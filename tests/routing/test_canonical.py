"""Behaviour of the canonical URL: the form, the key, the flags and the refusals."""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import unicodedata
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing import idn
from routing.canonical import (
    MAX_URL_BYTES,
    CanonicalUrl,
    HostType,
    InvalidUrlCode,
    UrlFlag,
    canonicalize,
)
from routing.errors import InvalidUrl


def _refusal(raw: str, *, base: str | None = None) -> InvalidUrl:
    with pytest.raises(InvalidUrl) as excinfo:
        canonicalize(raw, base=base)
    return excinfo.value


# --- the canonical form -------------------------------------------------------------------------


def test_design_example() -> None:
    result = canonicalize("https://Example.NL:443/a/../b#x")

    assert result == CanonicalUrl(
        url="https://example.nl/b",
        url_key=hashlib.sha256(b"https://example.nl/b").digest(),
        scheme="https",
        host="example.nl",
        host_type=HostType.DOMAIN,
        port=None,
        flags=frozenset(
            {
                UrlFlag.HOST_LOWERCASED,
                UrlFlag.DEFAULT_PORT_DROPPED,
                UrlFlag.DOT_SEGMENTS_RESOLVED,
                UrlFlag.FRAGMENT_DROPPED,
            }
        ),
    )


def test_flags_are_the_documented_strings() -> None:
    result = canonicalize("https://Example.NL:443/a/../b#x")

    assert result.flags == {
        "host-lowercased",
        "default-port-dropped",
        "dot-segments-resolved",
        "fragment-dropped",
    }


def test_already_canonical_url_is_unchanged_and_unflagged() -> None:
    raw = "https://www.example.com/gallery/img.jpg?id=5&sort=desc"

    result = canonicalize(raw)

    assert result.url == raw
    assert result.flags == frozenset()
    assert (result.scheme, result.host, result.port) == ("https", "www.example.com", None)


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("http://example.com", "http://example.com/"),
        ("HTTP://example.com/", "http://example.com/"),
        ("http:example.com/x", "http://example.com/x"),
        ("http:\\\\example.com\\a\\b", "http://example.com/a/b"),
        ("ftp://files.example.org/pub/f.txt", "ftp://files.example.org/pub/f.txt"),
    ],
)
def test_whatwg_forms_of_the_same_url(raw: str, url: str) -> None:
    assert canonicalize(raw).url == url


def test_query_is_kept_exactly() -> None:
    result = canonicalize("http://example.com/p?b=2&a=1&a=1&x=%zz&y=%41")

    assert result.url == "http://example.com/p?b=2&a=1&a=1&x=%zz&y=%41"


def test_empty_query_is_kept_and_distinct_from_no_query() -> None:
    assert canonicalize("http://example.com/?").url == "http://example.com/?"
    assert canonicalize("http://example.com/").url == "http://example.com/"


def test_path_case_is_kept() -> None:
    assert canonicalize("http://EXAMPLE.com/Img/A.JPG").url == "http://example.com/Img/A.JPG"


def test_non_default_port_is_kept() -> None:
    result = canonicalize("https://example.com:8443/x")

    assert result.url == "https://example.com:8443/x"
    assert result.port == 8443
    assert UrlFlag.DEFAULT_PORT_DROPPED not in result.flags


def test_port_default_for_another_scheme_is_kept() -> None:
    result = canonicalize("https://example.com:80/")

    assert result.url == "https://example.com:80/"
    assert result.port == 80


def test_url_key_is_sha256_of_url() -> None:
    result = canonicalize("https://Example.com/a?q=1#frag")

    assert result.url_key == hashlib.sha256(result.url.encode()).digest()
    assert len(result.url_key) == 32


def test_same_url_written_differently_gives_same_key() -> None:
    keys = {
        canonicalize(raw).url_key
        for raw in (
            "https://example.com/a/b?q=1",
            "HTTPS://EXAMPLE.COM:443/a/./b?q=1#top",
            "  https://user:pw@example.com/a/x/../b?q=1\n",
            "https:\\\\example.com\\a\\b?q=1",
        )
    }

    assert len(keys) == 1


def test_different_query_gives_different_key() -> None:
    assert canonicalize("http://a.com/?q=1").url_key != canonicalize("http://a.com/?q=2").url_key


def test_relative_url_is_resolved_against_base() -> None:
    result = canonicalize("../c?x#y", base="http://example.com/a/b/d")

    assert result.url == "http://example.com/a/c?x"
    assert UrlFlag.DOT_SEGMENTS_RESOLVED in result.flags


def test_empty_input_with_base_is_the_base_without_fragment() -> None:
    assert canonicalize("", base="http://example.com/a#f").url == "http://example.com/a"


def test_absolute_url_ignores_base() -> None:
    assert canonicalize("http://b.com/x", base="https://a.com/").url == "http://b.com/x"


# --- flags --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "url", "flag"),
    [
        ("http://user:secret@example.com/", "http://example.com/", UrlFlag.USERINFO_DROPPED),
        ("http://user@example.com:8080/", "http://example.com:8080/", UrlFlag.USERINFO_DROPPED),
        ("http://@example.com/", "http://example.com/", UrlFlag.USERINFO_DROPPED),
        ("http://example.com/a#frag", "http://example.com/a", UrlFlag.FRAGMENT_DROPPED),
        ("http://example.com/a#", "http://example.com/a", UrlFlag.FRAGMENT_DROPPED),
        ("  http://example.com/ ", "http://example.com/", UrlFlag.WHITESPACE_TRIMMED),
        ("\x00\x1fhttp://example.com/\x7f", "http://example.com/%7F", UrlFlag.WHITESPACE_TRIMMED),
        ("http://exa\tmple.com/", "http://example.com/", UrlFlag.CONTROL_CHARS_REMOVED),
        ("http://example.com/a\r\nb", "http://example.com/ab", UrlFlag.CONTROL_CHARS_REMOVED),
        ("http://example.com:80/", "http://example.com/", UrlFlag.DEFAULT_PORT_DROPPED),
        ("https://example.com:443/", "https://example.com/", UrlFlag.DEFAULT_PORT_DROPPED),
        ("https://example.com:0443/", "https://example.com/", UrlFlag.DEFAULT_PORT_DROPPED),
        ("ftp://example.com:21/", "ftp://example.com/", UrlFlag.DEFAULT_PORT_DROPPED),
        ("http://example.com/a/./b", "http://example.com/a/b", UrlFlag.DOT_SEGMENTS_RESOLVED),
        ("http://example.com/a/../b", "http://example.com/b", UrlFlag.DOT_SEGMENTS_RESOLVED),
        ("http://example.com/a/%2e%2E/b", "http://example.com/b", UrlFlag.DOT_SEGMENTS_RESOLVED),
        ("http://example.com/a/b/..", "http://example.com/a/", UrlFlag.DOT_SEGMENTS_RESOLVED),
        ("http://example.com\\a\\..\\b", "http://example.com/b", UrlFlag.DOT_SEGMENTS_RESOLVED),
        ("http://3232235777/", "http://192.168.1.1/", UrlFlag.IPV4_NON_STANDARD),
        ("http://EXAMPLE.com/", "http://example.com/", UrlFlag.HOST_LOWERCASED),
        ("http://example.com/a b", "http://example.com/a%20b", UrlFlag.PERCENT_ENCODED),
        ("http://example.com/ä?q=ü", "http://example.com/%C3%A4?q=%C3%BC", UrlFlag.PERCENT_ENCODED),
        ("http://example.com/?q='x'", "http://example.com/?q=%27x%27", UrlFlag.PERCENT_ENCODED),
        ("http://faß.de/", "http://xn--fa-hia.de/", UrlFlag.IDN),
        ("http://xn--fa-hia.de/", "http://xn--fa-hia.de/", UrlFlag.IDN),
        ("http://ｅｘａｍｐｌｅ.com/", "http://example.com/", UrlFlag.IDN),
        ("http://аpple.com/", "http://xn--pple-43d.com/", UrlFlag.MIXED_SCRIPT_IDN),
    ],
)
def test_flag(raw: str, url: str, flag: UrlFlag) -> None:
    result = canonicalize(raw)

    assert result.url == url
    assert flag in result.flags


@pytest.mark.parametrize(
    ("raw", "flag"),
    [
        ("http://example.com/", UrlFlag.USERINFO_DROPPED),
        ("http://example.com/", UrlFlag.FRAGMENT_DROPPED),
        ("http://example.com/", UrlFlag.WHITESPACE_TRIMMED),
        ("http://example.com/", UrlFlag.CONTROL_CHARS_REMOVED),
        ("http://example.com:8080/", UrlFlag.DEFAULT_PORT_DROPPED),
        ("http://example.com/a/b.c/.d/..e", UrlFlag.DOT_SEGMENTS_RESOLVED),
        ("http://example.com/a?x=/../", UrlFlag.DOT_SEGMENTS_RESOLVED),
        ("http://192.168.1.1/", UrlFlag.IPV4_NON_STANDARD),
        ("http://example.com/A", UrlFlag.HOST_LOWERCASED),
        ("http://example.com/a%20b", UrlFlag.PERCENT_ENCODED),
        ("http://example.com/", UrlFlag.IDN),
        ("http://xn--fa-hia.de/", UrlFlag.MIXED_SCRIPT_IDN),
    ],
)
def test_flag_absent_when_nothing_to_normalise(raw: str, flag: UrlFlag) -> None:
    assert flag not in canonicalize(raw).flags


def test_flag_values_are_stable() -> None:
    assert {flag.value for flag in UrlFlag} == {
        "userinfo-dropped",
        "fragment-dropped",
        "whitespace-trimmed",
        "control-chars-removed",
        "default-port-dropped",
        "dot-segments-resolved",
        "ipv4-non-standard",
        "ipv4-mapped-ipv6",
        "ipv4-compatible-ipv6",
        "nat64-ipv6",
        "6to4-ipv6",
        "teredo-ipv6",
        "idn",
        "mixed-script-idn",
        "host-lowercased",
        "percent-encoded",
        "unicode-nfc",
    }


def test_nfc_and_nfd_forms_of_one_url_are_one_url() -> None:
    nfc = canonicalize("https://example.de/caf\u00e9/photo.jpg?t=\u00e9")
    nfd = canonicalize("https://example.de/cafe\u0301/photo.jpg?t=e\u0301")
    assert nfd.url == nfc.url == "https://example.de/caf%C3%A9/photo.jpg?t=%C3%A9"
    assert nfd.url_key == nfc.url_key
    assert UrlFlag.UNICODE_NFC in nfd.flags
    assert UrlFlag.UNICODE_NFC not in nfc.flags


# --- userinfo, control characters ---------------------------------------------------------------


def test_userinfo_never_reaches_the_canonical_url() -> None:
    result = canonicalize("https://alice:s3cret@example.com:8443/p?q#f")

    assert result.url == "https://example.com:8443/p?q"
    assert "alice" not in result.url
    assert "s3cret" not in result.url
    assert result.host == "example.com"


def test_encoded_at_sign_in_userinfo_is_dropped_with_it() -> None:
    assert canonicalize("http://a%40b:c@d@example.com/x@y").url == "http://example.com/x@y"


def test_nul_in_path_is_percent_encoded() -> None:
    result = canonicalize("http://example.com/a\x00b")

    assert result.url == "http://example.com/a%00b"
    assert UrlFlag.PERCENT_ENCODED in result.flags


def test_nul_in_host_is_refused() -> None:
    assert _refusal("http://exam\x00ple.com/").code == InvalidUrlCode.UNPARSEABLE


def test_tab_cr_lf_inside_are_removed_everywhere() -> None:
    result = canonicalize("ht\ttp://exa\nmple.com/p\ra?q\t=1")

    assert result.url == "http://example.com/pa?q=1"
    assert result.flags == {UrlFlag.CONTROL_CHARS_REMOVED}


def test_leading_and_trailing_controls_and_spaces_are_trimmed() -> None:
    result = canonicalize("\t \x01http://example.com/a \n")

    assert result.url == "http://example.com/a"
    assert result.flags == {UrlFlag.WHITESPACE_TRIMMED}


# --- IP hosts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("http://3232235777/", "192.168.1.1"),
        ("http://0xC0A80101/", "192.168.1.1"),
        ("http://0300.0250.1.1/", "192.168.1.1"),
        ("http://192.168.257/", "192.168.1.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://1.2.3.4./", "1.2.3.4"),
        ("http://%31%32%37.0.0.1/", "127.0.0.1"),
    ],
)
def test_ipv4_tricks_become_dotted_decimal(raw: str, host: str) -> None:
    result = canonicalize(raw)

    assert result.host == host
    assert result.host_type is HostType.IPV4
    assert result.url == f"http://{host}/"
    assert UrlFlag.IPV4_NON_STANDARD in result.flags


def test_dotted_ipv4_with_port() -> None:
    result = canonicalize("http://10.0.0.9:8080/x")

    assert (result.host, result.host_type, result.port) == ("10.0.0.9", HostType.IPV4, 8080)
    assert result.flags == frozenset()


def test_domain_ending_in_digit_is_not_ipv4() -> None:
    result = canonicalize("http://a.b1/")

    assert result.host_type is HostType.DOMAIN


@pytest.mark.parametrize(
    ("raw", "host", "flag"),
    [
        ("http://[::ffff:1.2.3.4]/", "::ffff:102:304", UrlFlag.IPV4_MAPPED_IPV6),
        ("http://[64:ff9b::1.2.3.4]/", "64:ff9b::102:304", UrlFlag.NAT64_IPV6),
        ("http://[64:ff9b:1::102:304]/", "64:ff9b:1::102:304", UrlFlag.NAT64_IPV6),
        ("http://[2002:102:304::1]/", "2002:102:304::1", UrlFlag.SIX_TO_FOUR_IPV6),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
         UrlFlag.TEREDO_IPV6),
        ("http://[::1.2.3.4]/", "::102:304", UrlFlag.IPV4_COMPATIBLE_IPV6),
    ],
)  # fmt: skip
def test_ipv6_embedding_ipv4_is_kept_and_flagged(raw: str, host: str, flag: UrlFlag) -> None:
    result = canonicalize(raw)

    assert result.host == host
    assert result.host_type is HostType.IPV6
    assert result.url == f"http://[{host}]/"
    assert flag in result.flags
    assert ipaddress.IPv6Address(result.host) == ipaddress.IPv6Address(raw[8:-2])


@pytest.mark.parametrize("raw", ["http://[2001:db8::1]/", "http://[::1]/", "http://[::]/"])
def test_plain_ipv6_has_no_embedding_flag(raw: str) -> None:
    assert canonicalize(raw).flags == frozenset()


def test_ipv6_host_is_compressed_lowercase_without_brackets() -> None:
    result = canonicalize("http://[2001:DB8:0:0:0:0:0:1]:8080/x")

    assert result.url == "http://[2001:db8::1]:8080/x"
    assert result.host == "2001:db8::1"
    assert result.port == 8080
    assert UrlFlag.HOST_LOWERCASED in result.flags


# --- internationalised hosts --------------------------------------------------------------------


def test_idn_uses_uts46_nontransitional_not_fass() -> None:
    result = canonicalize("http://faß.de/")

    assert result.host == "xn--fa-hia.de"
    assert result.host != "fass.de"
    assert result.url == "http://xn--fa-hia.de/"


def test_nfc_and_nfd_forms_of_one_host_are_the_same_url() -> None:
    nfc = unicodedata.normalize("NFC", "http://café.fr/menü")
    nfd = unicodedata.normalize("NFD", "http://café.fr/menü")
    assert nfc != nfd

    assert canonicalize(nfc).host == canonicalize(nfd).host == "xn--caf-dma.fr"


def test_unicode_and_punycode_forms_are_the_same_url() -> None:
    assert (
        canonicalize("http://BÜCHER.example/").url
        == canonicalize("http://xn--bcher-kva.example/").url
    )


@pytest.mark.parametrize(
    "raw",
    [
        "http://аpple.com/",  # Cyrillic а + Latin
        "http://xn--pple-43d.com/",  # the same, given as punycode
        "http://pаypal.com/",
        "http://gοogle.com/",  # Greek omicron
    ],
)
def test_homograph_is_flagged_and_kept_as_punycode(raw: str) -> None:
    result = canonicalize(raw)

    assert UrlFlag.MIXED_SCRIPT_IDN in result.flags
    assert UrlFlag.IDN in result.flags
    assert result.host.startswith("xn--")
    assert result.host.isascii()


@pytest.mark.parametrize(
    "raw",
    [
        "http://яндекс.рф/",  # one script
        "http://東京タワー.jp/",  # Han + Katakana: Japanese
        "http://中文abc.cn/",  # Han + Latin
        "http://한국어abc.kr/",  # Hangul + Latin
        "http://bücher-123.de/",  # Latin with digits and hyphen
    ],
)
def test_single_script_or_allowed_cjk_mix_is_not_flagged(raw: str) -> None:
    result = canonicalize(raw)

    assert UrlFlag.IDN in result.flags
    assert UrlFlag.MIXED_SCRIPT_IDN not in result.flags


def test_script_table_is_sorted_and_disjoint() -> None:
    ranges = idn._RANGES
    assert all(a[0] <= a[1] < b[0] for a, b in itertools.pairwise(ranges))


@pytest.mark.parametrize(
    ("label", "scripts"),
    [
        ("abc-123", {idn.LATIN}),
        ("аpple", {idn.LATIN, idn.CYRILLIC}),
        ("cafe\u0301", {idn.LATIN}),  # a combining mark is not a script of its own
        ("ไทยa", {"Thai", idn.LATIN}),  # outside the table: named after the letter's script
        ("123", set()),
    ],
)
def test_label_scripts(label: str, scripts: set[str]) -> None:
    assert idn.label_scripts(label) == scripts


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", InvalidUrlCode.EMPTY),
        ("   ", InvalidUrlCode.EMPTY),
        ("\t\r\n\x00", InvalidUrlCode.EMPTY),
        ("http://example.com/" + "a" * MAX_URL_BYTES, InvalidUrlCode.TOO_LONG),
        ("not a url", InvalidUrlCode.UNPARSEABLE),
        ("example.com/path", InvalidUrlCode.UNPARSEABLE),
        ("http://exa mple.com/", InvalidUrlCode.UNPARSEABLE),
        ("http://example.com:99999/", InvalidUrlCode.UNPARSEABLE),
        ("http://example.com:8o/", InvalidUrlCode.UNPARSEABLE),
        ("http://[::1/", InvalidUrlCode.UNPARSEABLE),
        ("http://999.1.1.1/", InvalidUrlCode.UNPARSEABLE),
        ("http://a<b.com/", InvalidUrlCode.UNPARSEABLE),
        ("javascript:alert(1)", InvalidUrlCode.SCHEME_NOT_ALLOWED),
        ("file:///etc/passwd", InvalidUrlCode.SCHEME_NOT_ALLOWED),
        ("http://", InvalidUrlCode.HOST_MISSING),
        ("https:///", InvalidUrlCode.HOST_MISSING),
        ("http://user:pw@/x", InvalidUrlCode.HOST_MISSING),
        ("http://:80/", InvalidUrlCode.HOST_MISSING),
        ("http://example.com/\ud800", InvalidUrlCode.NOT_TEXT),
        ("http://\udfff.com/", InvalidUrlCode.NOT_TEXT),
    ],
)
def test_refusal_code(raw: str, code: InvalidUrlCode) -> None:
    assert _refusal(raw).code == code


def test_error_code_values_are_stable() -> None:
    assert {code.value for code in InvalidUrlCode} == {
        "url-empty",
        "url-too-long",
        "url-unparseable",
        "scheme-not-allowed",
        "host-missing",
        "url-not-text",
    }


def test_non_string_is_not_text() -> None:
    assert _refusal(cast(str, b"http://example.com/")).code == InvalidUrlCode.NOT_TEXT


@pytest.mark.parametrize(
    ("raw", "scheme"),
    [
        ("javascript:alert(1)", "javascript"),
        ("JavaScript:alert(1)", "javascript"),
        ("file:///etc/passwd", "file"),
        ("data:text/html,<b>x</b>", "data"),
        ("mailto:someone@example.com", "mailto"),
        ("ws://example.com/", "ws"),
        ("wss://example.com/", "wss"),
        ("gopher://example.com/", "gopher"),
        ("blob:https://example.com/uuid", "blob"),
        ("ftps://example.com/", "ftps"),
        ("file://[/", "file"),  # refused for its scheme even though it does not parse
    ],
)
def test_scheme_not_allowed_names_the_scheme(raw: str, scheme: str) -> None:
    error = _refusal(raw)

    assert error.code == InvalidUrlCode.SCHEME_NOT_ALLOWED
    assert f"'{scheme}'" in error.message


def test_long_scheme_is_shortened_in_message() -> None:
    error = _refusal("x" * 500 + ":stuff")

    assert error.code == InvalidUrlCode.SCHEME_NOT_ALLOWED
    assert len(error.message) < 200


@pytest.mark.parametrize(
    "raw",
    [
        "http://MARKER.exa mple.com/",
        "http://MARKER.com:99999/",
        "http://MARKER:pw@/",
        "MARKER/relative",
        "http://MARKER.com/" + "x" * MAX_URL_BYTES,
        "http://MARKER.com/\ud800",
    ],
)
def test_refusal_message_is_one_sentence_and_does_not_echo_the_url(raw: str) -> None:
    message = _refusal(raw).message

    assert "MARKER" not in message
    assert "marker" not in message
    assert len(message) <= 120
    assert message.endswith(".")
    assert message.count(". ") == 0


def test_length_limit_is_in_utf8_bytes_and_inclusive() -> None:
    prefix = "http://example.com/"
    assert canonicalize(prefix + "a" * (MAX_URL_BYTES - len(prefix))).host == "example.com"
    assert _refusal(prefix + "a" * (MAX_URL_BYTES - len(prefix) + 1)).code == "url-too-long"
    # 2-byte characters: far fewer than 8192 characters, but more than 8192 bytes.
    too_many_bytes = prefix + "é" * (MAX_URL_BYTES // 2)
    assert len(too_many_bytes) < MAX_URL_BYTES
    assert _refusal(too_many_bytes).code == "url-too-long"


def test_too_long_message_names_size_and_limit() -> None:
    message = _refusal("http://a.com/" + "a" * 9000).message

    assert "9013" in message
    assert str(MAX_URL_BYTES) in message


def test_unparseable_base_is_refused() -> None:
    error = _refusal("x", base="not a url")

    assert error.code == InvalidUrlCode.UNPARSEABLE
    assert "base" in error.message


def test_base_with_surrogate_is_not_text() -> None:
    assert _refusal("x", base="http://a.com/\ud800").code == InvalidUrlCode.NOT_TEXT


def test_relative_url_against_disallowed_base_scheme_is_refused() -> None:
    assert _refusal("x", base="ws://example.com/").code == InvalidUrlCode.SCHEME_NOT_ALLOWED


# --- idempotence --------------------------------------------------------------------------------

_ASCII_LABEL = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
_IDN_LABEL = st.text(alphabet="abcßäöüéçñаеорсδλ中文한국あア", min_size=1, max_size=8)
_DOMAIN = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(st.one_of(_ASCII_LABEL, _IDN_LABEL), min_size=1, max_size=3),
    st.sampled_from(["com", "NL", "de", "рф", "中国", "org"]),
)
# Dotted, decimal and hex forms of one IPv4 address, drawn as one choice so domains stay common.
_IPV4 = st.builds(
    lambda number, form: form(number),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.sampled_from([lambda n: str(ipaddress.IPv4Address(n)), str, hex]),
)
_IPV6 = st.ip_addresses(v=6).map(lambda address: f"[{address}]")
_URL_TEXT = st.text(
    alphabet=st.sampled_from(list("aZ09-._~!$&'()*+,;=:@/%?# \"<>`{}|^\\äß中\t")),
    max_size=20,
)
_PATH = st.lists(
    st.one_of(st.sampled_from([".", "..", "%2e", "%2E%2e", ""]), _URL_TEXT), max_size=5
).map("/".join)


@st.composite
def _urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "ftp", "HTTP", "hTTps"]))
    userinfo = draw(st.sampled_from(["", "user@", "user:pass@", ":@", "a%40b:c@"]))
    host = draw(st.one_of(_DOMAIN, _IPV4, _IPV6))
    port = draw(st.sampled_from(["", ":80", ":443", ":21", ":8080", ":0", ":"]))
    path = draw(_PATH)
    query = draw(st.one_of(st.just(""), _URL_TEXT.map(lambda text: "?" + text)))
    fragment = draw(st.one_of(st.just(""), _URL_TEXT.map(lambda text: "#" + text)))
    return f"{scheme}://{userinfo}{host}{port}/{path}{query}{fragment}"


# Flags a canonical URL keeps: they describe the host, not a normalisation step.
_HOST_FLAGS = frozenset(
    {
        UrlFlag.IDN,
        UrlFlag.MIXED_SCRIPT_IDN,
        UrlFlag.IPV4_MAPPED_IPV6,
        UrlFlag.IPV4_COMPATIBLE_IPV6,
        UrlFlag.NAT64_IPV6,
        UrlFlag.SIX_TO_FOUR_IPV6,
        UrlFlag.TEREDO_IPV6,
    }
)


@settings(max_examples=500, deadline=None)
@given(_urls())
def test_canonicalisation_is_idempotent(raw: str) -> None:
    first = canonicalize(raw)
    second = canonicalize(first.url)

    assert second.url == first.url
    assert second.url_key == first.url_key
    assert (second.scheme, second.host, second.host_type, second.port) == (
        first.scheme,
        first.host,
        first.host_type,
        first.port,
    )
    assert second.flags <= _HOST_FLAGS
    assert "#" not in first.url
    assert first.url.isascii()
    assert "@" not in first.url.split("/")[2]
