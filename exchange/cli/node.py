"""Commands for one node: ``init``, ``node run``, ``db upgrade`` and ``status``.

``ihx init`` checks everything it is given (member id, manifest signature, GeoIP files, listen
address) and builds the node directory under a temporary name beside the target, renaming it
into place only when the key, settings and migrated database are all there: a failed init leaves
nothing behind. ``ihx node run`` is the composition root's ``Node`` plus signal handling: SIGINT
and SIGTERM stop it gracefully (in-flight RPCs finish, the writer drains, the senders stop).
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from pydantic_core import PydanticCustomError

from auth.keys import SigningKey
from auth.manifest import (
    MEMBER_ID_PATTERN,
    Manifest,
    load_signed_manifest,
    parse_manifest,
    parse_signed_manifest,
)
from common.clock import whole_second_clock
from exchange.cli.common import (
    EXIT_ERROR,
    EXPECTED_ERRORS,
    CliError,
    aligned,
    err,
    error_line,
    out,
    parse_host_specs,
    print_json,
    public_key_from,
    short_time,
)
from exchange.errors import ConfigError
from exchange.local import open_local
from exchange.manifest_store import trust_anchors
from exchange.ops.json_logging import LOG_FORMATS, LogFormat
from exchange.ops.json_logging import configure as configure_logs
from exchange.ops.status import NodeStatus, collect_status, to_document
from exchange.settings import Settings, load_database_url, load_settings
from exchange.settings.fields import check_address
from exchange.store.engine import open_engine
from exchange.store.migrate import current_revision, upgrade
from exchange.tools.provision import DEFAULT_DATABASE_URL, init_database, write_settings
from routing.geoip import GeoIp

node_app = typer.Typer(help="Run a node.", no_args_is_help=True)
db_app = typer.Typer(help="The node database.", no_args_is_help=True)
_log = logging.getLogger("exchange.node")

# Metrics on by default, on loopback: a scraper beside the node (or a port-forward) reads them;
# serving them wider is the operator's choice (the chart sets 0.0.0.0 and a NetworkPolicy).
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"

MetricsListenOption = Annotated[
    str,
    typer.Option(
        "--metrics-listen",
        metavar="HOST:PORT|off",
        help="Serve Prometheus metrics here (metrics.listen in node.toml); 'off' for none.",
    ),
]
ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The node's settings file (node.toml).")
]

DatabaseUrlOption = Annotated[
    str,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="The node's database, migrated here: e.g. "
        "postgresql+psycopg://USER@HOST:5432/DB (default: node.db, SQLite, in DIRECTORY).",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("init")(init_command)
    app.command("status")(status_command)
    app.add_typer(node_app, name="node")
    app.add_typer(db_app, name="db")
    node_app.command("run")(run_command)
    db_app.command("upgrade")(upgrade_command)


# -- init --------------------------------------------------------------------------------------


def init_command(
    directory: Annotated[Path, typer.Argument(help="The new node directory (absent or empty).")],
    member: Annotated[str, typer.Option("--member", help="This hotline's member id.")],
    listen: Annotated[str, typer.Option("--listen", help="gRPC listen address HOST:PORT.")],
    geoip_db: Annotated[Path, typer.Option("--geoip-db", help="Country database (.mmdb).")],
    asn_db: Annotated[Path | None, typer.Option("--asn-db", help="ASN database (.mmdb).")] = None,
    manifest: Annotated[
        Path | None, typer.Option("--manifest", help="The signed network manifest (JSON).")
    ] = None,
    trusted_key: Annotated[
        list[str] | None,
        typer.Option("--trusted-key", help="Base64 coordinator public key (repeatable)."),
    ] = None,
    static: Annotated[
        list[str] | None,
        typer.Option(
            "--static",
            metavar="HOST=IP[,IP…]",
            help="Use a static resolver with these answers instead of DNS (repeatable).",
        ),
    ] = None,
    metrics_listen: MetricsListenOption = DEFAULT_METRICS_LISTEN,
    database_url: DatabaseUrlOption = DEFAULT_DATABASE_URL,
) -> None:
    """Create a node directory: Ed25519 key, node.toml and a migrated database."""
    _check_target(member, directory)
    metrics = _metrics_address(metrics_listen)
    trusted = [public_key_from(k, option="--trusted-key").to_b64() for k in trusted_key or []]
    trust = _read_trust(manifest, trusted)
    static_hosts = parse_host_specs(static, option="--static") if static else None
    country_db = geoip_db.resolve()
    asn_path = asn_db.resolve() if asn_db is not None else None
    GeoIp(country_db, asn_path).close()  # a wrong or corrupt database fails here, not at run

    key = SigningKey.generate()
    _create_directory(
        directory,
        key,
        trust.signed_data,
        lambda work: write_settings(
            work / "node.toml",
            member=member,
            listen=listen,
            trusted_keys=trust.trusted,
            country_db=country_db,
            asn_db=asn_path,
            static_hosts=static_hosts,
            metrics_listen=metrics,
            database_url=database_url,
        ),
    )
    notes = list(trust.notes)
    if trust.network is not None:
        notes.extend(_membership_notes(trust.network, member, key))
    else:
        notes.append(f"put the signed manifest at {directory / 'manifest.json'} before running")
    _print_created(directory, member, listen, key, notes)


def _metrics_address(listen: str) -> str | None:
    """``--metrics-listen``: HOST:PORT, or ``off`` (None)."""
    if listen == "off":
        return None
    try:
        check_address(listen, "--metrics-listen")
    except PydanticCustomError as error:
        raise CliError(str(error)) from None
    return listen


def _check_target(member: str, directory: Path) -> None:
    if not MEMBER_ID_PATTERN.fullmatch(member):
        raise CliError(
            f"--member: {member[:70]!r} is not a member id "
            "(2-63 characters: lower-case letters, digits and '-', not starting with '-')"
        )
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise CliError(f"{directory}: exists and is not an empty directory")


@dataclass(frozen=True)
class _Trust:
    """What ``init`` trusts: the coordinator keys, and the signed manifest when one was given."""

    trusted: list[str]
    signed_data: bytes | None
    network: Manifest | None
    notes: list[str]


def _read_trust(manifest: Path | None, trusted: list[str]) -> _Trust:
    """Check ``--manifest`` against ``--trusted-key``; without keys, trust the manifest's own."""
    if manifest is None:
        if not trusted:
            raise CliError(
                "the node needs the coordinator's public key: give --trusted-key B64 "
                "(or --manifest SIGNED.json to trust its coordinator keys)"
            )
        return _Trust(trusted, None, None, [])
    signed_data = manifest.read_bytes()
    if trusted:
        network = load_signed_manifest(
            signed_data,
            trusted=trust_anchors(trusted),
            now=whole_second_clock(),
        )
        return _Trust(trusted, signed_data, network, [])
    network = parse_manifest(parse_signed_manifest(signed_data).document)
    note = (
        "no --trusted-key given: trusting the coordinator keys of the manifest file "
        f"({', '.join(k.key_id for k in network.coordinator_keys)}); "
        "confirm them with the coordinator out of band"
    )
    return _Trust(
        [k.public_key.to_b64() for k in network.coordinator_keys], signed_data, network, [note]
    )


