"""The hostile-input corpus: one table of attacks against running nodes, each with its answer.

Every case sends something hostile to a node of the test federation over real gRPC (or runs the
``ihx`` CLI) and names exactly what must come back: a gRPC status and the stable error code that
starts its details, a rejection reason inside a signed receipt, a routing decision, exit
status 2 with one ``ihx: error:`` line, or (``ihx import``) one ``line N: skipped:`` line for the
bad record. Around every case the row counts of every table of every node are compared (after
the federation has gone quiet): a refusal changes nothing, a payload rejected inside a receipt
adds only the inbox row and the log entry that record the rejection, a stream refused at a bad
message (or an import with a bad line) adds exactly what the valid messages (lines) before or
beside it add, and a case that is accepted by design (IP-literal tricks, homographs) says what
it adds. After
every case the attacked node must still accept a valid submission (intake) or envelope
(exchange).

Attackers: de-eco (a real member, holding its real key) talking to us-ncmec's Exchange service;
anybody talking to nl-eokm's Intake with or without a token; an analyst running ``ihx submit``
or ``ihx import`` against it; a coordinator's clerk running ``ihx network`` on a manifest
document. The module ends by printing how many cases ran and how
many were refused correctly.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import socket
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from auth.keys import SigningKey
from auth.manifest import MemberKey, add_key, bump_epoch, revoke_key
from exchange.cli.main import app
from exchange.domain import HashAlgorithm
from exchange.wire.codec import submission_to_proto
from exchange.wire.envelope import KIND_ANNOUNCEMENT, KIND_REPORT, Sealed, seal
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc
from ihx.v1 import report_pb2 as pb
from tests.auth.token_factories import b64url, compact, hmac_token, sign
from tests.exchange.factories import (
    content_hash,
    length_delimited,
    make_submission,
    table_counts,
    url_in,
)
from tests.integration.support import COORDINATOR, DE, NL, US, Cluster, provision, wait_until

pytestmark = pytest.mark.timeout(120)

MEMBERS = (NL, DE, US, COORDINATOR)
L = 2**252 + 27742317777372353535851937790883648493  # order of the Ed25519 base point
IDENTITY = bytes([1]) + bytes(31)  # the neutral point: a public key that "verifies" anything
OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
# Tables whose rows a case may never change; these are left out only because a background job
# writes them on its own timer from rows the counts already cover: the checkpointer signs a
# checkpoint when earlier cases grew the log, and the statistics folder rolls the log and the
# items up (``stats_*`` are derived, so a hostile write shows in the tables they are folded from).
IGNORED_TABLES = frozenset({"checkpoints", "stats_counts", "stats_items", "stats_marks"})


# -- the federation, the attacker's tools -------------------------------------------------------


class Ctx:
    """The running federation, de-eco's hand-driven side of a link to us-ncmec, and helpers."""

    def __init__(self, cluster: Cluster, root: Path) -> None:
        self.cluster = cluster
        self.root = root
        self.us = grpc.insecure_channel(cluster.address(US))
        self.nl = grpc.insecure_channel(cluster.address(NL))
        self.exchange = xgrpc.ExchangeStub(self.us)
        self.intake = igrpc.IntakeStub(self.nl)
        self.key = cluster.fed.keys[DE]
        self.sequences = itertools.count(5_000_000)
        self.serial = itertools.count()
        self.token = cluster.fed.token(NL)
        self.runner = CliRunner()
        self.extra_key: SigningKey | None = None
        self.manifest_file: Path | None = None

    def close(self) -> None:
        self.us.close()
        self.nl.close()

    def reconnect(self) -> None:
        self.us.close()
        self.us = grpc.insecure_channel(self.cluster.address(US))
        self.exchange = xgrpc.ExchangeStub(self.us)

    # payloads and envelopes (de-eco → us-ncmec)
    def payloads(self, n: int = 1) -> list[bytes]:
        intake = self.cluster.node(DE).intake
        out = []
        for _ in range(n):
            i = next(self.serial)
            sub = make_submission(url_in("US", f"/corpus/{i}.jpg"), hashes=[f"corpus-{i}"])
            out.append(intake.prepare(sub).wire)
        return out

    def epoch(self) -> int:
        return int(self.exchange.GetNodeInfo(xpb.NodeInfoRequest(), timeout=5).manifest_epoch)

    def header(self, payloads: list[bytes], **changes: Any) -> xpb.EnvelopeHeader:
        from auth import merkle

        fields: dict[str, Any] = {
            "sender": DE,
            "recipient": US,
            "sequence": next(self.sequences),
            "count": len(payloads),
            "merkle_root": merkle.root(payloads),
            "kind": KIND_REPORT,
            "key_id": self.key.key_id,
            "manifest_epoch": self.epoch(),
        }
        fields.update(changes)
        header = xpb.EnvelopeHeader(**fields)
        header.signed_at.FromDatetime(datetime.now(UTC))
        return header

    def seal(
        self,
        payloads: list[bytes] | None = None,
        *,
        key: SigningKey | None = None,
        sender: str = DE,
        recipient: str = US,
        sequence: int | None = None,
        signed_at: datetime | None = None,
    ) -> Sealed:
        return seal(
            key or self.key,
            sender=sender,
            recipient=recipient,
            sequence=sequence if sequence is not None else next(self.sequences),
            kind=KIND_REPORT,
            payloads=payloads if payloads is not None else self.payloads(),
            signed_at=signed_at or datetime.now(UTC),
            manifest_epoch=self.epoch(),
        )

    def signed_raw_header(
        self, header_bytes: bytes, payloads: list[bytes], key: SigningKey | None = None
    ) -> xpb.Envelope:
        """An envelope whose header is exactly ``header_bytes``, validly signed by de-eco."""
        signer = key or self.key
        return xpb.Envelope(
            header=header_bytes, signature=signer.sign(header_bytes), payloads=payloads
        )

    # calls
    def raw(
        self, channel: grpc.Channel, method: str, data: bytes, token: str | None = None
    ) -> Answer:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        try:
            call(data, timeout=20, metadata=metadata)
        except grpc.RpcError as error:
            return _answer(error)
        return Answer(OK, "")

    def raw_stream(
        self, channel: grpc.Channel, method: str, messages: list[bytes], token: str | None = None
    ) -> Answer:
        """Raw messages on one request stream; ``response`` holds every answer that came back."""
        call = channel.stream_stream(method, request_serializer=None, response_deserializer=None)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        answers: list[bytes] = []
        try:
            for message in call(iter(messages), timeout=20, metadata=metadata):
                answers.append(message)
        except grpc.RpcError as error:
            refused = _answer(error)
            refused.response = answers
            return refused
        return Answer(OK, "", response=answers)

    def deliver(self, envelope: xpb.Envelope | Sealed) -> Answer:
        env = envelope.to_proto() if isinstance(envelope, Sealed) else envelope
        try:
            receipt = self.exchange.Deliver(env, timeout=20)
        except grpc.RpcError as error:
            return _answer(error)
        return _receipt_answer(receipt)

    def submit(self, request: ipb.SubmitReportRequest, token: str | None = "default") -> Answer:
        the_token = self.token if token == "default" else token
        metadata = (("authorization", f"Bearer {the_token}"),) if the_token else ()
        try:
            response = self.intake.SubmitReport(request, timeout=20, metadata=metadata)
        except grpc.RpcError as error:
            return _answer(error)
        return Answer(OK, "accepted", response=response)

    def cli(self, *args: str) -> Answer:
        result = self.runner.invoke(app, list(args))
        return Answer(
            None,
            result.stderr.strip(),
            response=result.stdout,
            exit_code=result.exit_code,
            stderr=result.stderr,
        )

    # liveness
    def setup_liveness(self) -> None:
        """One valid envelope and one valid submission, accepted now and replayed after each case.

        A replay goes the whole way (decode, verify, the writer's look-up) and must get the same
        answer — the stored receipt byte for byte, the same report id — without adding a row,
        so the store comparison of the next case stays exact.
        """
        self.alive_envelope = self.seal(self.payloads(1)).to_proto()
        self.alive_receipt = self.exchange.Deliver(self.alive_envelope, timeout=20)
        self.alive_request = submission_to_proto(
            make_submission(url_in("NL", "/alive.jpg"), hashes=["alive"])
        )
        answer = self.submit(self.alive_request)
        assert answer.code is OK, answer
        self.alive_report = answer.response.report_id

    def still_serves(self, target: str) -> None:
        if target == US:
            receipt = self.exchange.Deliver(self.alive_envelope, timeout=20)
            assert receipt.SerializeToString() == self.alive_receipt.SerializeToString()
        else:
            answer = self.submit(self.alive_request)
            assert answer.code is OK, answer
            assert (answer.response.report_id, answer.response.duplicate) == (
                self.alive_report,
                True,
            )

    def accepts_new(self) -> None:
        """A fresh valid envelope and a fresh valid submission are both stored."""
        answer = self.deliver(self.seal())
        assert (answer.code, answer.detail) == (OK, "new-case"), answer
        i = next(self.serial)
        request = submission_to_proto(
            make_submission(url_in("NL", f"/alive/{i}.jpg"), hashes=[f"alive-{i}"])
        )
        answer = self.submit(request)
        assert answer.code is OK, answer
        assert not answer.response.duplicate

    def announced(self, member: str) -> bool:
        """Every hash announcement of ``member`` receipted by every other member."""
        top = self.cluster.scalar(member, "SELECT coalesce(max(seq), 0) FROM announcements")
        for peer in MEMBERS:
            if peer == member:
                continue
            done = self.cluster.scalar(
                member,
                "SELECT coalesce(max(last_announcement), 0) FROM batches WHERE destination = :p"
                " AND kind = 'announcement' AND receipted_at IS NOT NULL",
                p=peer,
            )
            if done < top:
                return False
        return True

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            m: {
                t: n
                for t, n in table_counts(self.cluster.engine(m)).items()
                if t not in IGNORED_TABLES
            }
            for m in MEMBERS
        }

    def quiet(self) -> dict[str, dict[str, int]]:
        """The row counts once nothing is left to deliver or announce anywhere."""
        wait_until(
            lambda: all(self.cluster.drained(m) and self.announced(m) for m in MEMBERS),
            30,
            what="every outbox drained and every announcement receipted",
            show=lambda: {m: self.cluster.delivery_state(m) for m in MEMBERS},
        )
        return self.counts()


