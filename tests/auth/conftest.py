"""Fixtures for the auth tests; the factories behind them live in ``tests.auth.factories``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from auth.manifest import Manifest
from tests.auth.factories import NetworkKit, make_manifest, make_network


@pytest.fixture
def network() -> NetworkKit:
    return make_network()


@pytest.fixture
def manifest(network: NetworkKit) -> Manifest:
    return network.manifest


@pytest.fixture
def manifest_factory() -> Callable[..., Manifest]:
    def factory(**kwargs: Any) -> Manifest:
        return make_manifest(**kwargs)

    return factory
