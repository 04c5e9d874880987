"""A node runs its ``[auth] jwks`` issuers' key fetching from its start to its stop, not longer.

An issuer whose keys are fetched (``jwks_uri``, discovery) has a worker thread that wakes every
``jwks_cache_s`` to fetch them again. Before the node's stop closed it, the worker outlived the
node: it went on fetching from an IdP the process no longer served for, and logged each failure
(in the test suite, into whichever test ran at the time). The node is real (built from
provisioned settings, started, stopped); the IdP is a closed port on loopback.
"""

from __future__ import annotations

import threading
from pathlib import Path

from exchange.node import build_node
from tests.auth.token_factories import write_json
from tests.dbs import Databases
from tests.exchange.factories import one_member_settings
from tests.integration.support import wait_until

NL = "nl-eokm"
IDP = "https://idp.example"


def _fetchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"jwks {IDP}" and t.is_alive()]


def test_stopping_the_node_stops_its_issuers_key_fetching(
    tmp_path: Path, databases: Databases
) -> None:
    # Port 9 (discard) on loopback: nothing answers, each fetch fails at once.
    entry = {"iss": IDP, "algorithms": ["RS256"], "jwks_uri": "http://127.0.0.1:9/jwks.json"}
    issuers = write_json(tmp_path / "trusted-issuers.json", {"issuers": [entry]})
    settings = one_member_settings(tmp_path, databases, f'\n[auth]\njwks = "{issuers}"\n')
    before = set(_fetchers())
    node = build_node(settings)
    assert set(_fetchers()) == before  # built, not started: nothing runs yet
    node.start()
    try:
        wait_until(lambda: set(_fetchers()) - before, what="the issuer's key fetcher to start")
        (fetcher,) = set(_fetchers()) - before
    finally:
        node.stop(grace=0)
    assert not fetcher.is_alive()