@dataclass
class Answer:
    code: grpc.StatusCode | None
    detail: str
    response: Any = None
    exit_code: int | None = None
    stderr: str = ""
    receipt: xpb.ReceiptBody | None = None


def _answer(error: grpc.RpcError) -> Answer:
    call: Any = error
    return Answer(call.code(), call.details() or "")


def _receipt_answer(receipt: xpb.SignedReceipt) -> Answer:
    body = xpb.ReceiptBody()
    body.ParseFromString(receipt.body)
    first = body.outcomes[0]
    name = xpb.Outcome.Name(first.outcome)
    detail = (
        first.reason
        if first.outcome == xpb.OUTCOME_REJECTED
        else {
            "OUTCOME_NEW_CASE": "new-case",
            "OUTCOME_MERGED": "merged",
        }.get(name, name)
    )
    return Answer(OK, detail, response=receipt.body, receipt=body)


# -- the table ---------------------------------------------------------------------------------

Delta = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Case:
    """One hostile input and exactly what must come back.

    ``code``/``detail``: the gRPC status and the start of its details (or, with ``code=OK``, of
    the first receipt outcome / accepted answer); ``code=None`` with ``exit_code`` for the CLI.
    ``delta``: the row-count changes allowed per member and table (empty: nothing at all).
    ``prepare`` runs before the store is snapshotted; ``check`` inspects the answer further.
    """

    name: str
    category: str
    target: str
    run: Callable[[Ctx], Answer]
    code: grpc.StatusCode | None
    detail: str
    exit_code: int | None = None
    delta: Delta = field(default_factory=dict)
    prepare: Callable[[Ctx], None] | None = None
    check: Callable[[Ctx, Answer], None] | None = None


CASES: list[Case] = []


def case(
    name: str, category: str, target: str, code: grpc.StatusCode | None, detail: str, **kw: Any
) -> Callable[[Callable[[Ctx], Answer]], Callable[[Ctx], Answer]]:
    def register(run: Callable[[Ctx], Answer]) -> Callable[[Ctx], Answer]:
        CASES.append(Case(name, category, target, run, code, detail, **kw))
        return run

    return register


def add(
    name: str,
    category: str,
    target: str,
    run: Callable[[Ctx], Answer],
    code: grpc.StatusCode | None,
    detail: str,
    **kw: Any,
) -> None:
    CASES.append(Case(name, category, target, run, code, detail, **kw))


DELIVER = "/ihx.v1.Exchange/Deliver"
SUBMIT = "/ihx.v1.Intake/SubmitReport"
STREAM = "/ihx.v1.Exchange/Stream"
SUBMIT_MANY = "/ihx.v1.Intake/SubmitReports"
REJECTED_IN_RECEIPT: Delta = {US: {"inbox": 1, "routing_log": 1}}


def _valid_envelope_bytes(ctx: Ctx) -> bytes:
    return ctx.seal().to_proto().SerializeToString()


# 1. truncated and malformed protobuf, wrong wire types, lying lengths (raw bytes) -------------

for _name, _data in {
    "garbage": lambda c: b"\xff\xff\xff\xff",
    "lone-tag": lambda c: b"\x0a",
    "varint-overlong": lambda c: b"\x18" + b"\xff" * 11,
    "group-start-unterminated": lambda c: b"\x0b\x08\x01",
    "end-group-tag-alone": lambda c: b"\x0c",
    "field-number-zero": lambda c: b"\x02\x00",
    "length-prefix-claims-2gib": lambda c: b"\x1a\x80\x80\x80\x80\x08abc",
    "length-prefix-past-end": lambda c: b"\x1a\x10short",
    "truncated-valid-envelope": lambda c: _valid_envelope_bytes(c)[:-1],
    "truncated-mid-header": lambda c: _valid_envelope_bytes(c)[:20],
}.items():
    add(
        f"protobuf-{_name}",
        "malformed protobuf",
        US,
        lambda c, d=_data: c.raw(c.us, DELIVER, d(c)),
        INVALID,
        "request-malformed",
    )

add(
    "protobuf-intake-garbage",
    "malformed protobuf",
    NL,
    lambda c: c.raw(c.nl, SUBMIT, b"\xff\xfe\xfd", c.token),
    INVALID,
    "request-malformed",
)
# A SubmitReportRequest whose notes (field 5) are the CESU-8 of U+D800: a lone surrogate is not
# UTF-8, so not a proto3 string, so not a valid message.
LONE_SURROGATE_REQUEST = b"\x0a\x1ahttps://hosting-nl.example/\x2a\x03\xed\xa0\x80"
add(
    "protobuf-intake-invalid-utf8-lone-surrogate",
    "notes",
    NL,
    lambda c: c.raw(c.nl, SUBMIT, LONE_SURROGATE_REQUEST, c.token),
    INVALID,
    "request-malformed",
)
add(
    "wire-type-varint-for-payloads",
    "wrong wire type",
    US,
    # payloads (field 3, bytes) sent as a varint: protobuf keeps it as an unknown field.
    lambda c: c.raw(c.us, DELIVER, b"\x18\x01"),
    INVALID,
    "unknown-field",
)


# Request streams are decoded message by message: a message that is not valid protobuf ends the
# stream with INVALID_ARGUMENT and nothing of it is stored; every message before it is answered
# (and stored) in order, as on any stream that ends early.


def _streamed(
    c: Ctx, channel: grpc.Channel, method: str, messages: list[bytes], answered: int
) -> Answer:
    answer = c.raw_stream(channel, method, messages, c.token if channel is c.nl else None)
    assert len(answer.response) == answered, (answer.code, answer.detail, answer.response)
    return answer


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _chunk_of(*reports: bytes) -> bytes:
    """A SubmitReportsRequest carrying ``reports`` as they are, valid or not."""
    return b"".join(b"\x0a" + _varint(len(r)) + r for r in reports)


def _valid_request(c: Ctx) -> bytes:
    i = next(c.serial)
    sub = make_submission(url_in("NL", f"/stream/{i}.jpg"), hashes=[f"stream-{i}"])
    return submission_to_proto(sub).SerializeToString()


add(
    "stream-exchange-garbage-first",
    "malformed protobuf",
    US,
    lambda c: _streamed(c, c.us, STREAM, [b"\xff\xff\xff\xff"], answered=0),
    INVALID,
    "request-malformed: message 1 of the stream",
)
add(
    "stream-exchange-truncated-envelope-first",
    "malformed protobuf",
    US,
    lambda c: _streamed(c, c.us, STREAM, [_valid_envelope_bytes(c)[:-1]], answered=0),
    INVALID,
    "request-malformed: message 1 of the stream",
)


