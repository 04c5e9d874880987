"""``ihx log``: read and verify routing logs — one node's, or every member's of a network.

Listing reads a node's log over gRPC with a ``log:read`` token (``--node``), every member's log
with ``--network MANIFEST`` (one merged, time-ordered view: one network token for all, or
``MEMBER=TOKEN`` each — cli/network_reads.py; a member that fails is named, the others are
still shown, and the command exits 1; with ``--tls-config NODE_TOML`` the calls present that
node's TLS identity, and no token is sent in plaintext off loopback), or the local database
(``--config``); each entry in lines
of 80 columns, ids whole, or JSON Lines with ``--json``. ``ihx log verify`` walks the hash chain
from genesis and checks the signed checkpoints (a progress bar on a terminal); it names the first
bad entry — in a table, or with ``--json`` as one verdict document — and exits 1 when the log was
edited, cut or reordered, or a member could not be read.
"""

from __future__ import annotations

import heapq
import itertools
import json
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from rich.progress import Progress
from rich.table import Table

from auth.manifest import Manifest, load_manifest, parse_manifest, parse_signed_manifest
from common.clock import whole_second_clock
from exchange.batch_entries import described
from exchange.checkpoints import LogVerdict, verify_log
from exchange.cli.common import (
    EXIT_CHECK_FAILED,
    TIME_HELP,
    CliError,
    check_mark,
    err,
    out,
    parse_time,
    print_json,
    progress,
)
from exchange.cli.network_reads import (
    NetworkTokens,
    advance,
    member_failure,
    member_progress,
    parse_network_tokens,
    plaintext_refusal,
    tls_from_config,
    token_values,
)
from exchange.client.stubs import ClientTls, LogClient
from exchange.domain import LogKind
from exchange.local import open_local
from exchange.routing_log import Checkpoint, LogEntry
from exchange.settings import load_settings
from exchange.store.routing_log import load_checkpoints, load_entries
from exchange.wire.codec import checkpoint_from_proto, entry_from_proto


def _manifest_file(path: Path) -> Manifest:
    data = path.read_bytes()
    if path.suffix == ".json" and b'"signatures"' in data:
        return parse_manifest(parse_signed_manifest(data).document)
    return load_manifest(path)


def _tokens(values: Sequence[str]) -> tuple[str | None, dict[str, str]]:
    default, per_member = None, {}
    for v in values:
        member, sep, token = v.partition("=")
        if sep and member and "." not in member:
            per_member[member] = token
        else:
            default = v
    return default, per_member


@dataclass(frozen=True)
class _Row:
    node: str
    entry: LogEntry


def _remote_entries(
    address: str, token: str | None, tls: ClientTls | None, **filters: Any
) -> Iterator[LogEntry]:
    with LogClient(address, token=token, tls=tls) as client:
        for e in client.entries(**filters):
            yield entry_from_proto(e)


TokenFileOption = Annotated[
    Path | None,
    typer.Option(help="Tokens as --token takes them, one a line (kept out of the process list)."),
]
TlsConfigOption = Annotated[
    Path | None,
    typer.Option(help="A node.toml whose [tls] identity the calls present (members' mTLS)."),
]


def register(app: typer.Typer) -> None:
    log_app = typer.Typer(
        help="Read and verify routing logs.", invoke_without_command=True, no_args_is_help=False
    )
    app.add_typer(log_app, name="log")
    log_app.callback()(list_command)
    log_app.command("verify")(verify_command)


