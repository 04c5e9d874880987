"""Any protobuf message, generated or enumerated by walking its descriptor.

Hand-written strategies cover the fields someone thought of; a hostile caller sends the ones
nobody did. ``messages(cls)`` builds a Hypothesis strategy for any message class from its
``google.protobuf`` descriptor alone, so a field added to ``proto/ihx/v1/*.proto`` is fuzzed the
day it lands. Each field is left unset or filled with a value of its type, biased towards the
values that break code: integers at their type's edges and the 32/64-bit boundaries, strings
empty, huge, or made of awkward Unicode (never lone surrogates — protobuf refuses to encode
them, so no client can send them), bytes empty or huge, enums outside their declared values
(proto3 enums are open), nested messages to a bounded depth and repeated fields of 0–3 elements.

``changes(cls)`` sets only one or two top-level fields, to merge over a valid message.
``integer_paths(descriptor)`` enumerates every integer field (enums included: they travel as
varints) reachable from a message, as paths through singular and repeated sub-messages, and
``set_path`` writes one value there; ``wire_value`` turns a 64-bit varint into what the field's
type decodes it to (protobuf truncates an over-wide varint to the field's width), so a table
can send 2**64 - 1 to every integer field, whatever its type, exactly as a raw client would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

F = FieldDescriptor

_RANGES: dict[int, tuple[int, int]] = {
    **dict.fromkeys((F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((F.TYPE_UINT32, F.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((F.TYPE_UINT64, F.TYPE_FIXED64), (0, 2**64 - 1)),
    F.TYPE_ENUM: (-(2**31), 2**31 - 1),
}

EDGES = (0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1)
"""The values an integer field is tested at: each type's edges and the 32/64-bit boundaries."""

_NEGATIVE_EDGES = (-1, -(2**31), -(2**63))

HUGE = 70_000
"""A string or bytes length past every 16-bit length a decoder might assume."""

_STRINGS = st.one_of(
    st.just(""),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(
        [
            "x" * HUGE,
            "é" * (HUGE // 2),
            "\U0010ffff" * 1000,
            "\x00",
            "\u202e\ufeff\u200b",
            "https://hosting-nl.example/a.jpg",
            "nl-eokm",
            "de-eco",
            "'; DROP TABLE reports; --",
            "../../etc/passwd",
            "9" * 40,
        ]
    ),
)
_BYTES = st.one_of(st.binary(max_size=64), st.sampled_from([b"", b"\x00" * 32, b"\xff" * HUGE]))


def integer_range(field: FieldDescriptor) -> tuple[int, int] | None:
    """The values ``field`` can hold, or None when it is not an integer (or enum) field."""
    return _RANGES.get(field.type)


def wire_value(field: FieldDescriptor, value: int) -> int:
    """What ``field`` decodes a varint of ``value`` (taken as a uint64) to."""
    low, high = _RANGES[field.type]
    bits = 32 if high < 2**32 else 64
    truncated = value & ((1 << bits) - 1)
    if low < 0 and truncated >= 1 << (bits - 1):
        truncated -= 1 << bits
    return truncated


def integers(field: FieldDescriptor) -> st.SearchStrategy[int]:
    low, high = _RANGES[field.type]
    edges = [v for v in (*EDGES, *_NEGATIVE_EDGES) if low <= v <= high]
    if field.type == F.TYPE_ENUM:
        edges += [v.number for v in field.enum_type.values] + [len(field.enum_type.values)]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type in _RANGES:
        return integers(field)
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type == F.TYPE_STRING:
        return _STRINGS
    if field.type == F.TYPE_BYTES:
        return _BYTES
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(allow_nan=True, width=32 if field.type == F.TYPE_FLOAT else 64)
    raise TypeError(f"no strategy for field {field.full_name} of type {field.type}")


@st.composite
def _message(
    draw: st.DrawFn, descriptor: Descriptor, depth: int, only: frozenset[str] | None = None
) -> Message:
    msg: Message = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if only is not None and field.name not in only:
            continue
        if only is None and not draw(st.booleans()):
            continue
        repeated = field.is_repeated
        if field.type == F.TYPE_MESSAGE:
            if depth <= 0:
                continue
            sub = _message(field.message_type, depth - 1)
            if repeated:
                for value in draw(st.lists(sub, max_size=3)):
                    getattr(msg, field.name).add().CopyFrom(value)
            else:
                getattr(msg, field.name).CopyFrom(draw(sub))
        elif repeated:
            getattr(msg, field.name).extend(draw(st.lists(_scalar(field), max_size=3)))
        else:
            setattr(msg, field.name, draw(_scalar(field)))
    return msg


def messages(cls: type[Message], *, depth: int = 3) -> st.SearchStrategy[Message]:
    """Messages of ``cls`` with any subset of fields set to hostile values, to ``depth`` levels."""
    return _message(cls.DESCRIPTOR, depth)


@st.composite
def _changes(draw: st.DrawFn, descriptor: Descriptor, at_most: int, depth: int) -> Message:
    names = [f.name for f in descriptor.fields]
    chosen = draw(st.sets(st.sampled_from(names), min_size=1, max_size=at_most))
    return draw(_message(descriptor, depth, frozenset(chosen)))


def changes(cls: type[Message], *, at_most: int = 2, depth: int = 3) -> st.SearchStrategy[Message]:
    """Messages of ``cls`` with 1..``at_most`` top-level fields set (hostile values), the rest not.

    Merged over a valid message, they change a few fields and leave the others valid, so the
    change reaches the checks behind the first one a fully random message would fail.
    """
    return _changes(cls.DESCRIPTOR, at_most, depth)


Path = tuple[FieldDescriptor, ...]


def integer_paths(descriptor: Descriptor, *, depth: int = 4) -> Iterator[Path]:
    """Every integer or enum field reachable from ``descriptor``, as the path of fields to it."""
    for field in descriptor.fields:
        if field.type in _RANGES:
            yield (field,)
        elif field.type == F.TYPE_MESSAGE and depth > 0:
            for rest in integer_paths(field.message_type, depth=depth - 1):
                yield (field, *rest)


def path_name(path: Path) -> str:
    """``items[0].hashes[0].algorithm``: the path as a reader would write it."""
    return ".".join(f.name + ("[0]" if f.is_repeated else "") for f in path)


def set_path(msg: Message, path: Path, value: int) -> None:
    """Set the integer at ``path`` to ``value`` as decoded (``wire_value``); creates the parents.

    A repeated field on the way is entered at element 0 (added if the message has none).
    """
    *parents, leaf = path
    for field in parents:
        if field.is_repeated:
            items = getattr(msg, field.name)
            msg = items[0] if len(items) else items.add()
        else:
            msg = getattr(msg, field.name)
    decoded = wire_value(leaf, value)
    if leaf.is_repeated:
        getattr(msg, leaf.name).append(decoded)
    else:
        setattr(msg, leaf.name, decoded)