def _one_new_report(at: str, **rows: int) -> Delta:
    """What one new report with one new hash adds at ``at`` once the federation is quiet.

    ``at`` stores the report, its item and hash, opens a case (its item's lifecycle state with
    it), logs it, and announces the hash
    to the three other members (one announcement, one batch each); every other member records
    the announcement batch in its inbox and the hash in its index.
    """
    stored = {
        "reports": 1,
        "items": 1,
        "item_hashes": 1,
        "cases": 1,
        "case_reports": 1,
        "item_states": 1,
    }
    announced = {"hash_index": 1, "announcements": 1, "batches": 3}
    others = {m: {"inbox": 1, "hash_index": 1} for m in MEMBERS if m != at}
    return {at: {**stored, **announced, **rows}, **others}


# us-ncmec also keeps the envelope in its inbox; two log entries.
STREAMED_ONE = _one_new_report(US, inbox=1, routing_log=2)


@case(
    "stream-exchange-truncated-after-a-valid-envelope",
    "malformed protobuf",
    US,
    INVALID,
    "request-malformed: message 2 of the stream",
    delta=STREAMED_ONE,
)
def _stream_after_valid(c: Ctx) -> Answer:
    valid = c.seal().to_proto()
    answer = _streamed(
        c, c.us, STREAM, [valid.SerializeToString(), _valid_envelope_bytes(c)[:-1]], answered=1
    )
    receipt = xpb.SignedReceipt.FromString(answer.response[0])
    assert _receipt_answer(receipt).detail == "new-case"
    # Stored and receipted: delivered again, the envelope gets that receipt back byte for byte.
    assert c.exchange.Deliver(valid, timeout=20).SerializeToString() == answer.response[0]
    return answer


add(
    "stream-intake-garbage",
    "malformed protobuf",
    NL,
    lambda c: _streamed(c, c.nl, SUBMIT_MANY, [b"\xff\xfe\xfd"], answered=0),
    INVALID,
    "request-malformed: message 1 of the stream",
)
add(
    # One chunk is one message: a report in it that is not valid protobuf spoils the chunk, so
    # the valid report beside it is not stored either.
    "stream-intake-chunk-with-one-invalid-utf8-report",
    "notes",
    NL,
    lambda c: _streamed(
        c, c.nl, SUBMIT_MANY, [_chunk_of(_valid_request(c), LONE_SURROGATE_REQUEST)], answered=0
    ),
    INVALID,
    "request-malformed: message 1 of the stream",
)

# A local report at nl-eokm: no inbox row (it came through intake); three log entries.
SUBMITTED_ONE = _one_new_report(NL, routing_log=3)


@case(
    "stream-intake-invalid-utf8-chunk-after-a-valid-chunk",
    "notes",
    NL,
    INVALID,
    "request-malformed: message 2 of the stream",
    delta=SUBMITTED_ONE,
)
def _intake_after_valid(c: Ctx) -> Answer:
    valid = _valid_request(c)
    messages = [_chunk_of(valid), _chunk_of(LONE_SURROGATE_REQUEST)]
    answer = _streamed(c, c.nl, SUBMIT_MANY, messages, answered=1)
    (result,) = ipb.SubmitReportsResponse.FromString(answer.response[0]).results
    assert result.report_id, result
    assert (result.error_code, result.duplicate) == ("", False), result
    again = c.submit(ipb.SubmitReportRequest.FromString(valid))
    assert (again.response.report_id, again.response.duplicate) == (result.report_id, True)
    return answer


add(
    # Access control comes first: without a token the stream is refused before it is read.
    "stream-intake-garbage-without-token",
    "malformed protobuf",
    NL,
    lambda c: c.raw_stream(c.nl, SUBMIT_MANY, [b"\xff\xfe\xfd"]),
    grpc.StatusCode.UNAUTHENTICATED,
    "token-missing",
)


@case("wire-type-varint-sender-in-signed-header", "wrong wire type", US, INVALID, "unknown-field")
def _wrong_wire_in_header(c: Ctx) -> Answer:
    payloads = c.payloads()
    header = c.header(payloads, sender="").SerializeToString(deterministic=True)
    return c.deliver(c.signed_raw_header(b"\x08\x05" + header, payloads))


@case(
    "payload-not-a-report",
    "malformed protobuf",
    US,
    OK,
    "report-malformed",
    delta=REJECTED_IN_RECEIPT,
)
def _payload_garbage(c: Ctx) -> Answer:
    return c.deliver(c.seal([b"\xff\xff\xff"]))


@case(
    "payload-lying-length-prefix",
    "lying length",
    US,
    OK,
    "report-malformed",
    delta=REJECTED_IN_RECEIPT,
)
def _payload_lying(c: Ctx) -> Answer:
    wire = c.payloads()[0]
    # Field 2 (url) claims 120 bytes where the original length is smaller: the parse runs off.
    i = wire.index(b"\x12")
    return c.deliver(c.seal([wire[: i + 1] + b"\x78" + wire[i + 2 :]]))


@case(
    "payload-invalid-utf8-url",
    "malformed protobuf",
    US,
    OK,
    "report-malformed",
    delta=REJECTED_IN_RECEIPT,
)
def _payload_utf8(c: Ctx) -> Answer:
    report = pb.Report()
    report.ParseFromString(c.payloads()[0])
    wire = report.SerializeToString()
    url = report.url.encode()
    bad = url[:-1] + b"\xed"
    return c.deliver(c.seal([wire.replace(url, bad)]))


# 2. sizes and counts ---------------------------------------------------------------------------

add(
    "message-over-the-grpc-limit",
    "size limit",
    US,
    lambda c: c.raw(c.us, DELIVER, b"\x1a\x80\x80\x80\x09" + b"\x00" * (17 * 1024 * 1024)),
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    "",
)
add(
    "payload-over-the-size-limit",
    "size limit",
    US,
    lambda c: c.deliver(c.seal([b"\x0a" * (64 * 1024 + 1)])),
    INVALID,
    "payload-too-large",
)
add(
    "batch-over-the-count-limit",
    "count limit",
    US,
    lambda c: c.deliver(c.seal(c.payloads(1) * 1001)),
    INVALID,
    "envelope-too-many",
)
add("batch-empty", "count limit", US, lambda c: c.deliver(c.seal([])), INVALID, "envelope-empty")


@case("intake-chunk-over-the-count-limit", "count limit", NL, OK, "chunk-too-large")
def _chunk(c: Ctx) -> Answer:
    one = submission_to_proto(make_submission(url_in("NL", "/chunk.jpg"), hashes=["chunk"]))
    stream = c.intake.SubmitReports(
        iter([ipb.SubmitReportsRequest(reports=[one] * 1001)]),
        metadata=(("authorization", f"Bearer {c.token}"),),
        timeout=20,
    )
    results = [r for response in stream for r in response.results]
    assert len(results) == 1, results
    return Answer(OK, f"{results[0].error_code}: {results[0].error}")


# 3. signed header bytes: unknown and duplicate fields, re-serialisation --------------------------


@case("signed-header-unknown-field", "signed header", US, INVALID, "unknown-field")
def _unknown_field(c: Ctx) -> Answer:
    payloads = c.payloads()
    header = c.header(payloads).SerializeToString(deterministic=True) + b"\xf8\x06\x01"
    return c.deliver(c.signed_raw_header(header, payloads))


# A field twice in signed bytes: protobuf keeps the last, so the bytes say more than the parse.
@case("signed-header-duplicate-sender-names-nl", "signed header", US, INVALID, "not-canonical")
def _duplicate_sender(c: Ctx) -> Answer:
    payloads = c.payloads()
    header = c.header(payloads).SerializeToString(deterministic=True)
    # A second sender field: the last one wins in the parse, the signature is de-eco's.
    return c.deliver(c.signed_raw_header(header + b"\x0a\x07" + NL.encode(), payloads))


@case(
    "signed-header-duplicate-sender-last-is-signer", "signed header", US, INVALID, "not-canonical"
)
def _duplicate_sender_ok(c: Ctx) -> Answer:
    payloads = c.payloads()
    header = b"\x0a\x07" + NL.encode() + c.header(payloads).SerializeToString(deterministic=True)
    return c.deliver(c.signed_raw_header(header, payloads))


@case("signed-header-duplicate-recipient", "signed header", US, INVALID, "not-canonical")
def _duplicate_recipient(c: Ctx) -> Answer:
    payloads = c.payloads()
    header = c.header(payloads).SerializeToString(deterministic=True)
    return c.deliver(c.signed_raw_header(header + b"\x12\x07" + NL.encode(), payloads))