def list_command(
    ctx: typer.Context,
    node: Annotated[str | None, typer.Option(help="Read this node's log (host:port).")] = None,
    network: Annotated[
        Path | None, typer.Option(help="Read every member's log (manifest file).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Read the local node's DB.")] = None,
    token: Annotated[
        list[str] | None,
        typer.Option(help="log:read token (--network: a network token), or MEMBER=TOKEN per node."),
    ] = None,
    token_file: TokenFileOption = None,
    tls_config: TlsConfigOption = None,
    since: Annotated[str | None, typer.Option(help=f"From: {TIME_HELP}.")] = None,
    until: Annotated[str | None, typer.Option(help="Before: as --since.")] = None,
    country: Annotated[str, typer.Option()] = "",
    member: Annotated[str, typer.Option()] = "",
    kind: Annotated[LogKind | None, typer.Option(help="Only entries of this kind.")] = None,
    report_id: Annotated[str, typer.Option()] = "",
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines output.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many entries.", min=1)] = 1000,
) -> None:
    """List routing-log entries (newest last)."""
    if ctx.invoked_subcommand is not None:
        return
    if sum(x is not None for x in (node, network, config)) != 1:
        raise CliError("give exactly one of --node, --network or --config")
    now = whole_second_clock()
    filters = {
        "since": parse_time(since, option="--since", now=now) if since else None,
        "until": parse_time(until, option="--until", now=now) if until else None,
        "country": country,
        "member": member,
        "kind": kind.value if kind is not None else "",
        "report_id": report_id,
    }
    failures: list[str] = []
    values, tls = token_values(token or [], token_file), tls_from_config(tls_config)
    if network is not None:
        manifest = _manifest_file(network)
        tokens = parse_network_tokens(values, manifest)
        streams = _network_streams(manifest, tokens, tls, filters, limit, failures)
    elif node is not None:
        default, _ = _tokens(values)
        if (refusal := plaintext_refusal(node, node, default, tls)) is not None:
            raise CliError(refusal)
        streams = [_label(node, _remote_entries(node, default, tls, **filters))]
    else:
        assert config is not None
        streams = [_label("local", _local_entries(config, **filters))]
    rows = heapq.merge(*streams, key=lambda r: (r.entry.at, r.node, r.entry.idx))
    _print_rows(rows, as_json=as_json, limit=limit, nodes=len(streams), report=report_id)
    for failure in failures:
        err().print(f"ihx: error: {failure}")
    if failures:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _network_streams(
    manifest: Manifest,
    tokens: NetworkTokens,
    tls: ClientTls | None,
    filters: dict[str, Any],
    limit: int,
    failures: list[str],
) -> list[Iterator[_Row]]:
    """Every member's first ``limit`` entries, read at once; each that fails goes to
    ``failures``, named. The merge shows at most ``limit``, so no member needs more."""
    members = manifest.members

    def read(member_id: str, address: str) -> list[_Row] | str:
        token = tokens.token_for(member_id)
        if (refusal := plaintext_refusal(member_id, address, token, tls)) is not None:
            return refusal
        entries = _remote_entries(address, token, tls, **filters)
        try:
            return [_Row(member_id, e) for e in itertools.islice(entries, limit)]
        except grpc.RpcError as error:
            return member_failure(member_id, address, error)

    results: list[list[_Row] | str] = []
    with (
        member_progress("reading logs", len(members)) as progress,
        ThreadPoolExecutor(max_workers=min(8, len(members))) as pool,
    ):
        futures = [pool.submit(read, m.id, m.endpoint) for m in members]
        for future in futures:
            results.append(future.result())
            advance(progress)
    failures.extend(r for r in results if isinstance(r, str))
    return [iter(r) for r in results if not isinstance(r, str)]


def verify_command(
    config: Annotated[Path | None, typer.Option(help="Verify the local node's DB.")] = None,
    node: Annotated[str | None, typer.Option(help="Verify a node's log over gRPC.")] = None,
    network: Annotated[Path | None, typer.Option(help="Verify every member's log.")] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Manifest with the signers' keys (for --node).")
    ] = None,
    token: Annotated[
        list[str] | None,
        typer.Option(help="log:read token (--network: a network token), or MEMBER=TOKEN."),
    ] = None,
    token_file: TokenFileOption = None,
    tls_config: TlsConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
) -> None:
    """Check hash chains and signed checkpoints; name the first bad entry (exit 1)."""
    if sum(x is not None for x in (node, network, config)) != 1:
        raise CliError("give exactly one of --config, --node or --network")
    results: list[tuple[str, LogVerdict | str]]
    with progress("verifying") as bar:
        if config is not None:
            results = [_verify_local(config, bar)]
        else:
            values = token_values(token or [], token_file)
            how = _Remote(values, tls_from_config(tls_config))
            results = _verify_members(node, network, manifest, how, bar)
    if as_json:
        print_json(verdicts_document(results))
    else:
        _print_verdicts(results)
    if any(isinstance(verdict, str) or not verdict.ok for _, verdict in results):
        raise typer.Exit(EXIT_CHECK_FAILED)


