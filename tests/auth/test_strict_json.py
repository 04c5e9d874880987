"""Strict JSON: duplicates and NaN/Infinity are refused with what was refused."""

from __future__ import annotations

import pytest

from auth.strict_json import StrictJsonError, loads


def test_plain_json_parses() -> None:
    assert loads(b'{"a": [1, 2.5, "x"], "b": {"c": null}}') == {
        "a": [1, 2.5, "x"],
        "b": {"c": None},
    }


def test_duplicate_member_is_refused_at_any_depth() -> None:
    with pytest.raises(StrictJsonError) as refused:
        loads('{"outer": {"k": 1, "k": 2}}')
    assert (refused.value.problem, refused.value.name) == ("duplicate", "k")
    assert str(refused.value) == 'duplicate key "k"'


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constants_are_refused(constant: str) -> None:
    with pytest.raises(StrictJsonError) as refused:
        loads(f'{{"x": {constant}}}')
    assert refused.value.problem == "constant"
