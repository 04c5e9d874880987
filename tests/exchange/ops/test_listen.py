"""``check_bindable``: every address a host resolves to is probed, and a listen address written
ambiguously is refused as written (real sockets on loopback; only the name's answers are fake).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from exchange.errors import ListenError
from exchange.ops.listen import check_bindable


@pytest.fixture
def held_v4() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listening socket; ::1 at that port is free."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _v6_then_v4(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
    """A name whose answers are ::1 first, then 127.0.0.1 (as many systems' ``localhost``)."""
    stream = socket.SOCK_STREAM
    return [
        (socket.AF_INET6, stream, 6, "", ("::1", port, 0, 0)),
        (socket.AF_INET, stream, 6, "", ("127.0.0.1", port)),
    ]


def test_every_address_of_a_name_is_probed_not_only_the_first(held_v4: int) -> None:
    with pytest.raises(ListenError) as caught:
        check_bindable(f"both.test:{held_v4}", resolve=_v6_then_v4)
    assert caught.value.message == f"cannot listen on both.test:{held_v4}: address already in use"
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    check_bindable(f"both.test:{port}", resolve=_v6_then_v4)  # both free: no error


@pytest.mark.parametrize(
    ("listen", "why"),
    [
        (":7799", "no host (0.0.0.0:7799 or [::]:7799 for every address"),
        ("::1:7799", "an IPv6 address is written in brackets, [::1]:7799"),
        ("fe80::1:7799", "an IPv6 address is written in brackets, [fe80::1]:7799"),
        ("[127.0.0.1]:7799", "brackets hold an IPv6 address only"),
        ("[::1:7799", "brackets hold an IPv6 address only"),
        ("[]:7799", "brackets hold an IPv6 address only"),
        ("[::]:65536", "not host:port"),
    ],
)
def test_an_ambiguous_address_is_refused_as_written(listen: str, why: str) -> None:
    def resolve(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        raise AssertionError("resolved")  # refused before anything is looked up

    with pytest.raises(ListenError) as caught:
        check_bindable(listen, resolve=resolve)
    assert caught.value.message.startswith(f"cannot listen on {listen}: {why}")


def test_a_bracketed_ipv6_address_is_probed() -> None:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ListenError, match="address already in use"):
            check_bindable(f"[::1]:{port}")
