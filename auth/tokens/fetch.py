"""Fetching an identity provider's JSON (OIDC discovery, JWKS): bounded, strict, https only.

An IdP is outside the network, and its answer decides whose tokens a node accepts, so the
fetch trusts nothing: https only (plain http only on loopback, for tests and a sidecar), no
redirects (a 3xx could point anywhere, http included), no retries (the caller's refresh limit
decides when to try again), one deadline for the whole request — name lookup, connect and every
byte (read in chunks, the time checked after each, so a server that drips its answer a byte at a
time is cut off) — and at most ``MAX_DOCUMENT_BYTES`` read: a bigger answer is refused, never
buffered (decompressed size counts). The body is strict JSON (``jose.parse_json``: no
duplicate members, no NaN). urllib3 (already the takedown checks' client) does the HTTP;
verification of the server certificate is on, with the system's CA bundle.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
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
    """The JSON document at ``url``; IssuerUnavailable (naming the URL) for any failure or when
    the whole exchange takes longer than ``timeout`` seconds."""
    if (problem := url_problem(url)) is not None:
        raise TrustConfigError(f"{url!r}: {problem}")
    deadline = time.monotonic() + timeout
    _resolve_within(url, timeout)
    try:
        response = _POOL.request(
            "GET",
            url,
            redirect=False,
            preload_content=False,
            timeout=urllib3.Timeout(connect=_left(deadline, url), read=_left(deadline, url)),
            headers={"Accept": "application/json"},
        )
    except HTTPError as error:
        raise IssuerUnavailable(f"{url}: {type(error).__name__}: {_reason(error)}") from None
    try:
        if response.status != 200:
            raise IssuerUnavailable(f"{url}: answered HTTP {response.status}")
        body = _read_bounded(response, url, deadline)
    except HTTPError as error:
        raise IssuerUnavailable(f"{url}: {type(error).__name__}: {_reason(error)}") from None
    finally:
        response.release_conn()
    try:
        return parse_json(body)
    except (ValueError, RecursionError):
        raise IssuerUnavailable(f"{url}: the answer is not JSON") from None


def _read_bounded(response: urllib3.BaseHTTPResponse, url: str, deadline: float) -> bytes:
    """The body, decoded, in chunks as they arrive: refused past the size or the deadline."""
    chunks: list[bytes] = []
    size = 0
    while True:
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if isinstance(sock, socket.socket):
            sock.settimeout(_left(deadline, url))  # a silent server is cut at the deadline too
        chunk = response.read1(64 * 1024, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise IssuerUnavailable(f"{url}: answer larger than {MAX_DOCUMENT_BYTES} bytes")
        chunks.append(chunk)
        _left(deadline, url)


def _left(deadline: float, url: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise IssuerUnavailable(f"{url}: no complete answer within the deadline")
    return left


# The name lookup cannot be given a timeout; it runs on a small pool and is waited for within
# the deadline (a lookup that hangs then holds a pool thread, never the caller).
_RESOLVER: Final = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jwks-dns")


def _resolve_within(url: str, timeout: float) -> None:
    host = urlsplit(url).hostname
    if host is None or _loopback(host):
        return
    try:
        _RESOLVER.submit(socket.getaddrinfo, host, None).result(timeout=timeout)
    except FutureTimeout:
        raise IssuerUnavailable(f"{url}: name lookup took longer than {timeout:g} s") from None
    except OSError as error:
        raise IssuerUnavailable(f"{url}: name lookup failed: {error}") from None


def _reason(error: HTTPError) -> str:
    # urllib3 nests the socket error; its text names the host and what failed, never a secret.
    text = str(getattr(error, "reason", None) or error)
    return text if len(text) <= 200 else text[:199] + "…"
