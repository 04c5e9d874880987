"""fetch.py against hostile answers on a real loopback HTTP server: a gzip bomb.

64 MiB of spaces compress to ~64 KiB; the fetch must refuse the answer past 256 KiB of
*decompressed* bytes without ever holding the whole of it (urllib3 >= 2.6 decompresses in
bounded steps; the chunked read stops at the limit).
"""

from __future__ import annotations

import http.server
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from auth.errors import IssuerUnavailable
from auth.tokens.fetch import MAX_DOCUMENT_BYTES, fetch_json

BOMB_MIB = 64


def _bomb() -> bytes:
    gzip = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b" " * (1024 * 1024)
    return b"".join([*(gzip.compress(chunk) for _ in range(BOMB_MIB)), gzip.flush()])


@pytest.fixture(scope="module")
def bomb_url() -> Iterator[str]:
    body = _bomb()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def test_a_gzip_bomb_is_refused_without_being_inflated(bomb_url: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(IssuerUnavailable, match=f"larger than {MAX_DOCUMENT_BYTES} bytes"):
            fetch_json(bomb_url, timeout=10.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # far below the 64 MiB it inflates to
