"""Takedown automation at the responsible node: re-checks, moves, notices, holds, scorecard."""
