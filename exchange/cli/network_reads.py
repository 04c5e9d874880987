"""Reading every member (``ihx log --network``, ``ihx stats --network``): tokens, failures.

``--token`` is either ``MEMBER=TOKEN`` (that member's own token, repeatable) or one token for
every member — but only a *network token*: its audience is the network
(``ihx-network:<name>``, minted by ``ihx token issue --network`` at a network reader). A token
for one node sent to all would let each of them replay it to that node; a network token is
meant for all of them and grants only reads. The audience is read here from the unverified
claims, only to choose: each node verifies the token for real.

A member that fails is named with its address, the gRPC code and the node's reason
(``de-eco (127.0.0.1:7702): PERMISSION_DENIED: …``); the command goes on with the others and
exits 1. Progress is drawn on stderr, and only when stderr is a terminal.

Members' nodes speak mutual TLS: the calls present a node's TLS identity (``client_tls``: the
``[tls]`` of a node.toml). A token — a network token above all, good at every member — is never
sent in plaintext off loopback (``plaintext_refusal``): anyone on the path could replay it.
``--token-file`` keeps tokens out of the process list.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jwt
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from auth.manifest import Manifest, network_audience
from auth.tls import read_pem
from exchange.cli.common import CliError, one_line
from exchange.client.stubs import ClientTls
from exchange.settings import Settings, load_settings

__all__ = [
    "NetworkTokens",
    "client_tls",
    "member_failure",
    "member_progress",
    "parse_network_tokens",
    "plaintext_refusal",
    "tls_from_config",
    "token_values",
]

_DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class NetworkTokens:
    """The token for every member (a network token), and members' own tokens, which win."""

    everyone: str | None = None
    per_member: dict[str, str] = field(default_factory=dict)

    def token_for(self, member: str) -> str | None:
        return self.per_member.get(member, self.everyone)


def parse_network_tokens(values: Sequence[str], manifest: Manifest) -> NetworkTokens:
    """``--token`` values → tokens; CliError for an unknown member, a duplicate or a token for
    everyone that is not a network token of this manifest's network."""
    everyone: str | None = None
    per_member: dict[str, str] = {}
    for value in values:
        member, sep, token = value.partition("=")
        # A JWT has dots and no "="; a member id has neither.
        if sep and member and "." not in member:
            if manifest.find_member(member) is None:
                raise CliError(f"--token: {member!r} is not a member of the manifest")
            if not token:
                raise CliError(f"--token {member}=: the token is empty")
            if member in per_member:
                raise CliError(f"--token: {member!r} given twice")
            per_member[member] = token
        elif everyone is not None:
            raise CliError("--token: one token for every member at most (or MEMBER=TOKEN)")
        else:
            _require_network_token(value, network_audience(manifest.network))
            everyone = value
    return NetworkTokens(everyone, per_member)


def _require_network_token(token: str, audience: str) -> None:
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise CliError("--token: not a JWT (give a network token, or MEMBER=TOKEN)") from None
    aud = claims.get("aud")
    if aud != audience:
        shown = aud if isinstance(aud, str) and aud.isprintable() and len(aud) < 80 else "?"
        raise CliError(
            f"--token: a token for every member must be a network token (audience {audience}, "
            f"from `ihx token issue --network` at a network reader); this one is for {shown}: "
            "give MEMBER=TOKEN per member instead"
        )


def member_failure(member: str, address: str, error: grpc.RpcError) -> str:
    """``member (address): CODE: the node's reason`` — its reason is hostile text, cut short."""
    code = getattr(error, "code", None)
    details = getattr(error, "details", None)
    name = code().name if callable(code) else "UNKNOWN"
    text = one_line(details() or "" if callable(details) else str(error))
    flat = "".join(c if c.isprintable() else " " for c in text)
    if len(flat) > _DETAIL_CHARS:
        flat = flat[: _DETAIL_CHARS - 1] + "…"
    return f"{member} ({address}): {name}: {flat}"


@contextmanager
def member_progress(what: str, total: int) -> Iterator[Progress]:
    """A bar counting members done, on stderr, drawn only when stderr is a terminal."""
    console = Console(stderr=True, highlight=False, markup=False, emoji=False)
    progress = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with progress:
        progress.add_task(what, total=total)
        yield progress


def advance(progress: Progress) -> None:
    """One more member done."""
    for task in progress.task_ids:
        progress.advance(task)


def client_tls(settings: Settings) -> ClientTls | None:
    """The node's own identity when it has one: members' nodes require a client certificate."""
    if settings.tls_cert is None or settings.tls_key is None or settings.tls_ca is None:
        return None
    return (
        read_pem(settings.tls_ca, "TLS CA certificate"),
        read_pem(settings.tls_cert, "TLS certificate"),
        read_pem(settings.tls_key, "TLS key"),
    )


def tls_from_config(path: Path | None) -> ClientTls | None:
    """``--tls-config``: the TLS identity of that node.toml (None without the option)."""
    if path is None:
        return None
    tls = client_tls(load_settings(path))
    if tls is None:
        raise CliError(f"--tls-config {path}: its [tls] names no cert, key and ca")
    return tls


def token_values(tokens: Sequence[str], token_file: Path | None) -> list[str]:
    """``--token`` values, then the lines of ``--token-file`` (blank lines skipped)."""
    values = list(tokens)
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CliError(f"--token-file {token_file}: cannot read: {error}") from None
        values.extend(line.strip() for line in text.splitlines() if line.strip())
    return values


def plaintext_refusal(
    member: str, address: str, token: str | None, tls: ClientTls | None
) -> str | None:
    """Why ``token`` may not go to ``address`` in plaintext (None: it may, or there is none)."""
    if token is None or tls is not None or _loopback(address):
        return None
    return (
        f"{member} ({address}): not asked: a token is never sent in plaintext off loopback "
        "(give --tls-config NODE_TOML, the node's TLS identity)"
    )


def _loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
