"""``ihx match --pdq``: an analyst's query against the node's own PDQ sightings, with the
submit command's answer naming near-known content."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from exchange.cli.main import app
from exchange.domain import (
    Classification,
    ContentHash,
    HashAlgorithm,
    Submission,
    make_facts,
    make_item,
)
from tests.exchange.cli.conftest import Running

SEEN = "3c" * 32


def _near(bits: int) -> str:
    value = int(SEEN, 16)
    for i in range(bits):
        value ^= 1 << (13 * i % 256)
    return f"{value:064x}"


def test_match_lists_sightings_within_the_distance(federation: Running) -> None:
    item = make_item([ContentHash(HashAlgorithm.PDQ, SEEN, 90)], Classification.BASELINE)
    with federation.intake("nl-eokm") as client:
        client.submit(Submission("https://example.nl/p.jpg", make_facts(), (item,)))
    runner = CliRunner()
    config = str(federation.config("nl-eokm"))
    result = runner.invoke(app, ["match", "--pdq", _near(25), "--config", config, "--json"])
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["max_distance"] == 31
    assert [(n["hex"], n["distance"], n["member"]) for n in doc["near"]] == [(SEEN, 25, "nl-eokm")]
    narrow = ["match", "--pdq", _near(25), "--config", config, "--max-distance", "24", "--json"]
    assert json.loads(runner.invoke(app, narrow).stdout)["near"] == []
    refused = runner.invoke(app, ["match", "--pdq", "zz", "--config", config])
    assert refused.exit_code != 0
    assert "pdq hash has 64 hex digits" in refused.stdout + refused.stderr
