"""The pydantic-settings loader keeps the node's own words for what pydantic reports."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from exchange.errors import ConfigError
from exchange.settings import LIMITS, ExchangeTuning, settings_from_mapping
from tests.exchange.test_settings import GOOD


def message(env: dict[str, str] | None = None, **sections: dict[str, Any]) -> str:
    data = copy.deepcopy(GOOD)
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, base=Path("/srv/ihx"), env=env or {})
    return info.value.message


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("keys", "signing_key", 5, "settings: keys.signing_key must be str, not int"),
        ("tls", "cert", 5, "settings: tls.cert must be str, not int"),
        ("resolver", "kind", 5, "settings: resolver.kind must be str, not int"),
        ("exchange", "window", 0, "settings: exchange.window must be from 1 to 64"),
        ("exchange", "window", "8", "settings: exchange.window must be int, not str"),
        ("log", "checkpoint_every", 1.5, "settings: log.checkpoint_every must be int, not float"),
        ("partners", "rules", "x", "settings: partners.rules must be list, not str"),
        ("geoip", "city_db", "x", "settings: unknown setting geoip.city_db"),
    ],
)
def test_messages_in_the_nodes_words(section: str, key: str, value: object, expected: str) -> None:
    assert message(**{section: {key: value}}) == expected


def test_a_missing_section_names_its_first_required_key() -> None:
    data = copy.deepcopy(GOOD)
    del data["node"]
    with pytest.raises(ConfigError, match=r"node\.listen is required \(or set IHX_NODE_LISTEN\)"):
        settings_from_mapping(data, base=Path("/srv"), env={})


def test_only_upper_case_known_variables_override() -> None:
    env = {"ihx_node_member": "lower", "IHX_SOURCE": "x", "IHX_LOG_EVERY": "5"}
    s = settings_from_mapping(copy.deepcopy(GOOD), base=Path("/srv"), env=env)
    assert s.member == "nl-eokm"
    assert s.source is None
    assert s.checkpoint_every == 1000


def test_env_list_that_is_empty_is_refused_by_the_field() -> None:
    assert "manifest.trusted_keys must list" in message(env={"IHX_MANIFEST_TRUSTED_KEYS": " , "})


def test_limits_are_read_from_the_declarations() -> None:
    assert set(LIMITS) == set(ExchangeTuning.__dataclass_fields__)
    assert LIMITS["window"] == (1, 64)
    assert LIMITS["max_message_bytes"] == (256 * 1024, 64 * 1024 * 1024)