def _create_directory(
    directory: Path,
    key: SigningKey,
    signed_data: bytes | None,
    write_settings_in: Callable[[Path], None],
) -> None:
    """Build the node directory beside ``directory`` and rename it into place when complete.

    A failure anywhere removes the temporary directory: a failed init leaves nothing behind.
    """
    parent = directory.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp gives mode 0700: the directory holds the private key.
    work = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".init", dir=parent))
    try:
        key.save(work / "node.key")
        if signed_data is not None:
            (work / "manifest.json").write_bytes(signed_data)
        write_settings_in(work)
        try:
            init_database(load_settings(work / "node.toml", env={}))
        except ConfigError as error:
            # Name the directory the user asked for, not the temporary one.
            raise ConfigError(error.message.replace(str(work), str(directory))) from None
        # rename(2) replaces an empty directory, so an existing empty DIR is fine too.
        os.rename(work, directory)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _print_created(
    directory: Path, member: str, listen: str, key: SigningKey, notes: list[str]
) -> None:
    console = out()
    console.print(f"created node directory {directory}")
    console.print(f"member      {member}")
    console.print(f"key id      {key.key_id}")
    console.print(f"public key  {key.public.to_b64()}")
    console.print("")
    console.print("Ask the coordinator to add this node to the manifest:")
    console.print(
        f"  ihx network add-member MANIFEST.toml --id {member} --name NAME --countries CC "
        f"--endpoint {listen} --public-key {key.public.to_b64()}"
    )
    for note in notes:
        err().print(f"note: {note}")


