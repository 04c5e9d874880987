"""Protobuf messages as JSON documents in the words a user types, for ``--json`` output.

``MessageToDict`` prints enum values by their protobuf names (``CLASSIFICATION_NATIONAL``) while
every input — options, JSON Lines, CSV — takes the domain's words (``national``); a script reading
one command's output into another would have to translate. Here an enum value is its name
without the enum's prefix, lower-cased (``national``, ``image_host``), a content hash is
``algo:hex`` as ``--hash`` takes it, a timestamp RFC 3339, bytes base64, and 64-bit integers
stay numbers. Unset fields are left out, as ``MessageToDict`` does.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from ihx.v1 import report_pb2 as pb

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
# Enums whose domain words are hyphenated (routing.decision.DecisionReason: ``orphan-rule``).
_HYPHENATED = frozenset({"ihx.v1.DecisionReason"})


def enum_word(enum: EnumDescriptor, number: int) -> str:
    """``CLASSIFICATION_NATIONAL`` → ``national``; an unknown number stays a number's text."""
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    prefix = _CAMEL.sub("_", enum.name).upper() + "_"
    word = value.name.removeprefix(prefix).lower()
    return word.replace("_", "-") if enum.full_name in _HYPHENATED else word


def message_document(message: Message) -> dict[str, Any]:
    """The set fields of ``message``, recursively, as plain JSON values."""
    return {field.name: _field_value(field, value) for field, value in message.ListFields()}


def _field_value(field: FieldDescriptor, value: Any) -> Any:
    if field.is_repeated:
        return [_one(field, v) for v in value]
    return _one(field, value)


def _one(field: FieldDescriptor, value: Any) -> Any:
    if field.enum_type is not None:
        return enum_word(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return value
    if isinstance(value, Timestamp):
        return value.ToJsonString()
    if isinstance(value, pb.ContentHash):
        return f"{enum_word(pb.HashAlgorithm.DESCRIPTOR, value.algorithm)}:{value.hex}"
    return message_document(value)
