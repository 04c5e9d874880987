"""A node runs its ``[auth] jwks`` issuers' key fetching from its start to its stop, not longer.

An issuer whose keys are fetched (``jwks_uri``, discovery) has a worker thread that wakes every
``jwks_cache_s`` to fetch them again. Before the node's stop closed it, the worker outlived the
node: it went on fetching from an IdP the process no longer served for, and logged each failure
(in the test suite, into whichever test ran at the time). The node is real (built from
provisioned settings, started, stopped); the IdP is a closed port on loopback.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from exchange.node import build_node
from exchange.tools.provision import MemberPlan, provision_federation
from tests.auth.token_factories import write_json
from tests.dbs import Databases
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
    fed = provision_federation(
        tmp_path / "fed",
        [MemberPlan(NL, "EOKM", ("NL",))],
        coordinator=NL,
        now=datetime.now(UTC),
        orphan_rules={},
        country_networks={"185.107.56.0/22": "NL"},
        asn_networks={},
        static_hosts={},
        extra_settings=f'\n[auth]\njwks = "{issuers}"\n',
        database_url=databases.for_members(),
    )
    before = set(_fetchers())
    node = build_node(fed.settings[NL])
    assert set(_fetchers()) == before  # built, not started: nothing runs yet
    node.start()
    try:
        wait_until(lambda: set(_fetchers()) - before, what="the issuer's key fetcher to start")
        (fetcher,) = set(_fetchers()) - before
    finally:
        node.stop(grace=0)
    assert not fetcher.is_alive()