@case("signed-header-duplicate-count", "signed header", US, INVALID, "not-canonical")
def _duplicate_count(c: Ctx) -> Answer:
    payloads = c.payloads()
    header = c.header(payloads).SerializeToString(deterministic=True)
    return c.deliver(c.signed_raw_header(header + b"\x28\x02", payloads))


@case("signed-header-duplicate-root", "signed header", US, INVALID, "not-canonical")
def _duplicate_root(c: Ctx) -> Answer:
    payloads = c.payloads()
    header = c.header(payloads).SerializeToString(deterministic=True)
    return c.deliver(c.signed_raw_header(header + b"\x32\x20" + bytes(32), payloads))


@case("signed-header-unknown-kind", "signed header", US, INVALID, "header-kind")
def _unknown_kind(c: Ctx) -> Answer:
    payloads = c.payloads()
    header = c.header(payloads, kind=7).SerializeToString(deterministic=True)
    return c.deliver(c.signed_raw_header(header, payloads))


@case("header-reserialised-other-field-order", "re-serialised", US, INVALID, "not-canonical")
def _reordered(c: Ctx) -> Answer:
    sealed = c.seal()
    header = xpb.EnvelopeHeader()
    header.ParseFromString(sealed.header)
    epoch = header.manifest_epoch
    header.ClearField("manifest_epoch")
    # Same fields, same values, other order: what a re-serialising relay might produce.
    reordered = b"\x48" + bytes([epoch]) + header.SerializeToString(deterministic=True)
    return c.deliver(
        xpb.Envelope(header=reordered, signature=sealed.signature, payloads=sealed.payloads)
    )


@case("payload-reserialised-non-minimal-varint", "re-serialised", US, INVALID, "root-mismatch")
def _reencoded(c: Ctx) -> Answer:
    sealed = c.seal()
    wire = sealed.payloads[0]
    # The same Report, but site_type (field 6) re-encoded with a padded varint: equal message,
    # other bytes, so the Merkle root in the signed header no longer matches.
    i = wire.index(b"\x30")
    padded = wire[: i + 1] + bytes([wire[i + 1] | 0x80, 0x00]) + wire[i + 2 :]
    return c.deliver(
        xpb.Envelope(header=sealed.header, signature=sealed.signature, payloads=[padded])
    )


@case("payload-swapped-after-signing", "re-serialised", US, INVALID, "root-mismatch")
def _swapped(c: Ctx) -> Answer:
    sealed = c.seal()
    return c.deliver(
        xpb.Envelope(header=sealed.header, signature=sealed.signature, payloads=c.payloads())
    )


@case(
    "origin-changed-inside-payload",
    "outside the header",
    US,
    OK,
    "origin-mismatch",
    delta=REJECTED_IN_RECEIPT,
)
def _origin(c: Ctx) -> Answer:
    report = pb.Report()
    report.ParseFromString(c.payloads()[0])
    report.origin_member = NL
    return c.deliver(c.seal([report.SerializeToString(deterministic=True)]))


@case(
    "recipient-changed-inside-payload",
    "outside the header",
    US,
    OK,
    "not-responsible",
    delta=REJECTED_IN_RECEIPT,
)
def _decision(c: Ctx) -> Answer:
    report = pb.Report()
    report.ParseFromString(c.payloads()[0])
    report.decision.member = NL
    return c.deliver(c.seal([report.SerializeToString(deterministic=True)]))


@case(
    "sender-changed-outside-signature",
    "outside the header",
    US,
    grpc.StatusCode.PERMISSION_DENIED,
    "unknown-key",
)
def _sender_swapped(c: Ctx) -> Answer:
    payloads = c.payloads()
    signed = c.header(payloads)
    signature = c.key.sign(signed.SerializeToString(deterministic=True))
    signed.sender = NL
    return c.deliver(
        xpb.Envelope(
            header=signed.SerializeToString(deterministic=True),
            signature=signature,
            payloads=payloads,
        )
    )


@case(
    "envelope-for-another-member",
    "outside the header",
    US,
    grpc.StatusCode.FAILED_PRECONDITION,
    "wrong-recipient",
)
def _other_recipient(c: Ctx) -> Answer:
    return c.deliver(c.seal(recipient=NL))


# 4. replay ------------------------------------------------------------------------------------


class Replay:
    def __init__(self) -> None:
        self.envelope: xpb.Envelope | None = None
        self.first: bytes = b""

    def prepare(self, c: Ctx) -> None:
        self.envelope = c.seal(c.payloads(2)).to_proto()
        first = c.exchange.Deliver(self.envelope, timeout=20)
        self.first = first.SerializeToString()

    def prepare_and_restart(self, c: Ctx) -> None:
        self.prepare(c)
        c.cluster.nodes.pop(US).stop(grace=0.5)
        c.cluster.start(US)
        c.reconnect()

    def again(self, c: Ctx) -> Answer:
        assert self.envelope is not None
        receipt = c.exchange.Deliver(self.envelope, timeout=20)
        assert receipt.SerializeToString() == self.first, "a replay gets the stored receipt"
        return _receipt_answer(receipt)


_immediate, _restarted = Replay(), Replay()
add("replay-immediate", "replay", US, _immediate.again, OK, "new-case", prepare=_immediate.prepare)
add(
    "replay-after-restart",
    "replay",
    US,
    _restarted.again,
    OK,
    "new-case",
    prepare=_restarted.prepare_and_restart,
)


@case(
    "replay-sequence-other-content",
    "replay",
    US,
    grpc.StatusCode.ALREADY_EXISTS,
    "sequence-conflict",
)
def _conflict(c: Ctx) -> Answer:
    first = c.seal()
    header = xpb.EnvelopeHeader()
    header.ParseFromString(first.header)
    assert c.deliver(first).code is OK
    # The store grew with ``first``: measure the conflict alone.
    c.baseline = c.quiet()  # type: ignore[attr-defined]
    return c.deliver(c.seal(sequence=header.sequence))


# 5. time --------------------------------------------------------------------------------------

add(
    "signed-30-minutes-in-the-future",
    "timestamps",
    US,
    lambda c: c.deliver(c.seal(signed_at=datetime.now(UTC) + timedelta(minutes=30))),
    INVALID,
    "envelope-future",
)
add(
    "signed-in-1970",
    "timestamps",
    US,
    lambda c: c.deliver(c.seal(signed_at=datetime(1970, 1, 1, tzinfo=UTC))),
    grpc.StatusCode.PERMISSION_DENIED,
    "key-not-valid",
)


def _header_time(seconds: int, nanos: int = 0) -> Callable[[Ctx], Answer]:
    def run(c: Ctx) -> Answer:
        payloads = c.payloads()
        header = c.header(payloads)
        header.signed_at.seconds = seconds
        header.signed_at.nanos = nanos
        return c.deliver(
            c.signed_raw_header(header.SerializeToString(deterministic=True), payloads)
        )

    return run


add("signed-after-year-9999", "timestamps", US, _header_time(253402300800), INVALID, "time-range")
add("signed-before-year-1", "timestamps", US, _header_time(-62135596801), INVALID, "time-range")
add(
    "signed-nanos-out-of-range",
    "timestamps",
    US,
    _header_time(1_700_000_000, -5),
    INVALID,
    "time-range",
)


# 6. keys --------------------------------------------------------------------------------------

add(
    "key-unknown",
    "keys",
    US,
    lambda c: c.deliver(c.seal(key=SigningKey.generate())),
    grpc.StatusCode.PERMISSION_DENIED,
    "unknown-key",
)
add(
    "key-of-another-member",
    "keys",
    US,
    lambda c: c.deliver(c.seal(key=c.cluster.fed.keys[NL])),
    grpc.StatusCode.PERMISSION_DENIED,
    "unknown-key",
)
add(
    "sender-not-a-member",
    "keys",
    US,
    lambda c: c.deliver(c.seal(sender="xx-rogue")),
    grpc.StatusCode.PERMISSION_DENIED,
    "unknown-member",
)


def _revoke(c: Ctx) -> None:
    fed = c.cluster.fed
    extra = SigningKey.generate()
    start = datetime.now(UTC) - timedelta(minutes=1)
    epoch = c.epoch()
    fed.publish(
        bump_epoch(
            add_key(fed.manifest, DE, MemberKey.of(extra.public, start)),
            issued_at=datetime.now(UTC),
        )
    )
    wait_until(lambda: c.epoch() == epoch + 1, 20, what="the new key at us-ncmec")
    fed.publish(
        bump_epoch(
            revoke_key(fed.manifest, DE, extra.key_id, at=datetime.now(UTC)),
            issued_at=datetime.now(UTC),
        )
    )
    wait_until(lambda: c.epoch() == epoch + 2, 20, what="the revocation at us-ncmec")
    c.extra_key = extra