def _counted(entries: Iterable[LogEntry], bar: Progress, total: int | None) -> Iterator[LogEntry]:
    """The entries, advancing the progress bar as the verifier reads them."""
    task = bar.add_task("log", total=total)
    for entry in entries:
        yield entry
        bar.advance(task)


def _verify_local(config: Path, bar: Progress) -> tuple[str, LogVerdict]:
    with open_local(load_settings(config), clock=whole_second_clock) as local:
        manifest_now = local.manifests.current()
        with local.engine.connect() as conn:
            checkpoints = load_checkpoints(conn, local.member)
            total = max((c.size for c in checkpoints), default=None)
            entries = _counted(load_entries(conn), bar, total)
            verdict = verify_log(entries, checkpoints, manifest_now)
    return local.member, verdict


@dataclass(frozen=True, slots=True)
class _Remote:
    """How members are asked: the ``--token`` values and the TLS identity (None: plaintext)."""

    tokens: Sequence[str]
    tls: ClientTls | None


def _verify_members(
    node: str | None,
    network: Path | None,
    manifest: Path | None,
    how: _Remote,
    bar: Progress,
) -> list[tuple[str, LogVerdict | str]]:
    """Verify over gRPC every member's log (``--network``) or the one at ``--node``; a member
    that cannot be read is named with why instead of a verdict."""
    source = network if network is not None else manifest
    if source is None:
        raise CliError("--node needs --manifest (the network manifest with the keys)")
    m = _manifest_file(source)
    if network is not None:
        tokens = parse_network_tokens(how.tokens, m)
        targets = [(x.id, x.endpoint) for x in m.members]
    else:
        default, per_member = _tokens(how.tokens)
        tokens = NetworkTokens(default, per_member)
        targets = [(_member_at(m, node or ""), node or "")]
    results: list[tuple[str, LogVerdict | str]] = []
    for member_id, address in targets:
        token = tokens.token_for(member_id)
        verdict: LogVerdict | str | None = plaintext_refusal(member_id, address, token, how.tls)
        try:
            if verdict is None:
                verdict = _verify_remote(member_id, address, token, how.tls, m, bar)
        except grpc.RpcError as error:
            verdict = member_failure(member_id, address, error)
        results.append((member_id, verdict))
    return results


def verdicts_document(results: Sequence[tuple[str, LogVerdict | str]]) -> dict[str, Any]:
    """The verdicts for scripts: ``intact`` overall, and per log the first bad entry (or, for
    a log that could not be read, ``error``: why)."""
    return {
        "intact": all(not isinstance(v, str) and v.ok for _, v in results),
        "logs": [
            {"node": member_id, "intact": False, "error": verdict}
            if isinstance(verdict, str)
            else {
                "node": member_id,
                "entries": verdict.entries,
                "checkpoints": verdict.checkpoints,
                "intact": verdict.ok,
                "first_bad": None
                if verdict.first_bad is None
                else {"index": verdict.first_bad.idx, "problem": verdict.first_bad.problem},
            }
            for member_id, verdict in results
        ],
    }


def _print_verdicts(results: Sequence[tuple[str, LogVerdict | str]]) -> None:
    """One row per verified log (or per log that could not be read, with why)."""
    table = Table("node", "entries", "checkpoints", "result")
    table.columns[0].no_wrap = True
    table.columns[3].overflow = "fold"
    for member_id, verdict in results:
        if isinstance(verdict, str):
            table.add_row(member_id, "-", "-", f"{check_mark(False)} not read: {verdict}")
            continue
        problem = verdict.first_bad
        table.add_row(
            member_id,
            str(verdict.entries),
            str(verdict.checkpoints),
            f"{check_mark(True)} intact"
            if problem is None
            else f"{check_mark(False)} entry {problem.idx}: {problem.problem}",
        )
    out().print(table)