def _membership_notes(network: Manifest, member: str, key: SigningKey) -> list[str]:
    found = network.find_member(member)
    if found is None:
        return [f"{member} is not in the manifest yet (epoch {network.epoch})"]
    if found.key(key.key_id) is None:
        return [
            f"{member} is in the manifest with other keys: add this key with "
            "`ihx network rotate-key` and sign a new epoch"
        ]
    return []


# -- run ---------------------------------------------------------------------------------------


def run_command(
    config: ConfigOption,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            envvar="IHX_LOG_FORMAT",
            help="json: every line one JSON object on stderr (for a log collector); "
            "text: log lines on stderr, 'listening on …' on stdout.",
        ),
    ] = "text",
) -> None:
    """Serve gRPC and deliver the outbox until SIGINT or SIGTERM."""
    level = logging.getLevelNamesMapping().get(log_level.upper())
    if level is None:
        raise CliError(f"--log-level: {log_level!r} is not one of debug, info, warning, error")
    if log_format not in LOG_FORMATS:
        raise CliError(f"--log-format: {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    fmt: LogFormat = log_format
    name = logging.getLevelName(level).lower()
    configure_logs(name, sys.stderr, log_format=fmt)  # before anything can fail
    try:
        settings = load_settings(config)
    except EXPECTED_ERRORS as error:
        if fmt == "text":
            raise
        _log.error("not started: %s", error_line(error))  # JSON too, not ihx's error line
        raise typer.Exit(EXIT_ERROR) from None
    # Never URL paths in logs: report ids only (exchange/ops/json_logging.py).
    configure_logs(name, sys.stderr, log_format=fmt, member=settings.member)
    _serve(settings, _Announcer(fmt == "json"))


class _Announcer:
    """The node's lifecycle lines: a log record when logs are JSON, a line on stdout for text."""

    def __init__(self, as_log: bool) -> None:
        self._as_log = as_log

    def __call__(self, message: str, **fields: str) -> None:
        if self._as_log:
            _log.info(message, extra=fields)
        else:
            out().print(message)
            sys.stdout.flush()


def _serve(settings: Settings, announce: _Announcer) -> None:
    # Imported here: the server (every service, the sender, the writer) is what only this
    # command runs; every other command starts without loading it.
    from exchange.node import build_node

    node = build_node(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            node.start()
        except BaseException:
            node.stop(grace=0)
            raise
        _freeze_startup_heap()
        announce(f"ihx node {settings.member} listening on {node.address}", address=node.address)
        while not stop.wait(0.5):
            pass
        announce("stopping…")
        node.stop()
        announce("stopped")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# The cyclic GC's thresholds once the node runs (CPython's default: 700, 10, 10). See below.
GC_THRESHOLDS = (5000, 10, 10)


def _freeze_startup_heap() -> None:
    """Keep the cyclic GC off what the node built to start: every module, the schema, the
    server — objects that live as long as the process. Each full collection walks every tracked
    object, and a busy node triggers one every few thousand reports: with that heap walked each
    time it was a fifth of bulk intake's CPU. Startup garbage is collected first, so only live
    objects are set aside (``gc.freeze``); what is allocated later is collected as before.

    Then collections are made rarer (``GC_THRESHOLDS``). Under load a node holds thousands of
    reports in flight (read ahead of the writer, sealed, awaiting receipts): objects that live
    for a second, which CPython's defaults walked again at every older collection — and with
    the frozen heap out of the count a full collection came every 70,000 allocations. At the
    defaults, sending at full rate spent 0.64-0.79 s in collections per 25,000 reports, with
    pauses (every Python thread stopped) of up to 113 ms; at these, 0.25-0.36 s and 28-39 ms
    (bench/exchange_throughput.py with gc.callbacks timing; CPython 3.11). The price: cyclic
    garbage waits longer to be freed, at most one full collection per ~500,000 allocations of
    tracked objects (net; CPython's rule on long-lived objects may space them further). Peak
    RSS per node in bench/replay.py's tenth of a year: 274-359 MiB against 271-317 at the
    defaults; (5000, 10, 50), a full collection five times rarer still, saved no more CPU
    there and took the busiest node to 511 MiB.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# -- db ----------------------------------------------------------------------------------------


def upgrade_command(config: ConfigOption) -> None:
    """Run the database migrations up to the newest revision."""
    # Only the DSN: the chart's migration job has no keys, TLS or GeoIP files mounted.
    engine = open_engine(load_database_url(config))
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    if before == after:
        out().print(f"database already at revision {after}")
    else:
        out().print(f"database upgraded from {before or 'empty'} to revision {after}")


# -- status ------------------------------------------------------------------------------------


def status_command(
    config: ConfigOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Counts of reports, cases, outbox and peers from the node's database."""
    with open_local(load_settings(config)) as local:
        status = collect_status(local.engine, local.member)
    if as_json:
        print_json(to_document(status))
    else:
        render_status(status)


def render_status(status: NodeStatus) -> None:
    console = out()
    roles = ", ".join(f"{n} {role}" for role, n in sorted(status.reports_by_role.items()))
    console.print(f"node            {status.member} (schema {status.schema_revision})")
    console.print(f"reports         {roles or 'none'}")
    console.print(f"cases           {status.cases_open} open, {status.cases_total} in total")
    console.print(f"envelopes in    {status.envelopes_received}")
    console.print(f"hash index      {status.hash_index_size} hashes")
    console.print(f"routing log     {status.routing_log_size} entries")
    console.print(f"outbox          {status.outbox_total} reports pending")
    lines: list[str] = []
    if status.outbox:
        lines += aligned(
            [("destination", "pending", "in batches", "oldest")]
            + [
                (p.destination, str(p.reports), str(p.in_batches), short_time(p.oldest) or "-")
                for p in status.outbox
            ]
        )
    if status.peers:
        lines.append("peers")
        lines += aligned(
            [("member", "unreceipted", "delivered", "last heard")]
            + [
                (
                    peer.member,
                    str(peer.unreceipted_batches),
                    str(peer.delivered_reports),
                    short_time(peer.last_heard_at) or "never",
                )
                for peer in status.peers
            ]
        )
        # A failing peer's error is free text: a line of its own, folded at 80 columns.
        for peer in status.peers:
            if peer.failing_since is not None or peer.last_error:
                failing = (
                    f"failing {peer.failures}x since {short_time(peer.failing_since)}"
                    if peer.failing_since is not None
                    else "not failing"
                )
                lines += textwrap.wrap(
                    f"{peer.member}: {failing}; last error: {peer.last_error or '-'}",
                    80,
                    initial_indent="  ",
                    subsequent_indent="    ",
                )
    for line in lines:
        console.print(line)
