"""Hostile exchange streams, for the overload tests: idle, send-once-never-read, slow-drip.

Each kind keeps its streams open — every stream the node ends is opened again after ``reopen``
seconds — until ``close()``; the attack is real gRPC (and, for the drip, real HTTP/2 framing by
hand) over loopback, spread over many TCP connections as an attacker would:

* ``IdleStreams``: ``Exchange.Stream`` calls that never send a message (no signature is ever
  checked);
* ``SendOnceStreams``: calls that send one real, validly signed envelope and then never send nor
  read again (the strongest form: the stream passes verification);
* ``SlowDrip``: raw HTTP/2 connections that open a stream and trickle the bytes of a gRPC message
  one at a time, so the message is never complete.

``outcomes`` counts how each gRPC stream ended (status code names).
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc

from ihx.v1 import exchange_pb2 as xpb

STREAM = "/ihx.v1.Exchange/Stream"


def _channel(address: str) -> grpc.Channel:
    # Each channel its own TCP connection, as separate attackers would have.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


class _GrpcStreams:
    """``count`` streams over ``connections`` connections, each reopened when the node ends it."""

    def __init__(self, address: str, *, count: int, connections: int, reopen: float = 0.2) -> None:
        self._channels = [_channel(address) for _ in range(connections)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reopen = reopen
        self._calls: dict[int, Any] = {}
        self.outcomes: Counter[str] = Counter()
        self.opened = 0
        self._due: list[tuple[float, int]] = []
        for i in range(count):
            self._open(i)
        self._thread = threading.Thread(target=self._reopener, daemon=True)
        self._thread.start()

    def requests(self) -> Iterator[Any]:
        raise NotImplementedError

    def _open(self, slot: int) -> None:
        channel = self._channels[slot % len(self._channels)]
        method = channel.stream_stream(
            STREAM,
            request_serializer=xpb.Envelope.SerializeToString,
            response_deserializer=xpb.SignedReceipt.FromString,
        )
        call: Any = method(self.requests(), timeout=120)
        with self._lock:
            self._calls[slot] = call
            self.opened += 1
        call.add_done_callback(lambda c: self._ended(slot, c))

    def _ended(self, slot: int, call: Any) -> None:
        with self._lock:
            self.outcomes[call.code().name] += 1
            if not self._stop.is_set():
                self._due.append((time.monotonic() + self._reopen, slot))

    def _reopener(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            with self._lock:
                ready = [slot for at, slot in self._due if at <= now]
                self._due = [(at, slot) for at, slot in self._due if at > now]
            for slot in ready:
                if self._stop.is_set():
                    return
                try:
                    self._open(slot)
                except Exception:  # the channel is closing: the test is over
                    return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            calls = list(self._calls.values())
        for call in calls:
            call.cancel()
        for channel in self._channels:
            channel.close()


class IdleStreams(_GrpcStreams):
    def requests(self) -> Iterator[Any]:
        self._stop.wait()
        return
        yield


class SendOnceStreams(_GrpcStreams):
    def __init__(self, address: str, envelope: xpb.Envelope, **kwargs: Any) -> None:
        self._envelope = envelope
        super().__init__(address, **kwargs)

    def requests(self) -> Iterator[Any]:
        yield self._envelope
        self._stop.wait()


# -- HTTP/2 by hand -------------------------------------------------------------------------------

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _SETTINGS = 0x0, 0x1, 0x4
_END_HEADERS, _ACK = 0x4, 0x1


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def _literal(name: str, value: str) -> bytes:
    """An HPACK literal header field without indexing, new name, no Huffman coding."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127
    assert len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


