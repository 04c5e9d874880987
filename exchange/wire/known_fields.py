"""Only known bytes: refuse protobuf messages that carry fields their schema does not define.

Protobuf keeps fields it does not know and writes them out again, so an unknown field is a
channel past every check: a signed report with 45 kB of JPEG in field 99 would be stored byte
for byte and served to law enforcement. ihx stores exactly the fields its schema defines
(README "Only known bytes"), so every message that comes in is checked here:

* ``require_known`` — for requests from clients and peers that the node decodes and rebuilds
  (intake, partner and log RPCs, the outer envelope): no unknown field anywhere in the message
  tree. ``DiscardUnknownFields`` runs in C, so the common case costs a discard and a size; only
  a message that shrank is parsed again and walked, to name the field (a message that shrank
  only because the client encoded it non-canonically is accepted).
* ``require_exact`` — for bytes the node stores as received because they are signed (envelope
  headers, report and announcement payloads, receipt bodies): the bytes must also be the
  canonical encoding of what they parse to, so not a byte is stored that the schema does not
  account for (duplicate fields, padded varints and unknown fields all fail). ihx encodes
  canonically (field-number order, packed repeated scalars), as protobuf's own serializers do.

Both raise ``UnknownFields`` with the path of the first unknown field (``items[0].#99``).
"""

from __future__ import annotations

from google.protobuf import unknown_fields
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from exchange.errors import UnknownFields

_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_GROUP = FieldDescriptor.TYPE_GROUP


def find_unknown(msg: Message, path: str = "") -> str | None:
    """The path of the first unknown field in ``msg``'s tree, or None."""
    unknown = unknown_fields.UnknownFieldSet(msg)
    if len(unknown):
        return f"{path}#{unknown[0].field_number}"
    for field, value in msg.ListFields():
        if field.type not in (_MESSAGE, _GROUP):
            continue
        name = f"{path}{field.name}"
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            children = [(f"{name}[{k!r}]", v) for k, v in value.items() if isinstance(v, Message)]
        elif field.is_repeated:
            children = [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        else:
            children = [(name, value)]
        for where, child in children:
            found = find_unknown(child, f"{where}.")
            if found is not None:
                return found
    return None


def _refuse(msg: Message, what: str) -> UnknownFields:
    found = find_unknown(msg)
    return UnknownFields(
        f"{what} carries field {found}, which the ihx.v1 schema does not define; "
        "ihx stores and serves only known fields (a newer schema is a new protocol version)"
    )


def require_known(msg: Message, data: bytes, what: str) -> None:
    """Refuse ``msg`` (parsed from ``data``) if it had unknown fields; on success they are gone."""
    msg.DiscardUnknownFields()
    if msg.ByteSize() == len(data):
        return
    probe = type(msg)()
    probe.ParseFromString(data)
    if find_unknown(probe) is not None:
        raise _refuse(probe, what)


def require_exact(msg: Message, data: bytes, what: str) -> None:
    """Refuse unless ``data`` is exactly the canonical encoding of ``msg`` (parsed from it)."""
    if msg.SerializeToString(deterministic=True) == data:
        # Equal bytes may still end in unknown fields (protobuf writes them back last).
        msg.DiscardUnknownFields()
        if msg.ByteSize() == len(data):
            return
    probe = type(msg)()
    probe.ParseFromString(data)
    if find_unknown(probe) is not None:
        raise _refuse(probe, what)
    raise UnknownFields(
        f"{what} is not in canonical protobuf encoding (duplicate fields, padded integers or "
        "out-of-order fields); signed bytes are stored as sent, so they must hold nothing else",
        code="not-canonical",
    )
