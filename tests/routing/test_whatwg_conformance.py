"""The canonical URL against the WHATWG URL test suite (web-platform-tests data).

For every http, https and ftp case the canonical URL must be the expected ``href`` after the two
steps the canonical form adds to WHATWG: the fragment is dropped, and the userinfo (``username`` and
``password``) is dropped. Every ``failure`` case must be refused, and every case whose result has
another scheme must be refused with ``scheme-not-allowed``. ``toascii.json`` and ``IdnaTestV2.json``
check the host (UTS 46 through the URL parser).

Each test collects all mismatches and fails naming them; run with ``-s`` to see the counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from routing.canonical import CanonicalUrl, HostType, InvalidUrlCode, canonicalize
from routing.errors import InvalidUrl

DATA = Path(__file__).resolve().parent.parent / "data" / "whatwg-url"
ALLOWED_PROTOCOLS = frozenset({"http:", "https:", "ftp:"})
# Enough of the list to find the cases; the rest is only a count.
SHOWN_MISMATCHES = 50


def _load(name: str) -> list[dict[str, Any]]:
    """The test cases of a suite file; bare strings in it are comments."""
    with (DATA / name).open(encoding="utf-8") as file:
        entries = json.load(file)
    return [entry for entry in entries if isinstance(entry, dict)]


URL_CASES = _load("urltestdata.json")


def expected_canonical(case: dict[str, Any]) -> str:
    """The expected ``href`` with the fragment and the userinfo removed."""
    href: str = case["href"]
    # "#" and "@" are percent-encoded everywhere else in a serialised special URL, so the first
    # "#" starts the fragment and, when there is userinfo, the first "@" ends it.
    href = href.split("#", 1)[0]
    if case["username"] or case["password"]:
        head = case["protocol"] + "//"
        assert href.startswith(head)
        href = head + href[len(head) :].split("@", 1)[1]
    return href


def _try(raw: str, base: str | None = None) -> CanonicalUrl | InvalidUrl:
    try:
        return canonicalize(raw, base=base)
    except InvalidUrl as error:
        return error


def _report(name: str, passed: int, total: int, mismatches: list[str]) -> None:
    print(f"\n[whatwg] {name}: {passed}/{total}")
    shown = "\n".join(mismatches[:SHOWN_MISMATCHES])
    more = len(mismatches) - SHOWN_MISMATCHES
    assert not mismatches, f"{len(mismatches)} mismatches in {name}:\n{shown}" + (
        f"\n... and {more} more" if more > 0 else ""
    )


def test_expected_canonical_drops_fragment_and_userinfo() -> None:
    case = {
        "href": "https://u:p@example.com:8080/a@b?c@d#e@f",
        "protocol": "https:",
        "username": "u",
        "password": "p",
    }

    assert expected_canonical(case) == "https://example.com:8080/a@b?c@d"


def test_suite_has_cases_of_every_kind() -> None:
    # Guards against a truncated data file making the tests below pass vacuously.
    assert sum(1 for case in URL_CASES if case.get("failure")) > 200
    assert sum(1 for case in URL_CASES if case.get("protocol") in ALLOWED_PROTOCOLS) > 200


def test_http_https_ftp_cases_match_expected_href() -> None:
    cases = [
        case
        for case in URL_CASES
        if not case.get("failure") and case["protocol"] in ALLOWED_PROTOCOLS
    ]
    mismatches = []
    for case in cases:
        expected = expected_canonical(case)
        result = _try(case["input"], case["base"])
        if isinstance(result, InvalidUrl):
            got = f"InvalidUrl({result.code}: {result.message})"
        elif result.url != expected:
            got = result.url
        elif canonicalize(result.url).url != result.url:
            got = f"{result.url} (not idempotent)"
        else:
            continue
        mismatches.append(
            f"input={case['input']!r} base={case['base']!r}: expected {expected!r}, got {got}"
        )
    _report("http/https/ftp cases agree", len(cases) - len(mismatches), len(cases), mismatches)


def test_failure_cases_are_refused() -> None:
    cases = [case for case in URL_CASES if case.get("failure")]
    mismatches = [
        f"input={case['input']!r} base={case['base']!r}: accepted as {result.url!r}"
        for case in cases
        if isinstance(result := _try(case["input"], case["base"]), CanonicalUrl)
    ]
    _report("failure cases rejected", len(cases) - len(mismatches), len(cases), mismatches)


def test_other_scheme_cases_are_refused_for_their_scheme() -> None:
    cases = [
        case
        for case in URL_CASES
        if not case.get("failure") and case["protocol"] not in ALLOWED_PROTOCOLS
    ]
    mismatches = []
    for case in cases:
        result = _try(case["input"], case["base"])
        if isinstance(result, InvalidUrl) and result.code == InvalidUrlCode.SCHEME_NOT_ALLOWED:
            continue
        got = result.url if isinstance(result, CanonicalUrl) else result.code
        mismatches.append(
            f"input={case['input']!r} base={case['base']!r} ({case['protocol']}): got {got}"
        )
    _report("other-scheme cases refused", len(cases) - len(mismatches), len(cases), mismatches)


def _host_mismatches(cases: list[dict[str, Any]]) -> list[str]:
    """Cases whose ``http://{input}/x`` host differs from ``output`` (None: must be refused)."""
    mismatches = []
    for case in cases:
        result = _try(f"http://{case['input']}/x")
        if isinstance(result, InvalidUrl):
            got = None
        elif result.host_type is HostType.IPV6:
            got = f"[{result.host}]"
        else:
            got = result.host
        if got != case["output"]:
            mismatches.append(f"input={case['input']!r}: expected {case['output']!r}, got {got!r}")
    return mismatches


def test_toascii_hosts() -> None:
    cases = _load("toascii.json")
    mismatches = _host_mismatches(cases)
    _report("toascii hosts agree", len(cases) - len(mismatches), len(cases), mismatches)


def test_idna_v2_hosts() -> None:
    # The empty input cannot be a host here: "http:///x" is read by WHATWG as host "x".
    cases = [case for case in _load("IdnaTestV2.json") if case["input"]]
    mismatches = _host_mismatches(cases)
    _report("IdnaTestV2 hosts agree", len(cases) - len(mismatches), len(cases), mismatches)
