"""Misbehaving network and misbehaving peers, for the fault-injection bench (bench/faults.py).

``ChaosProxy`` is a TCP proxy that stands where the manifest says a peer is. It forwards to the
peer's real port and, on command, misbehaves the way networks and overloaded peers do:

* ``delay(s)``: every byte from the peer back to the client arrives ``s`` seconds late (a peer
  whose answers come after the sender's receipt deadline; the requests themselves arrive);
* ``reset(lo, hi)``: every connection is cut with a TCP RST after a random ``lo``–``hi`` bytes
  (streams broken mid-envelope, mid-receipt, mid-handshake);
* ``refuse()``: connections are accepted and reset at once (a peer that is down);
* ``target(port)``: from now on forward to another server (the hostile peer below).

Every change cuts the open connections, so the new behaviour starts at once. The proxy counts
the connections it was asked for: connection attempts to the peer, whatever the client does.

``HostilePeer`` is a gRPC server speaking the Exchange protocol that answers every envelope with
a receipt that must be refused — signed by the wrong key, for another batch, with a forged or
flipped signature, predated, postdated, malformed — rotating through eleven kinds.
``ResettingPeer`` relays to the real peer and resets the HTTP/2 stream at random moments.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import struct
import threading
import time
from collections import deque
from concurrent import futures
from datetime import timedelta
from typing import Any

import grpc

_CHUNK = 64 * 1024


def _rst(sock: socket.socket) -> None:
    """Close with a TCP RST rather than a FIN: what a crashed middlebox or peer looks like."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class ChaosProxy:
    def __init__(self, target_port: int, *, seed: int = 0) -> None:
        self._target = target_port
        self._mode = "pass"
        self._delay = 0.0
        self._reset = (0, 0)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self.accepted = 0
        self.accept_times: list[float] = []  # time.monotonic() of every connection
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, name="chaos-accept", daemon=True).start()

    # -- commands ----------------------------------------------------------------------------

    def passthrough(self) -> None:
        self._set("pass")

    def delay(self, seconds: float) -> None:
        self._set("delay", delay=seconds)

    def reset(self, lo: int, hi: int) -> None:
        self._set("reset", reset=(lo, hi))

    def refuse(self) -> None:
        self._set("refuse")

    def target(self, port: int) -> None:
        with self._lock:
            self._target = port
        self.cut()

    def cut(self) -> None:
        """Reset every open connection."""
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            _rst(s)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()

    def _set(self, mode: str, *, delay: float = 0.0, reset: tuple[int, int] = (0, 0)) -> None:
        with self._lock:
            self._mode, self._delay, self._reset = mode, delay, reset
        self.cut()

    # -- forwarding --------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self.accept_times.append(time.monotonic())
                mode, target = self._mode, self._target
                budget = self._rng.randint(*self._reset) if mode == "reset" else None
            if mode == "refuse":
                _rst(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", target), timeout=2)
                upstream.settimeout(None)
            except OSError:
                _rst(client)  # the peer is down: the client sees a reset connection
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.update((client, upstream))
            link = _Link(client, upstream, budget, self._delay if mode == "delay" else 0.0)
            threading.Thread(target=link.pump_up, name="chaos-up", daemon=True).start()
            threading.Thread(target=link.pump_down, name="chaos-down", daemon=True).start()


class _Link:
    """One proxied connection: client → peer (``up``) and peer → client (``down``)."""

    def __init__(
        self, client: socket.socket, upstream: socket.socket, budget: int | None, delay: float
    ) -> None:
        self.client, self.upstream = client, upstream
        self.budget = budget
        self.delay = delay
        self._lock = threading.Lock()
        self._dead = False

    def _spend(self, n: int) -> int:
        """How many of ``n`` bytes may pass before the connection is cut (all if no budget)."""
        with self._lock:
            if self.budget is None:
                return n
            allowed = min(n, self.budget)
            self.budget -= allowed
            return allowed

    def kill(self) -> None:
        with self._lock:
            if self._dead:
                return
            self._dead = True
        _rst(self.client)
        _rst(self.upstream)

    def pump_up(self) -> None:
        self._pump(self.client, self.upstream, delay=0.0)

    def pump_down(self) -> None:
        self._pump(self.upstream, self.client, delay=self.delay)

    def _pump(self, src: socket.socket, dst: socket.socket, *, delay: float) -> None:
        late: deque[tuple[float, bytes]] = deque()
        ready = threading.Condition()
        if delay:
            threading.Thread(
                target=self._deliver_late, args=(dst, late, ready), daemon=True
            ).start()
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                allowed = self._spend(len(data))
                if delay:
                    with ready:
                        late.append((time.monotonic() + delay, data[:allowed]))
                        ready.notify()
                elif allowed:
                    dst.sendall(data[:allowed])
                if allowed < len(data):
                    break
        except OSError:
            pass
        self.kill()
        with ready:
            late.append((0.0, b""))
            ready.notify()

    def _deliver_late(
        self, dst: socket.socket, late: deque[tuple[float, bytes]], ready: threading.Condition
    ) -> None:
        try:
            while True:
                with ready:
                    while not late:
                        ready.wait()
                    due, data = late.popleft()
                if not data:
                    return
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                dst.sendall(data)
        except OSError:
            self.kill()


# -- a peer answering with receipts that must be refused ---------------------------------------


def _serve(servicer: Any) -> tuple[grpc.Server, int]:
    """An Exchange servicer on a free port of 127.0.0.1, started."""
    from ihx.v1 import exchange_pb2_grpc as xgrpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    xgrpc.add_ExchangeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _faults() -> dict[str, Any]:
    """Receipt forgers: (header of the batch, the signing toolkit) → SignedReceipt."""
    from auth.keys import SigningKey
    from exchange.wire.codec import from_timestamp, timestamp
    from ihx.v1 import exchange_pb2 as xpb

    def body(h: Any, kit: Any, *, issuer: str | None = None, key: Any = None, **change: Any) -> Any:
        fields: dict[str, Any] = {
            "issuer": issuer or kit.issuer,
            "batch_sender": h.sender,
            "batch_sequence": h.sequence,
            "batch_root": h.merkle_root,
            "received_at": timestamp(from_timestamp(h.signed_at) + timedelta(milliseconds=5)),
            "outcomes": [
                xpb.PayloadOutcome(index=i, outcome=xpb.OUTCOME_NEW_CASE, case_id=f"c-{i:032d}")
                for i in range(h.count)
            ],
            "key_id": (key or kit.key).key_id,
        }
        fields.update(change)
        data = xpb.ReceiptBody(**fields).SerializeToString(deterministic=True)
        return xpb.SignedReceipt(body=data, signature=(key or kit.key).sign(data))

    def shifted(h: Any, days: int) -> Any:
        return timestamp(from_timestamp(h.signed_at) + timedelta(days=days))

    def flipped(r: Any) -> Any:
        r.signature = bytes([r.signature[0] ^ 1]) + r.signature[1:]
        return r

    def with_key_id(h: Any, kit: Any) -> Any:
        # A stranger's signature over a body naming the peer's own key id.
        stranger = SigningKey.generate()
        r = body(h, kit)
        r.signature = stranger.sign(r.body)
        return r

    return {
        "stranger-signature": with_key_id,
        "another-members-key": lambda h, kit: body(h, kit, key=kit.other_key),
        "flipped-signature": lambda h, kit: flipped(body(h, kit)),
        "other-sequence": lambda h, kit: body(h, kit, batch_sequence=h.sequence + 1),
        "other-root": lambda h, kit: body(h, kit, batch_root=bytes(32)),
        "other-issuer": lambda h, kit: body(h, kit, issuer=kit.other_member),
        "fewer-outcomes": lambda h, kit: body(h, kit, outcomes=[]),
        "predated-one-day": lambda h, kit: body(h, kit, received_at=shifted(h, -1)),
        "postdated-one-day": lambda h, kit: body(h, kit, received_at=shifted(h, 1)),
        "malformed-body": lambda h, kit: xpb.SignedReceipt(body=b"\xff\xff\x01", signature=b""),
        "empty": lambda h, kit: xpb.SignedReceipt(),
    }


class HostilePeer:
    """An Exchange server that receipts nothing validly; ``served`` counts receipts by fault."""

    def __init__(self, *, issuer: str, key: Any, other_member: str, other_key: Any) -> None:
        from ihx.v1 import exchange_pb2 as xpb
        from ihx.v1 import exchange_pb2_grpc as xgrpc

        self.issuer, self.key = issuer, key
        self.other_member, self.other_key = other_member, other_key
        faults = _faults()
        self.served: dict[str, int] = dict.fromkeys(faults, 0)
        rotation = itertools.cycle(sorted(faults))
        lock = threading.Lock()
        peer = self

        class Servicer(xgrpc.ExchangeServicer):  # type: ignore[misc]
            def Stream(self, requests: Any, context: Any) -> Any:  # noqa: N802
                for envelope in requests:
                    header = xpb.EnvelopeHeader()
                    header.ParseFromString(envelope.header)
                    with lock:
                        name = next(rotation)
                        peer.served[name] += 1
                    yield faults[name](header, peer)

        self._server, self.port = _serve(Servicer())

    def stop(self) -> None:
        self._server.stop(0.5).wait()


class ResettingPeer:
    """The real peer behind a gRPC relay that resets each stream (HTTP/2 RST_STREAM) at random.

    Every envelope goes on to the peer and is stored there; after a random 0–3 receipts (so
    sometimes after the peer stored a batch but before its receipt got through) the relay
    cancels the stream. ``resets`` counts them.
    """

    def __init__(self, target_port: int, *, seed: int = 0) -> None:
        from ihx.v1 import exchange_pb2_grpc as xgrpc

        rng = random.Random(seed)
        lock = threading.Lock()
        channel = grpc.insecure_channel(f"127.0.0.1:{target_port}")
        stub = xgrpc.ExchangeStub(channel)
        self.resets = 0
        relay = self

        class Servicer(xgrpc.ExchangeServicer):  # type: ignore[misc]
            def Stream(self, requests: Any, context: Any) -> Any:  # noqa: N802
                with lock:
                    budget = rng.randint(0, 3)
                upstream = stub.Stream(requests, timeout=60)
                try:
                    for i, receipt in enumerate(upstream):
                        if i >= budget:
                            with lock:
                                relay.resets += 1
                            context.cancel()
                            return
                        yield receipt
                finally:
                    upstream.cancel()

        self._channel = channel
        self._server, self.port = _serve(Servicer())

    def stop(self) -> None:
        self._server.stop(0.5).wait()
        self._channel.close()
