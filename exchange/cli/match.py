"""``ihx match --pdq HEX``: an analyst asks which sightings in the network are near a PDQ hash.

Opens the node's database as every command does (``open_local``), loads the PDQ index from its
file (or rebuilds it from the sightings, as the node does at start; the file is not written),
and prints the sightings of hashes within ``--max-distance`` (default ``[pdq] max_distance``),
nearest first, the hash itself (exact known content) included at distance 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.common import out, print_json
from exchange.domain import HashAlgorithm, NearSighting, parse_hash
from exchange.local import open_local
from exchange.pdq.index import MAX_DISTANCE
from exchange.settings import load_settings


def register(app: typer.Typer) -> None:
    app.command("match")(match_command)


def match_command(
    pdq: Annotated[str, typer.Option("--pdq", metavar="HEX", help="A PDQ hash, 64 hex digits.")],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The node's settings file (node.toml).")
    ],
    max_distance: Annotated[
        int | None,
        typer.Option(
            "--max-distance",
            min=0,
            max=MAX_DISTANCE,
            help="Hamming distance, inclusive (default: [pdq] max_distance).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Sightings of PDQ hashes near HEX in the network, nearest first."""
    wanted = parse_hash(HashAlgorithm.PDQ.value, pdq, where="--pdq")
    asked = wanted.hex
    with open_local(load_settings(config)) as local:
        matcher = local.pdq_matcher()
        matcher.open()
        radius = matcher.max_distance if max_distance is None else max_distance
        # the analyst's own hash is taken at the threshold's quality: it is being asked about
        ((near, _),) = matcher.match(
            [parse_hash("pdq", asked, quality=matcher.min_quality)], radius, include_exact=True
        )
    if as_json:
        print_json({"pdq": asked, "max_distance": radius, "near": [_doc(n) for n in near]})
        return
    console = out()
    if not near:
        console.print(f"no sighting within {radius} of {asked}")
    for n in near:
        s = n.sighting
        console.print(
            f"{n.distance:>2}  {n.hex}  first seen {s.first_seen.isoformat()} by {s.member} "
            f"in case {s.case_id} ({s.classification.value})"
        )


def _doc(n: NearSighting) -> dict[str, object]:
    s = n.sighting
    return {
        "hex": n.hex,
        "distance": n.distance,
        "member": s.member,
        "case_id": s.case_id,
        "classification": s.classification.value,
        "first_seen": s.first_seen.isoformat(),
        "report_id": s.report_id,
    }