def _member_at(manifest: Manifest, address: str) -> str:
    for m in manifest.members:
        if m.endpoint == address:
            return m.id
    raise CliError(f"--node {address}: no member of the manifest has that endpoint")


def _verify_remote(
    member: str,
    address: str,
    token: str | None,
    tls: ClientTls | None,
    manifest: Manifest,
    bar: Progress,
) -> LogVerdict:
    checkpoints: list[Checkpoint] = []
    with LogClient(address, token=token, tls=tls) as client:
        try:
            checkpoints.append(checkpoint_from_proto(client.checkpoint()))
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.NOT_FOUND:
                raise
        checkpoints = [c for c in checkpoints if c.member == member] or checkpoints
        total = max((c.size for c in checkpoints), default=None)
        entries = _counted((entry_from_proto(e) for e in client.entries()), bar, total)
        return verify_log(entries, checkpoints, manifest)


def _label(node: str, entries: Iterator[LogEntry]) -> Iterator[_Row]:
    for e in entries:
        yield _Row(node, e)


def _local_entries(config: Path, **filters: Any) -> Iterator[LogEntry]:
    from exchange.store.routing_log import LogFilter, list_entries

    with open_local(load_settings(config)) as local:
        after = -1
        while True:
            with local.engine.connect() as conn:
                page, nxt = list_entries(
                    conn,
                    LogFilter(after_index=after, page_size=1000, **filters),
                )
            yield from page
            if nxt is None:
                return
            after = nxt


def _print_rows(
    rows: Iterator[_Row], *, as_json: bool, limit: int, nodes: int, report: str = ""
) -> None:
    console = out()
    for shown, row in enumerate(rows):
        if shown >= limit:
            break
        if as_json:
            print(json.dumps(entry_document(row), ensure_ascii=False))
        else:
            for line in entry_lines(row, with_node=nodes > 1, report=report or None):
                console.print(line)


def entry_document(row: _Row) -> dict[str, Any]:
    e = row.entry
    return {
        "node": row.node,
        "index": e.idx,
        "at": e.at.isoformat(),
        "kind": e.kind,
        "report_id": e.report_id,
        "member": e.member,
        "country": e.country,
        "detail": json.loads(e.detail),
        "entry_hash": e.entry_hash.hex(),
    }


DETAIL_CHARS = 160  # of the entry's detail in the listing; --json has all of it


def entry_lines(row: _Row, *, with_node: bool, report: str | None = None) -> list[str]:
    """One entry in 80 columns: index, time, kind and the report id on the first line; who,
    where and the detail as ``key=value`` words below, wrapped between words so an id in it
    is never cut (the detail is shortened at ``DETAIL_CHARS``). A batch's entry is shown
    without its list of reports, with what it says of ``report`` (the listing's filter)."""
    e = row.entry
    first = f"{e.idx:>5}  {_time(e.at)}  {e.kind:<16} {e.report_id or ''}".rstrip()
    who = [f"[{row.node}]"] if with_node else []
    who += [e.member or "-", e.country or "--"]
    detail = _detail_words(e.detail, report)
    if len(detail) > DETAIL_CHARS:
        detail = detail[: DETAIL_CHARS - 1].rsplit(" ", 1)[0] + " …"
    return [
        first,
        *textwrap.wrap(
            " ".join(who) + "  " + detail,
            WIDTH,
            initial_indent=" " * 7,
            subsequent_indent=" " * 9,
            break_long_words=False,
            break_on_hyphens=False,
        ),
    ]


def _detail_words(detail: str, report: str | None = None) -> str:
    try:
        fields = described(detail, report) or json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(fields, dict):
        return detail
    return " ".join(
        f"{key}={value}"
        if isinstance(value, str) and value and " " not in value
        else f"{key}={json.dumps(value, ensure_ascii=False, separators=(',', ':'))}"
        for key, value in fields.items()
    )


WIDTH = 80


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ")