class SlowDrip:
    """``count`` HTTP/2 connections, each with one stream trickling an incomplete gRPC message.

    The message claims 1,000 bytes and one byte is sent per connection every ``interval``
    seconds. When the node ends a stream (first-envelope deadline, eviction), the connection
    opens a new one on the next odd stream id; a connection the node closed is dialled again.
    """

    def __init__(self, address: str, *, count: int, interval: float = 0.2) -> None:
        host, _, port = address.rpartition(":")
        self._target = (host, int(port))
        self._authority = address
        self._interval = interval
        self._stop = threading.Event()
        self.streams_opened = 0
        self.reconnects = 0
        self._conns: list[list[Any]] = [self._connect() for _ in range(count)]
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _connect(self) -> list[Any]:
        sock = socket.create_connection(self._target, timeout=5)
        sock.sendall(_PREFACE + _frame(_SETTINGS, 0, 0, b""))
        sock.recv(65536)  # the server's SETTINGS
        sock.sendall(_frame(_SETTINGS, _ACK, 0, b""))
        sock.setblocking(False)
        conn: list[Any] = [sock, itertools.count(1, 2), 0, 0]  # socket, ids, stream, sent
        self._new_stream(conn)
        return conn

    def _new_stream(self, conn: list[Any]) -> None:
        stream = next(conn[1])
        block = b"".join(
            _literal(k, v)
            for k, v in (
                (":method", "POST"),
                (":scheme", "http"),
                (":path", STREAM),
                (":authority", self._authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            )
        )
        conn[0].sendall(_frame(_HEADERS, _END_HEADERS, stream, block))
        prefix = b"\x00" + struct.pack(">I", 1000)  # uncompressed, 1,000 bytes: never all sent
        conn[0].sendall(_frame(_DATA, 0, stream, prefix))
        conn[2], conn[3] = stream, 0
        self.streams_opened += 1

    def _drip(self) -> None:
        while not self._stop.wait(self._interval):
            for i, conn in enumerate(self._conns):
                if self._stop.is_set():
                    return
                try:
                    self._step(conn)
                except OSError:
                    try:
                        conn[0].close()
                        self._conns[i] = self._connect()
                        self.reconnects += 1
                    except OSError:
                        pass

    def _step(self, conn: list[Any]) -> None:
        sock = conn[0]
        try:
            incoming = sock.recv(65536)
        except BlockingIOError:
            incoming = None
        if incoming == b"":
            raise OSError("closed by the node")
        # A RST_STREAM (type 3) for our stream, or nothing heard for long: start a new stream.
        if (incoming and _reset(incoming, conn[2])) or conn[3] >= 900:
            self._new_stream(conn)
            return
        sock.sendall(_frame(_DATA, 0, conn[2], b"x"))
        conn[3] += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn[0].close()


def _reset(data: bytes, stream: int) -> bool:
    """Whether ``data`` (whole frames, as read) holds a RST_STREAM or trailers for ``stream``."""
    at = 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        kind = data[at + 3]
        sid = int.from_bytes(data[at + 5 : at + 9], "big") & 0x7FFFFFFF
        if sid == stream and kind in (0x1, 0x3):  # trailers-only HEADERS, or RST_STREAM
            return True
        at += 9 + length
    return False


# -- the attack in a process of its own ---------------------------------------------------------


def _attack(
    address: str,
    envelope: bytes,
    counts: tuple[int, int, int],
    started: Any,
    stop: Any,
    results: Any,
) -> None:
    idle_n, once_n, drip_n = counts
    idle = IdleStreams(address, count=idle_n, connections=max(1, idle_n // 8))
    once = SendOnceStreams(
        address, xpb.Envelope.FromString(envelope), count=once_n, connections=max(1, once_n // 5)
    )
    drip = SlowDrip(address, count=drip_n)
    started.set()
    stop.wait(120)
    for attack in (idle, once, drip):
        attack.close()
    results.put(
        {
            "idle": (idle.opened, dict(idle.outcomes)),
            "send-once": (once.opened, dict(once.outcomes)),
            "slow-drip": (drip.streams_opened, {"reconnects": drip.reconnects}),
        }
    )


class Attack:
    """The three kinds at once, from a child process: the attacker does not share our GIL.

    In one process the attacker's hundreds of threads and the nodes under test would compete
    for one interpreter lock, which measures Python, not the node. ``report`` (after ``stop``)
    says how many streams of each kind were opened and how they ended, seen from the attacker.
    """

    def __init__(self, address: str, envelope: xpb.Envelope, *, idle: int, once: int, drip: int):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._started, self._stop, self._results = ctx.Event(), ctx.Event(), ctx.Queue()
        self._process = ctx.Process(
            target=_attack,
            args=(
                address,
                envelope.SerializeToString(),
                (idle, once, drip),
                self._started,
                self._stop,
                self._results,
            ),
            daemon=True,
        )
        self._process.start()
        if not self._started.wait(60):
            self._process.kill()
            raise RuntimeError("the attacking process did not start its streams")
        self.report: dict[str, Any] = {}

    def stop(self) -> None:
        self._stop.set()
        try:
            self.report = self._results.get(timeout=30)
        finally:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
