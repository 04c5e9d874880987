"""Helpers shared by the manifest tests: the time steps and a one-key edit of a member."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from auth.manifest import Manifest, replace_member
from tests.auth.factories import T0, NetworkKit

DAY = timedelta(days=1)
NOW = T0 + 30 * DAY


def _with_key(kit: NetworkKit, member_id: str, **validity: Any) -> Manifest:
    member = kit.manifest.member(member_id)
    key = dataclasses.replace(member.keys[0], **validity)
    return replace_member(kit.manifest, dataclasses.replace(member, keys=(key,)))
