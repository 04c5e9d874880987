"""Fetching an identity provider's JSON (OIDC discovery, JWKS): bounded, strict, https only.

An IdP is outside the network, and its answer decides whose tokens a node accepts, so the
fetch trusts nothing: https only (plain http only on loopback, for tests and a sidecar), no
redirects (a 3xx could point anywhere, http included), no retries (the caller's refresh limit
decides when to try again), a connect and read timeout, and at most ``MAX_DOCUMENT_BYTES`` read
— a bigger answer is refused, never buffered. The body is strict JSON (``jose.parse_json``: no
duplicate members, no NaN). urllib3 (already the takedown checks' client) does the HTTP;
verification of the server certificate is on, with the system's CA bundle.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError

from auth.errors import IssuerUnavailable, TrustConfigError
from auth.tokens.jose import parse_json

__all__ = ["MAX_DOCUMENT_BYTES", "fetch_json", "url_problem"]

MAX_DOCUMENT_BYTES: Final = 256 * 1024
_USER_AGENT: Final = "ihx-node (token keys)"
_POOL: Final = urllib3.PoolManager(num_pools=16, retries=False, headers={"User-Agent": _USER_AGENT})


def url_problem(url: object) -> str | None:
    """Why ``url`` may not be fetched for keys (not https, and not http on loopback), or None."""
    if not isinstance(url, str) or not url:
        return "must be a non-empty URL string"
    parts = urlsplit(url)
    if not parts.hostname:
        return "must be an absolute https URL"
    if parts.username or parts.password:
        return "must not carry credentials"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _loopback(parts.hostname):
        return None
    return "must be https (plain http only on loopback)"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_json(url: str, *, timeout: float) -> Any:
    """The JSON document at ``url``; IssuerUnavailable (naming the URL) for any failure."""
    if (problem := url_problem(url)) is not None:
        raise TrustConfigError(f"{url!r}: {problem}")
    try:
        response = _POOL.request(
            "GET",
            url,
            redirect=False,
            preload_content=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            headers={"Accept": "application/json"},
        )
    except HTTPError as error:
        raise IssuerUnavailable(f"{url}: {type(error).__name__}: {_reason(error)}") from None
    try:
        if response.status != 200:
            raise IssuerUnavailable(f"{url}: answered HTTP {response.status}")
        body = response.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
    except HTTPError as error:
        raise IssuerUnavailable(f"{url}: {type(error).__name__}: {_reason(error)}") from None
    finally:
        response.release_conn()
    if len(body) > MAX_DOCUMENT_BYTES:
        raise IssuerUnavailable(f"{url}: answer larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return parse_json(body)
    except (ValueError, RecursionError):
        raise IssuerUnavailable(f"{url}: the answer is not JSON") from None


def _reason(error: HTTPError) -> str:
    # urllib3 nests the socket error; its text names the host and what failed, never a secret.
    text = str(getattr(error, "reason", None) or error)
    return text if len(text) <= 200 else text[:199] + "…"
