"""free_port: its starting point comes from the random source it is given, not from import."""

from __future__ import annotations

import random
import subprocess
import sys

CODE = """
import random
from exchange.tools import provision
print(provision.free_port(random.Random(7)), provision.free_port())
"""


def test_the_first_port_starts_where_the_given_random_source_says() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    first, second = (int(p) for p in out.stdout.split())
    start = 20000 + random.Random(7).randrange(32700 - 20000)
    # The port at the drawn start (or the next free one) and then onward from there.
    assert start <= first < start + 50
    assert first < second < first + 50