add(
    "key-revoked-before-signing",
    "keys",
    US,
    lambda c: c.deliver(
        c.seal(key=c.extra_key, signed_at=datetime.now(UTC) + timedelta(seconds=1))
    ),
    grpc.StatusCode.PERMISSION_DENIED,
    "key-not-valid",
    prepare=_revoke,
)


# 7. Ed25519 edge cases ------------------------------------------------------------------------


def _with_signature(change: Callable[[bytes], bytes]) -> Callable[[Ctx], Answer]:
    def run(c: Ctx) -> Answer:
        sealed = c.seal()
        return c.deliver(
            xpb.Envelope(
                header=sealed.header, signature=change(sealed.signature), payloads=sealed.payloads
            )
        )

    return run


def _s_plus_l(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:], "little") + L
    return sig[:32] + s.to_bytes(32, "little")


for _name, _change in {
    "s-plus-l-malleable": _s_plus_l,
    "s-all-ones": lambda s: s[:32] + b"\xff" * 32,
    "length-0": lambda s: b"",
    "length-63": lambda s: s[:63],
    "length-65": lambda s: s + b"\x00",
    "all-zero": lambda s: bytes(64),
    "identity-r-zero-s": lambda s: IDENTITY + bytes(32),
    "bit-flipped": lambda s: bytes([s[0] ^ 1]) + s[1:],
}.items():
    add(
        f"signature-{_name}",
        "ed25519",
        US,
        _with_signature(_change),
        grpc.StatusCode.UNAUTHENTICATED,
        "signature-invalid",
    )


# 8. manifests through the CLI ------------------------------------------------------------------


def _manifest(c: Ctx) -> Path:
    if c.manifest_file is None:
        d = c.root / "manifest-cli"
        d.mkdir()
        key = d / "coordinator.key"
        SigningKey.generate().save(key)
        c.manifest_file = d / "network.json"
        answer = c.cli(
            "network",
            "create",
            str(c.manifest_file),
            "--network",
            "ihx-corpus",
            "--coordinator",
            "inhope",
            "--coordinator-key",
            str(key),
            "--endpoint",
            "127.0.0.1:7700",
            "--public-key",
            SigningKey.generate().public.to_b64(),
            "--name",
            "INHOPE",
        )
        assert answer.exit_code == 0, answer
    return c.manifest_file


def _add_member(countries: str, public_key: str | None = None) -> Callable[[Ctx], Answer]:
    def run(c: Ctx) -> Answer:
        path = _manifest(c)
        before = path.read_bytes()
        answer = c.cli(
            "network",
            "add-member",
            str(path),
            "--id",
            "xx-member",
            "--name",
            "X",
            "--countries",
            countries,
            "--endpoint",
            "127.0.0.1:7709",
            "--public-key",
            public_key or SigningKey.generate().public.to_b64(),
        )
        assert path.read_bytes() == before, "a refused edit leaves the manifest as it was"
        return answer

    return run


def _lower_case_in_file(c: Ctx) -> Answer:
    import json

    path = _manifest(c)
    doc = json.loads(path.read_text())
    doc["members"][0]["countries"] = ["nl"]
    bad = c.root / "manifest-cli" / "lower.json"
    bad.write_text(json.dumps(doc))
    return c.cli("network", "set-orphan", str(bad), "JP", "inhope")


_B64 = base64.b64encode
for _name, _args in {
    "country-XX": ("XX",),
    "country-EU": ("EU",),
    "country-UK": ("UK",),
    "country-three-letters": ("NLD",),
    "country-digits": ("12",),
    "key-identity-point": ("NL", _B64(IDENTITY).decode()),
    "key-all-zero": ("NL", _B64(bytes(32)).decode()),
    "key-order-2": ("NL", _B64(bytes.fromhex("ec" + "ff" * 30 + "7f")).decode()),
}.items():
    add(
        f"manifest-{_name}",
        "manifest",
        "cli",
        _add_member(*_args),
        None,
        "countries" if _name.startswith("country") else "public key",
        exit_code=2,
    )
add(
    "manifest-country-lower-case-in-file",
    "manifest",
    "cli",
    _lower_case_in_file,
    None,
    "members[0].countries[0]",
    exit_code=2,
)


# 9. partner tokens (JWT) against intake --------------------------------------------------------


def _claims(c: Ctx, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": c.cluster.fed.settings[NL].token_issuer,
        "sub": "analyst",
        "aud": NL,
        "iat": now,
        "exp": now + 300,
        "scope": "reports:submit",
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def _hdr(c: Ctx, **changes: Any) -> dict[str, Any]:
    base = {"alg": "EdDSA", "kid": c.cluster.fed.keys[NL].key_id, "typ": "JWT"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def _jwt(make: Callable[[Ctx], str | None]) -> Callable[[Ctx], Answer]:
    def run(c: Ctx) -> Answer:
        request = submission_to_proto(make_submission(url_in("NL", "/jwt.jpg"), hashes=["jwt"]))
        return c.submit(request, token=make(c))

    return run


_NODE = lambda c: c.cluster.fed.keys[NL]  # noqa: E731
_JWT_CASES: dict[str, tuple[Callable[[Ctx], str | None], grpc.StatusCode, str]] = {
    "missing": (lambda c: None, grpc.StatusCode.UNAUTHENTICATED, "token-missing"),
    "alg-none": (
        lambda c: compact({"alg": "none", "typ": "JWT"}, _claims(c)),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-alg",
    ),
    "hs256-with-public-key": (
        lambda c: hmac_token(_hdr(c, alg="HS256"), _claims(c), _NODE(c).public.to_b64().encode()),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-alg",
    ),
    "expired": (
        lambda c: sign(
            _hdr(c), _claims(c, iat=int(time.time()) - 900, exp=int(time.time()) - 600), _NODE(c)
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-expired",
    ),
    "aud-other-node": (
        lambda c: sign(_hdr(c), _claims(c, aud=DE), _NODE(c)),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-audience",
    ),
    "iss-prefix": (
        lambda c: sign(_hdr(c), _claims(c, iss=NL[:-1]), _NODE(c)),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-issuer",
    ),
    "crit-unknown": (
        lambda c: sign(_hdr(c, crit=["x-ihx"], **{"x-ihx": True}), _claims(c), _NODE(c)),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-crit",
    ),
    "kid-path-traversal": (
        lambda c: sign(_hdr(c, kid="../../node.key"), _claims(c), _NODE(c)),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-kid",
    ),
    "jku-attacker-key": (
        lambda c: sign(
            _hdr(c, kid="attacker", jku="http://127.0.0.1:9/jwks.json"),
            _claims(c),
            SigningKey.generate(),
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-kid",
    ),
    "x5u-attacker-key": (
        lambda c: sign(
            _hdr(c, x5u="http://127.0.0.1:9/cert.pem"), _claims(c), SigningKey.generate()
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-signature",
    ),
    "signature-of-another-key": (
        lambda c: sign(_hdr(c), _claims(c), SigningKey.generate()),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-signature",
    ),
    "wrong-scope": (
        lambda c: sign(_hdr(c), _claims(c, scope="log:read"), _NODE(c)),
        grpc.StatusCode.PERMISSION_DENIED,
        "permission-denied",
    ),
    "malformed": (
        lambda c: "not.a.jwt" + b64url(b"\x00"),
        grpc.StatusCode.UNAUTHENTICATED,
        "token-malformed",
    ),
}
for _name, (_make, _code, _reason) in _JWT_CASES.items():
    add(f"jwt-{_name}", "jwt", NL, _jwt(_make), _code, _reason)


# 10. URLs, hashes, notes at intake -------------------------------------------------------------


def _submit(
    url: str | None = None, *, notes: str = "", items: list[pb.Item] | None = None
) -> Callable[[Ctx], Answer]:
    def run(c: Ctx) -> Answer:
        i = next(c.serial)
        request = submission_to_proto(
            make_submission(
                url if url is not None else url_in("NL", f"/intake/{i}.jpg"),
                hashes=[f"intake-{i}"],
            )
        )
        request.notes = notes
        if items is not None:
            del request.items[:]
            request.items.extend(items)
        return c.submit(request)

    return run


for _name, (_url, _code) in {
    "nul-in-host": ("https://hosting-nl\x00.example/a.jpg", "url-unparseable"),
    "javascript-scheme": ("javascript:alert(1)", "scheme-not-allowed"),
    "file-scheme": ("file:///etc/passwd", "scheme-not-allowed"),
    "data-scheme": ("data:text/html,<script>alert(1)</script>", "scheme-not-allowed"),
    "over-long": ("https://hosting-nl.example/" + "a" * 9000, "url-too-long"),
    "empty": ("", "url-empty"),
    "no-host": ("https://", "host-missing"),
    "port-out-of-range": ("https://hosting-nl.example:70000/", "url-unparseable"),
}.items():
    add(f"url-{_name}", "urls", NL, _submit(_url), INVALID, _code)


def _sha(hex_: str) -> pb.Item:
    return pb.Item(
        hashes=[pb.ContentHash(algorithm=pb.HASH_ALGORITHM_SHA256, hex=hex_)],
        classification=pb.CLASSIFICATION_BASELINE,
        media_type=pb.MEDIA_TYPE_IMAGE,
        age_group=pb.AGE_GROUP_UNKNOWN,
    )


_GOOD = content_hash("conflict").hex
for _name, (_items, _code) in {
    "sha256-too-short": ([_sha("ab" * 31)], "hash-length"),
    "sha256-non-hex": ([_sha("zz" * 32)], "hash-not-hex"),
    "md5-in-sha256-field": ([_sha(content_hash("md5", HashAlgorithm.MD5).hex)], "hash-length"),
    "sha256-with-nul": ([_sha("0" * 63 + "\x00")], "hash-not-hex"),
    "unknown-algorithm": (
        [
            pb.Item(
                hashes=[pb.ContentHash(algorithm=99, hex=_GOOD)],
                classification=pb.CLASSIFICATION_BASELINE,
                media_type=pb.MEDIA_TYPE_IMAGE,
            )
        ],  # type: ignore[arg-type]
        "hash-algorithm",
    ),
    "conflicting-classifications-one-hash": (
        [
            _sha(_GOOD),
            pb.Item(
                hashes=[pb.ContentHash(algorithm=pb.HASH_ALGORITHM_SHA256, hex=_GOOD)],
                classification=pb.CLASSIFICATION_NOT_ILLEGAL,
                media_type=pb.MEDIA_TYPE_IMAGE,
            ),
        ],
        "report-duplicate-item",
    ),
    "two-sha256-in-one-item": (
        [
            pb.Item(
                hashes=[
                    pb.ContentHash(algorithm=pb.HASH_ALGORITHM_SHA256, hex=_GOOD),
                    pb.ContentHash(
                        algorithm=pb.HASH_ALGORITHM_SHA256, hex=content_hash("other").hex
                    ),
                ],
                classification=pb.CLASSIFICATION_BASELINE,
                media_type=pb.MEDIA_TYPE_IMAGE,
            )
        ],
        "item-conflicting-hashes",
    ),
    "no-items": ([], "report-no-items"),
}.items():
    add(f"hash-{_name}", "hashes", NL, _submit(items=_items), INVALID, _code)

for _name, (_notes, _code) in {
    "rtl-override": ("safe \u202egpj.exe", "text-bidi"),
    "rtl-isolate": ("\u2067hidden\u2069", "text-bidi"),
    "nul": ("a\x00b", "text-control"),
    "escape": ("\x1b[31mred", "text-control"),
}.items():
    add(f"notes-{_name}", "notes", NL, _submit(notes=_notes), INVALID, _code)


def _cli_submit(*extra: str) -> Callable[[Ctx], Answer]:
    def run(c: Ctx) -> Answer:
        return c.cli("submit", "--node", c.cluster.address(NL), "--token", c.token, *extra)

    return run


add(
    "cli-submit-javascript-url",
    "urls",
    NL,
    _cli_submit(
        "--url", "javascript:alert(1)", "--hash", f"sha256:{_GOOD}", "--classification", "baseline"
    ),
    None,
    "scheme",
    exit_code=2,
)
add(
    "cli-submit-md5-as-sha256",
    "hashes",
    NL,
    _cli_submit(
        "--url",
        url_in("NL", "/cli.jpg"),
        "--hash",
        "sha256:" + "0" * 32,
        "--classification",
        "baseline",
    ),
    None,
    "64 hex digits",
    exit_code=2,
)


def _cli_notes(notes: str) -> Callable[[Ctx], Answer]:
    return _cli_submit(
        "--url",
        url_in("NL", "/cli.jpg"),
        "--hash",
        f"sha256:{_GOOD}",
        "--classification",
        "baseline",
        "--notes",
        notes,
    )


add("cli-submit-rtl-notes", "notes", NL, _cli_notes("a\u202eb"), None, "bidirectional", exit_code=2)
add(
    # What an undecodable byte in argv becomes under surrogateescape.
    "cli-submit-lone-surrogate-notes",
    "notes",
    NL,
    _cli_notes("a\udc80b"),
    None,
    "notes: lone surrogate in text",
    exit_code=2,
)
add(
    "cli-submit-lone-surrogate-url",
    "urls",
    NL,
    _cli_submit(
        "--url",
        url_in("NL", "/cli\udc80.jpg"),
        "--hash",
        f"sha256:{_GOOD}",
        "--classification",
        "baseline",
    ),
    None,
    "url: lone surrogate in text (character 31)",
    exit_code=2,
)


def _record(url: str, hex_: str = _GOOD, **fields: Any) -> dict[str, Any]:
    item = {"hashes": [f"sha256:{hex_}"], "classification": "baseline"}
    return {"url": url, "items": [item], **fields}


def _json_line(record: dict[str, Any]) -> bytes:
    # ensure_ascii: a lone surrogate is written as its escape, "\udc80", as JSON allows.
    return json.dumps(record, ensure_ascii=True).encode()


@case(
    "cli-submit-json-lone-surrogate-url",
    "urls",
    NL,
    None,
    "url: lone surrogate in text (character 28)",
    exit_code=2,
)
def _cli_json(c: Ctx) -> Answer:
    path = c.root / "lone-surrogate.json"
    path.write_bytes(_json_line(_record("https://hosting-nl.example/\udc80.jpg")))
    return _cli_submit("--from-json", str(path))(c)


def _cli_import(*lines: Callable[[Ctx], bytes], summary: dict[str, str]) -> Callable[[Ctx], Answer]:
    """``ihx import`` of a JSON Lines file: bad lines are reported with their number, skipped."""

    def run(c: Ctx) -> Answer:
        path = c.root / f"import-{next(c.serial)}.jsonl"
        path.write_bytes(b"".join(line(c) + b"\n" for line in lines))
        answer = c.cli("import", str(path), "--node", c.cluster.address(NL), "--token", c.token)
        assert answer.exit_code == 1, answer  # some records refused
        shown = dict(line.split(None, 1) for line in answer.response.splitlines())
        assert {k: shown.get(k) for k in summary} == summary, answer.response
        return Answer(None, answer.detail, exit_code=answer.exit_code, stderr=answer.stderr)

    return run


def _valid_line(c: Ctx) -> bytes:
    i = next(c.serial)
    return _json_line(_record(url_in("NL", f"/import/{i}.jpg"), content_hash(f"import-{i}").hex))


add(
    "import-jsonl-lone-surrogate-in-url-then-a-valid-line",
    "import file",
    NL,
    _cli_import(
        lambda c: _json_line(_record("https://hosting-nl.example/\udc80.jpg")),
        _valid_line,
        summary={"read": "2", "new": "1", "refused": "1 (1 bad lines, 0 refused by the node)"},
    ),
    None,
    "line 1: skipped: url: lone surrogate in text (character 28)",
    delta=SUBMITTED_ONE,
)
add(
    "import-jsonl-lone-surrogate-in-notes",
    "import file",
    NL,
    _cli_import(
        lambda c: _json_line(_record(url_in("NL", "/import.jpg"), notes="x\ud800y")),
        summary={
            "read": "1",
            "submitted": "0",
            "refused": "1 (1 bad lines, 0 refused by the node)",
        },
    ),
    None,
    "line 1: skipped: notes: lone surrogate in text",
)
add(
    "import-jsonl-invalid-utf8-bytes",
    "import file",
    NL,
    _cli_import(
        # The URL holds the CESU-8 of U+D800: bytes that are not UTF-8.
        lambda c: _json_line(_record("https://hosting-nl.example/X.jpg")).replace(
            b"X", b"\xed\xa0\x80"
        ),
        summary={
            "read": "1",
            "submitted": "0",
            "refused": "1 (1 bad lines, 0 refused by the node)",
        },
    ),
    None,
    "line 1: skipped: not UTF-8 (byte 37)",
)


# 11. accepted by design: IP-literal tricks, homographs, Unicode forms ---------------------------


def _decision(
    url: str, member: str, reason: int, flag: str | None = None
) -> Callable[[Ctx], Answer]:
    def run(c: Ctx) -> Answer:
        request = submission_to_proto(make_submission(url, hashes=[f"decision-{next(c.serial)}"]))
        answer = c.submit(request)
        assert answer.code is OK, answer
        response: ipb.SubmitReportResponse = answer.response
        assert (response.decision.member, response.decision.reason) == (member, reason), (
            response.decision
        )
        if flag is not None:
            assert flag in response.trace.flags, response.trace.flags
        return Answer(OK, f"routed to {member}")

    return run


UNTRACEABLE = pb.DECISION_REASON_UNTRACEABLE
_routed: Delta = {}  # accepted cases: the store grows, checked by ``accepted`` below
for _name, _url, _member, _reason, _flag in [
    (
        "ipv4-decimal-private",
        "http://3232235777/a.jpg",
        COORDINATOR,
        UNTRACEABLE,
        "ipv4-non-standard",
    ),
    (
        "ipv4-octal-private",
        "http://0300.0250.0.1/a.jpg",
        COORDINATOR,
        UNTRACEABLE,
        "ipv4-non-standard",
    ),
    ("ipv4-hex-loopback", "http://0x7f000001/a.jpg", COORDINATOR, UNTRACEABLE, "ipv4-non-standard"),
    (
        "ipv4-mapped-private",
        "http://[::ffff:10.0.0.1]/a.jpg",
        COORDINATOR,
        UNTRACEABLE,
        "ipv4-mapped-ipv6",
    ),
    ("nat64-private", "http://[64:ff9b::a00:1]/a.jpg", COORDINATOR, UNTRACEABLE, "nat64-ipv6"),
    ("ipv6-loopback", "http://[::1]/a.jpg", COORDINATOR, UNTRACEABLE, None),
    (
        "ipv4-decimal-public-nl",
        f"http://{int.from_bytes(bytes([185, 107, 56, 10]), 'big')}/a.jpg",
        NL,
        pb.DECISION_REASON_LOCAL,
        "ipv4-non-standard",
    ),
    (
        "idn-homograph",
        "https://p\u0430ypal.example/a.jpg",
        COORDINATOR,
        UNTRACEABLE,
        "mixed-script-idn",
    ),
]:
    add(
        f"route-{_name}",
        "ip literal / idn",
        NL,
        _decision(_url, _member, _reason, _flag),
        OK,
        f"routed to {_member}",
        delta={"accepted": {"reports": 1}},
    )


@case(
    "nfc-and-nfd-host-are-one-report",
    "unicode forms",
    NL,
    OK,
    "same report",
    delta={"accepted": {"reports": 1}},
)
def _nfc_nfd(c: Ctx) -> Answer:
    nfc = "https://caf\u00e9-corpus.example/a.jpg"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    answers = []
    for url in (nfc, nfd):
        request = submission_to_proto(make_submission(url, hashes=["nfc-nfd"]))
        answer = c.submit(request)
        assert answer.code is OK, answer
        answers.append(answer.response)
    assert answers[0].report_id == answers[1].report_id
    assert answers[0].canonical_url == answers[1].canonical_url
    assert answers[1].duplicate
    return Answer(OK, "same report")


# 12. HTTP/2 abuse, bounded ---------------------------------------------------------------------


def _rapid_reset(c: Ctx) -> Answer:
    """Open streams and cancel each at once (CVE-2023-44487's pattern), 300 times."""
    call = c.us.unary_unary(DELIVER, request_serializer=None, response_deserializer=None)
    data = c.seal().to_proto().SerializeToString()
    for _ in range(300):
        future = call.future(data, timeout=10)
        future.cancel()
    return Answer(OK, "served")


def _stream_resets(c: Ctx) -> Answer:
    """Bidi exchange streams opened, one envelope in flight, then cancelled: 100 times."""
    for _ in range(100):
        stream = c.exchange.Stream(iter([xpb.Envelope()]), timeout=10)
        stream.cancel()
    return Answer(OK, "served")


def _ping_flood(c: Ctx) -> Answer:
    """A client that pings every millisecond: the server may GOAWAY it, never fall over."""
    options = [
        ("grpc.keepalive_time_ms", 1),
        ("grpc.keepalive_timeout_ms", 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_time_between_pings_ms", 1),
    ]
    with grpc.insecure_channel(c.cluster.address(US), options=options) as channel:
        stub = xgrpc.ExchangeStub(channel)
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:
            try:
                stub.GetNodeInfo(xpb.NodeInfoRequest(), timeout=1)
            except grpc.RpcError:
                time.sleep(0.05)  # refused by the server's ping policy: fine
    return Answer(OK, "served")


def _stalled_streams(c: Ctx) -> Answer:
    """50 streams that send headers and then nothing, while a normal client is served."""
    release = threading.Event()

    def never() -> Iterator[xpb.Envelope]:
        release.wait(10)
        return
        yield  # pragma: no cover

    calls = [c.exchange.Stream(never(), timeout=15) for _ in range(50)]
    try:
        time.sleep(0.2)
        c.still_serves(US)
    finally:
        release.set()
        for call in calls:
            call.cancel()
    return Answer(OK, "served")


def _slowloris(c: Ctx) -> Answer:
    """60 TCP connections that send half an HTTP/2 preface and stall; the node still serves."""
    host, port = c.cluster.address(US).rsplit(":", 1)
    sockets = []
    try:
        for _ in range(60):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"PRI * HTTP/2.0\r\n")
            sockets.append(s)
        c.still_serves(US)
    finally:
        for s in sockets:
            s.close()
    return Answer(OK, "served")


def _garbage_preface(c: Ctx) -> Answer:
    """20 connections speaking HTTP/1.1 and raw junk to the gRPC port."""
    host, port = c.cluster.address(US).rsplit(":", 1)
    for i in range(20):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" if i % 2 else bytes(range(256)))
            s.settimeout(2)
            with contextlib.suppress(OSError):
                s.recv(1024)
    return Answer(OK, "served")


for _name, _run in {
    "rapid-reset-300-cancelled-calls": _rapid_reset,
    "rapid-reset-100-cancelled-streams": _stream_resets,
    "ping-flood": _ping_flood,
    "stall-after-headers-50-streams": _stalled_streams,
    "slowloris-60-half-prefaces": _slowloris,
    "junk-instead-of-http2": _garbage_preface,
}.items():
    # A cancelled Deliver may or may not have reached the writer: allow what a valid one adds.
    add(f"h2-{_name}", "http/2 abuse", US, _run, OK, "served", delta={"h2": {}})


# 13. hostile members: valid signatures, insane content ------------------------------------------
# de-eco signs every envelope below with its real key. Only known bytes are stored; every time a
# member states lies in its window; a member speaks only for itself in the hash index; integers
# are in range; the receiver re-checks the trace. Each payload is rejected inside the signed
# receipt (nothing stored, nothing indexed, nothing announced) or the envelope is refused whole.

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 176  # ~45 kB


def _report(c: Ctx) -> pb.Report:
    return pb.Report.FromString(c.payloads()[0])


def _deliver_report(c: Ctx, msg: pb.Report | bytes) -> Answer:
    payload = msg if isinstance(msg, bytes) else msg.SerializeToString()
    return c.deliver(c.seal([payload]))


def _with_item_blob(c: Ctx) -> bytes:
    msg = _report(c)
    item = msg.items[0].SerializeToString() + length_delimited(15, JPEG)
    msg.items[0].Clear()
    msg.items[0].MergeFromString(item)
    return msg.SerializeToString()


def _nested(depth: int) -> bytes:
    inner = b""
    for _ in range(depth):
        inner = length_delimited(77, inner)
    return inner


def _timed(c: Ctx, at: datetime) -> pb.Report:
    msg = _report(c)
    msg.received_at.FromDatetime(at)
    return msg


def _private_trace(c: Ctx) -> pb.Report:
    msg = _report(c)
    del msg.trace.addresses[:]
    msg.trace.addresses.add(address="10.20.30.40", country="US")
    msg.trace.country = "US"
    return msg


def _future_trace(c: Ctx) -> pb.Report:
    msg = _report(c)
    msg.trace.traced_at.FromDatetime(datetime.now(UTC) + timedelta(days=30))
    return msg


for _name, _build, _reason in (
    (
        "unknown-field-jpeg-in-report",
        lambda c: _report(c).SerializeToString() + length_delimited(99, JPEG),
        "unknown-field",
    ),
    ("unknown-field-jpeg-in-item", _with_item_blob, "unknown-field"),
    (
        "unknown-fields-nested-3000-deep",
        lambda c: _report(c).SerializeToString() + _nested(3000),
        "unknown-field",
    ),
    (
        "duplicate-notes-field-hides-bytes",
        lambda c: (
            _report(c).SerializeToString()
            + length_delimited(9, b"x" * 40_000)
            + length_delimited(9, b"fine")
        ),
        "not-canonical",
    ),
    ("received-at-year-1", lambda c: _timed(c, datetime(1, 1, 1, tzinfo=UTC)), "report-time-range"),
    (
        "received-at-1999",
        lambda c: _timed(c, datetime(1999, 12, 31, tzinfo=UTC)),
        "report-time-range",
    ),
    (
        "received-at-year-9999",
        lambda c: _timed(c, datetime(9999, 12, 31, tzinfo=UTC)),
        "report-time-range",
    ),
    ("trace-private-address-in-receivers-country", _private_trace, "trace-special-address"),
    ("trace-time-next-month", _future_trace, "trace-time-range"),
):
    add(
        f"member-{_name}",
        "hostile member",
        US,
        lambda c, b=_build: _deliver_report(c, b(c)),
        OK,
        _reason,
        delta=REJECTED_IN_RECEIPT,
    )


def _announce(c: Ctx, **changes: Any) -> Answer:
    fields: dict[str, Any] = {
        "hash": pb.ContentHash(
            algorithm=pb.HASH_ALGORITHM_SHA256, hex=content_hash(f"ann-{next(c.serial)}").hex
        ),
        "case_id": "c-" + "d" * 32,
        "member": DE,
        "classification": pb.CLASSIFICATION_NOT_ILLEGAL,
        "report_id": "r-" + "d" * 32,
    }
    fields.update(changes)
    msg = xpb.HashAnnouncement(**fields)
    if not msg.HasField("first_seen"):
        msg.first_seen.FromDatetime(datetime.now(UTC))
    sealed = seal(
        c.key,
        sender=DE,
        recipient=US,
        sequence=next(c.sequences),
        kind=KIND_ANNOUNCEMENT,
        payloads=[msg.SerializeToString()],
        signed_at=datetime.now(UTC),
        manifest_epoch=c.epoch(),
    )
    return c.deliver(sealed)


def _first_seen(at: datetime) -> Any:
    ts = xpb.HashAnnouncement().first_seen
    ts.FromDatetime(at)
    return ts


for _name, _changes, _reason in (
    (
        "sighting-1970-not-illegal",
        {"first_seen": _first_seen(datetime(1970, 1, 1))},
        "sighting-time-range",
    ),
    (
        "sighting-from-next-year",
        {"first_seen": _first_seen(datetime(2099, 1, 1))},
        "sighting-time-range",
    ),
    ("sighting-for-another-member", {"member": NL}, "origin-mismatch"),
    ("retracting-another-members-sighting", {"member": US, "retracted": True}, "origin-mismatch"),
    ("sighting-case-id-sql", {"case_id": "c-'; DROP TABLE cases; --"}, "case-id"),
    ("sighting-report-id-empty", {"report_id": ""}, "report-id"),
):
    add(
        f"member-{_name}",
        "hostile member",
        US,
        lambda c, ch=_changes: _announce(c, **ch),
        OK,
        _reason,
        delta=REJECTED_IN_RECEIPT,
    )

for _name, _header, _code, _detail in (
    ("sequence-zero", {"sequence": 0}, INVALID, "header-sequence"),
    ("sequence-2-63", {"sequence": 2**63}, INVALID, "header-sequence"),
    ("sequence-2-64-minus-1", {"sequence": 2**64 - 1}, INVALID, "header-sequence"),
    (
        "epoch-from-the-future",
        {"manifest_epoch": 1_000_000},
        grpc.StatusCode.FAILED_PRECONDITION,
        "manifest-epoch-ahead",
    ),
):

    def _run(c: Ctx, header: dict[str, Any] = _header) -> Answer:
        payloads = c.payloads()
        raw = c.header(payloads, **header).SerializeToString(deterministic=True)
        return c.deliver(c.signed_raw_header(raw, payloads))

    add(f"member-header-{_name}", "hostile member", US, _run, _code, _detail)

add(
    "intake-unknown-field-jpeg",
    "hostile member",
    NL,
    lambda c: c.raw(c.nl, SUBMIT, _valid_request(c) + length_delimited(50, JPEG), c.token),
    INVALID,
    "unknown-field",
)


# -- the test ------------------------------------------------------------------------------------

TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Ctx]:
    root = tmp_path_factory.mktemp("corpus")
    cluster = Cluster(provision(root / "fed"))
    context: Ctx | None = None
    try:
        cluster.start(*MEMBERS)
        context = Ctx(cluster, root)
        context.setup_liveness()
        yield context
    finally:
        if context is not None:
            context.close()
        cluster.close()
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        line = (
            f"hostile corpus: {TALLY['run']} cases run, {TALLY['refused']} refused correctly, "
            f"{TALLY['accepted']} accepted as designed, {TALLY['failed']} failed"
        )
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line)


def _changed(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> Delta:
    out: Delta = {}
    for member, counts in before.items():
        diff = {t: after[member][t] - n for t, n in counts.items() if after[member][t] != n}
        if diff:
            out[member] = diff
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("hostile", CASES, ids=[c.name for c in CASES])
def test_hostile_input(ctx: Ctx, hostile: Case) -> None:
    TALLY["run"] += 1
    TALLY["failed"] += 1  # taken back at the end
    if hostile.prepare is not None:
        hostile.prepare(ctx)
    before = ctx.quiet()
    ctx.baseline = before  # type: ignore[attr-defined]
    answer = hostile.run(ctx)
    before = ctx.baseline  # type: ignore[attr-defined]

    if hostile.exit_code is not None:
        assert answer.exit_code == hostile.exit_code, answer
        lines = answer.stderr.splitlines()
        assert len(lines) == 1, answer.stderr
        assert lines[0].startswith("ihx: error: "), answer.stderr
        assert hostile.detail in lines[0], lines[0]
    else:
        assert answer.code is hostile.code, (answer.code, answer.detail)
        assert answer.detail.startswith(hostile.detail), (hostile.detail, answer.detail)
        assert "Traceback" not in answer.detail
        assert "\n" not in answer.detail

    after = ctx.quiet()
    changed = _changed(before, after)
    if "accepted" in hostile.delta:
        # Accepted by design: exactly one new report, at the node that took the submission.
        assert changed.get(NL, {}).get("reports") == hostile.delta["accepted"]["reports"], changed
        TALLY["accepted"] += 1
    elif "h2" in hostile.delta:
        # Streams cancelled in flight: whatever reached the store is whole and receipted.
        assert all(v >= 0 for d in changed.values() for v in d.values()), changed
        assert set(changed) <= {US, NL, DE, COORDINATOR}, changed
        assert ctx.cluster.log_break(US) is None
        TALLY["refused"] += 1
    elif hostile.detail == "new-case":
        # Valid signed bytes (an unknown or repeated field): accepted and attributed to the signer.
        if hostile.check is not None:
            hostile.check(ctx, answer)
            assert changed.get(US, {}).get("reports") == 1, changed
        else:  # a replay: nothing new
            assert changed == {}, changed
        TALLY["refused" if hostile.check is None else "accepted"] += 1
    else:
        assert changed == hostile.delta, changed
        TALLY["refused"] += 1
    ctx.still_serves(US if hostile.target == US else NL)
    TALLY["failed"] -= 1


@pytest.mark.timeout(60)
def test_after_the_corpus_the_nodes_store_new_input(
    ctx: Ctx, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print(
            f"\nhostile corpus: {TALLY['run']} cases run, {TALLY['refused']} refused correctly, "
            f"{TALLY['accepted']} accepted as designed, {TALLY['failed']} failed"
        )
    before = ctx.quiet()
    ctx.accepts_new()
    after = ctx.quiet()
    assert after[US]["reports"] == before[US]["reports"] + 1
    assert after[NL]["reports"] == before[NL]["reports"] + 1
    for member in MEMBERS:
        assert ctx.cluster.log_break(member) is None, member


@pytest.mark.timeout(10)
def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)
