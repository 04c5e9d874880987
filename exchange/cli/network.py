"""``ihx network …``: the coordinator's tools to build, edit, sign and verify the manifest.

The manifest is kept as a plain TOML (or JSON) document that the coordinator edits only through
these commands; each one loads it, applies one builder from ``auth.manifest`` (which re-validates
the whole manifest, so an edit that would make it invalid is refused and the file is left as it
was), writes it back atomically and prints what changed. ``set-reader`` trusts a member
network-wide for read scopes. ``sign`` turns it into the signed JSON file that nodes load;
``verify`` checks such a file against trusted keys or against the current
signed manifest (as a node would: signature by a current coordinator key, higher epoch).

Times (``--not-before``, ``--retire-after``, ``--at``) accept ``now``, ``+7d``-style offsets and
RFC 3339. Public keys accept base64 or a key file (private or public PEM).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from auth.errors import AuthError, ManifestError, ManifestRejected, SignatureInvalid
from auth.keys import SigningKey
from auth.manifest import (
    NETWORK_SCOPES,
    Manifest,
    Member,
    MemberKey,
    accept_update,
    add_member,
    bump_epoch,
    load_manifest,
    load_signed_manifest,
    manifest_to_json,
    manifest_to_toml,
    parse_manifest,
    parse_signed_manifest,
    replace_member,
    revoke_key,
    rotate_key,
    set_network_reader,
    set_orphan_rule,
    set_tls_identity,
    sign_manifest,
)
from common.clock import system_clock, whole_second_clock
from exchange.cli.common import (
    EXIT_CHECK_FAILED,
    CliError,
    check_mark,
    err,
    format_time,
    out,
    parse_time,
    public_key_from,
    split_list,
    write_atomic,
)

network_app = typer.Typer(help="Build, sign and verify the network manifest.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="The manifest document (.toml or .json).")]


def register(app: typer.Typer) -> None:
    app.add_typer(network_app, name="network")
    for name, command in (
        ("keygen", keygen_command),
        ("create", create_command),
        ("add-member", add_member_command),
        ("update-member", update_member_command),
        ("set-orphan", set_orphan_command),
        ("set-reader", set_reader_command),
        ("rotate-key", rotate_key_command),
        ("revoke-key", revoke_key_command),
        ("sign", sign_command),
        ("verify", verify_command),
    ):
        network_app.command(name)(command)


def _save(manifest: Manifest, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        text = manifest_to_toml(manifest)
    elif suffix == ".json":
        text = manifest_to_json(manifest)
    else:
        raise CliError(f"{path}: a manifest document is .toml or .json")
    write_atomic(path, text.encode("utf-8"))


def _countries(values: list[str]) -> frozenset[str]:
    return frozenset(c.upper() for c in split_list(values))


def _describe_key(key: MemberKey) -> str:
    parts = [f"{key.key_id} from {format_time(key.not_before)}"]
    if key.not_after is not None:
        parts.append(f"until {format_time(key.not_after)}")
    if key.revoked_at is not None:
        parts.append(f"revoked at {format_time(key.revoked_at)}")
    return " ".join(parts)


def _describe_member(member: Member) -> str:
    countries = ",".join(sorted(member.countries)) or "no countries"
    return f"{member.id} ({member.name}; {countries}; {member.endpoint})"


# -- keys and creation -------------------------------------------------------------------------


def keygen_command(
    out_file: Annotated[Path, typer.Argument(metavar="OUT", help="The new key file (PEM).")],
) -> None:
    """Create an Ed25519 key (a coordinator key or a node key); never overwrites a file."""
    key = SigningKey.generate()
    key.save(out_file)
    console = out()
    console.print(f"wrote {out_file} (mode 0600)")
    console.print(f"key id      {key.key_id}")
    console.print(f"public key  {key.public.to_b64()}")


def create_command(
    file: FileArg,
    network: Annotated[str, typer.Option("--network", help="The network's name.")],
    coordinator: Annotated[str, typer.Option("--coordinator", help="The coordinator member id.")],
    coordinator_key: Annotated[
        str,
        typer.Option(
            "--coordinator-key", help="The manifest signing key: key file or base64 public key."
        ),
    ],
    endpoint: Annotated[
        str, typer.Option("--endpoint", help="The coordinator node's gRPC endpoint HOST:PORT.")
    ],
    public_key: Annotated[
        str, typer.Option("--public-key", help="The coordinator node's key (base64 or file).")
    ],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    countries: Annotated[
        list[str] | None, typer.Option("--countries", help="Countries the coordinator serves.")
    ] = None,
) -> None:
    """Write a new manifest (epoch 1) with the coordinator as its first member."""
    if file.exists():
        raise CliError(f"{file}: already exists; refusing to overwrite a manifest")
    now = whole_second_clock()
    manifest = Manifest(
        network=network,
        epoch=1,
        issued_at=now,
        members=(
            Member(
                id=coordinator,
                name=name or coordinator,
                countries=_countries(countries or []),
                endpoint=endpoint,
                keys=(MemberKey.of(public_key_from(public_key, option="--public-key"), now),),
            ),
        ),
        orphan_rules={},
        coordinator=coordinator,
        coordinator_keys=(
            MemberKey.of(public_key_from(coordinator_key, option="--coordinator-key"), now),
        ),
    )
    _save(manifest, file)
    console = out()
    console.print(f"created {file}: network {network}, epoch 1")
    console.print(f"coordinator  {_describe_member(manifest.members[0])}")
    console.print(f"signing key  {_describe_key(manifest.coordinator_keys[0])}")


# -- members -----------------------------------------------------------------------------------


def add_member_command(
    file: FileArg,
    member_id: Annotated[str, typer.Option("--id", help="Member id, e.g. nl-eokm.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    endpoint: Annotated[str, typer.Option("--endpoint", help="gRPC endpoint HOST:PORT.")],
    public_key: Annotated[
        str, typer.Option("--public-key", help="The node's key (base64 or key file).")
    ],
    countries: Annotated[
        list[str] | None, typer.Option("--countries", help="Countries served, e.g. NL,BE.")
    ] = None,
    not_before: Annotated[
        str, typer.Option("--not-before", help="When the key becomes valid (default now).")
    ] = "now",
) -> None:
    """Add a member with one signing key."""
    manifest = load_manifest(file)
    now = whole_second_clock()
    member = Member(
        id=member_id,
        name=name,
        countries=_countries(countries or []),
        endpoint=endpoint,
        keys=(
            MemberKey.of(
                public_key_from(public_key, option="--public-key"),
                parse_time(not_before, option="--not-before", now=now),
            ),
        ),
    )
    _save(add_member(manifest, member), file)
    out().print(f"added member {_describe_member(member)} with key {_describe_key(member.keys[0])}")


def update_member_command(
    file: FileArg,
    member_id: Annotated[str, typer.Option("--id", help="The member to change.")],
    name: Annotated[str | None, typer.Option("--name")] = None,
    countries: Annotated[
        list[str] | None,
        typer.Option("--countries", help="The new list of countries (replaces the old one)."),
    ] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint")] = None,
    tls_identity: Annotated[
        str | None,
        typer.Option(
            "--tls-identity",
            metavar="ID",
            help="The node certificate's sha256:… fingerprint (printed by `ihx tls node`) or "
            "spiffe://ihx/MEMBER; - removes it.",
        ),
    ] = None,
) -> None:
    """Change a member's name, countries, endpoint or TLS identity (keys: rotate-key)."""
    manifest = load_manifest(file)
    old = manifest.member(member_id)
    if name is None and countries is None and endpoint is None and tls_identity is None:
        raise CliError("nothing to change: give --name, --countries, --endpoint or --tls-identity")
    new = dataclasses.replace(
        old,
        name=old.name if name is None else name,
        countries=old.countries if countries is None else _countries(countries),
        endpoint=old.endpoint if endpoint is None else endpoint,
    )
    updated = replace_member(manifest, new)
    if tls_identity is not None:
        updated = set_tls_identity(
            updated, member_id, None if tls_identity == "-" else tls_identity
        )
        new = updated.member(member_id)
    _save(updated, file)
    _print_changes(old, new)


def _print_changes(old: Member, new: Member) -> None:
    console = out()
    changed = False
    for field_name in ("name", "countries", "endpoint", "tls_identity"):
        before, after = getattr(old, field_name), getattr(new, field_name)
        if before != after:
            changed = True
            if isinstance(before, frozenset):
                before, after = ",".join(sorted(before)) or "-", ",".join(sorted(after)) or "-"
            console.print(f"{new.id} {field_name}: {before or '-'} → {after or '-'}")
    if not changed:
        console.print(f"{new.id}: no change")


def set_orphan_command(
    file: FileArg,
    country: Annotated[str, typer.Argument(metavar="CC", help="A country no member serves.")],
    member_id: Annotated[
        str, typer.Argument(metavar="MEMBER", help="The member it goes to, or - to drop the rule.")
    ],
) -> None:
    """Assign a country without a member to a member (or drop the rule with -)."""
    manifest = load_manifest(file)
    cc = country.upper()
    before = manifest.orphan_rules.get(cc)
    target = None if member_id == "-" else member_id
    _save(set_orphan_rule(manifest, cc, target), file)
    out().print(f"orphan rule {cc}: {before or '-'} → {target or '-'}")


def set_reader_command(
    file: FileArg,
    member_id: Annotated[str, typer.Argument(metavar="MEMBER", help="The member to trust.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", help=f"A scope granted network-wide: {' or '.join(NETWORK_SCOPES)}."
        ),
    ] = None,
    drop: Annotated[
        bool, typer.Option("--drop", help="Trust the member network-wide no longer.")
    ] = False,
) -> None:
    """Let MEMBER's node mint tokens every node accepts, for read scopes only."""
    if drop == bool(scope):
        raise CliError("give --scope (repeatable) or --drop")
    manifest = load_manifest(file)
    before = manifest.network_reader(member_id)
    scopes = frozenset(split_list(scope or []))
    _save(set_network_reader(manifest, member_id, scopes), file)
    shown = ", ".join(sorted(scopes)) or "-"
    was = ", ".join(sorted(before.scopes)) if before else "-"
    out().print(f"network reader {member_id}: {was} → {shown}")
    if before is None and not manifest.network_readers:
        # The first reader makes the field appear: nodes older than this release refuse a
        # manifest with it, and an epoch a node cannot take stops delivery to it.
        err().print(
            "note: nodes older than this release refuse a manifest with network readers; "
            "sign it only once every member's node is upgraded"
        )


def _current_key(member: Member, at: datetime) -> MemberKey:
    valid = [k for k in member.keys if k.valid_at(at)]
    if not valid:
        raise CliError(f"member {member.id} has no key valid now: give --old-key-id")
    return max(valid, key=lambda k: k.not_before)


def rotate_key_command(
    file: FileArg,
    member_id: Annotated[str, typer.Option("--member", help="The member whose key changes.")],
    new_public_key: Annotated[
        str, typer.Option("--new-public-key", help="The new key (base64 or key file).")
    ],
    retire_after: Annotated[
        str,
        typer.Option("--retire-after", help="Until when the old key stays valid (default now)."),
    ] = "now",
    old_key_id: Annotated[
        str | None,
        typer.Option("--old-key-id", help="The key to retire (default: the newest valid key)."),
    ] = None,
) -> None:
    """Add a new key valid from now; the old one stays valid until --retire-after."""
    manifest = load_manifest(file)
    now = whole_second_clock()
    member = manifest.member(member_id)
    old = member.key(old_key_id) if old_key_id else _current_key(member, now)
    if old is None:
        raise CliError(f"member {member_id} has no key {old_key_id}")
    retire = parse_time(retire_after, option="--retire-after", now=now)
    if retire < now:
        raise CliError("--retire-after is in the past: a rotation cannot end a key earlier")
    new_key = public_key_from(new_public_key, option="--new-public-key")
    updated = rotate_key(manifest, member_id, old.key_id, new_key, at=now, overlap=retire - now)
    _save(updated, file)
    console = out()
    console.print(f"{member_id}: new key {new_key.key_id} valid from {format_time(now)}")
    console.print(f"{member_id}: old key {old.key_id} retires at {format_time(retire)}")


def revoke_key_command(
    file: FileArg,
    member_id: Annotated[str, typer.Option("--member", help="The member holding the key.")],
    key_id: Annotated[str, typer.Option("--key-id", help="The key to revoke.")],
    at: Annotated[
        str, typer.Option("--at", help="Revoked from this time on (default now).")
    ] = "now",
) -> None:
    """Revoke a key: what it signed before --at stays valid, anything later is refused."""
    manifest = load_manifest(file)
    when = parse_time(at, option="--at", now=whole_second_clock())
    updated = revoke_key(manifest, member_id, key_id, at=when)
    _save(updated, file)
    key = updated.member(member_id).key(key_id)
    assert key is not None
    out().print(f"{member_id}: key {key_id} revoked at {format_time(key.revoked_at)}")


# -- signing and verifying ---------------------------------------------------------------------


def sign_command(
    file: FileArg,
    key_file: Annotated[Path, typer.Option("--key", help="The coordinator's private key file.")],
    out_file: Annotated[Path, typer.Option("--out", help="The signed manifest to write (JSON).")],
    bump: Annotated[
        bool,
        typer.Option("--bump-epoch", help="Raise the epoch (and issue time) first; saves FILE."),
    ] = False,
) -> None:
    """Sign the manifest with a coordinator key, for the nodes to load."""
    manifest = load_manifest(file)
    key = SigningKey.load(key_file)
    if bump:
        manifest = bump_epoch(manifest, issued_at=max(whole_second_clock(), manifest.issued_at))
    mine = next((k for k in manifest.coordinator_keys if k.key_id == key.key_id), None)
    if mine is None:
        raise CliError(f"{key_file}: key {key.key_id} is not a coordinator key of the manifest")
    problem = mine.invalid_reason(manifest.issued_at)
    if problem is not None:
        raise CliError(
            f"{key_file}: key {key.key_id} was {problem} at the manifest's issue time "
            f"{format_time(manifest.issued_at)}: nodes would refuse the signature"
        )
    _refuse_same_epoch(out_file, manifest)
    data = sign_manifest(manifest, key)
    if bump:
        _save(manifest, file)
    write_atomic(out_file, data)
    out().print(f"signed {manifest.network} epoch {manifest.epoch} with {key.key_id} → {out_file}")


def _refuse_same_epoch(out_file: Path, manifest: Manifest) -> None:
    """Nodes take a new manifest only at a higher epoch: changed content needs a new epoch."""
    if not out_file.exists():
        return
    try:
        previous = parse_signed_manifest(out_file.read_bytes()).document
    except AuthError:
        return  # not a signed manifest: it will simply be replaced
    epoch = previous.get("epoch")
    if not isinstance(epoch, int) or epoch < manifest.epoch:
        return
    try:
        same = parse_manifest(previous) == manifest
    except ManifestError:
        same = False
    if not same:
        raise CliError(
            f"{out_file} already holds epoch {epoch} with other content; nodes would not take "
            "this one: sign with --bump-epoch"
        )


def verify_command(
    signed_file: Annotated[Path, typer.Argument(metavar="SIGNED.json")],
    trusted_key: Annotated[
        list[str] | None,
        typer.Option("--trusted-key", help="A coordinator public key to trust (repeatable)."),
    ] = None,
    current: Annotated[
        Path | None,
        typer.Option("--current", help="The signed manifest in force; checks the update rules."),
    ] = None,
) -> None:
    """Check a signed manifest: its signature, and with --current that a node would take it."""
    if bool(trusted_key) == (current is not None):
        raise CliError("give either --trusted-key B64 (repeatable) or --current SIGNED.json")
    data = signed_file.read_bytes()
    document = parse_signed_manifest(data).document
    unverified = parse_manifest(document)
    now = system_clock()
    console = out()
    console.print(
        f"manifest  {unverified.network} epoch {unverified.epoch}, "
        f"issued {format_time(unverified.issued_at)}, coordinator {unverified.coordinator}"
    )
    for member in unverified.members:
        console.print(f"  member  {_describe_member(member)}")
    for cc, member_id in sorted(unverified.orphan_rules.items()):
        console.print(f"  orphan  {cc} → {member_id}")
    for reader in unverified.network_readers:
        console.print(f"  reader  {reader.member} ({', '.join(sorted(reader.scopes))})")
    try:
        if current is not None:
            in_force = parse_manifest(parse_signed_manifest(current.read_bytes()).document)
            accept_update(in_force, data, now)
            detail = (
                f"signed by a coordinator key of epoch {in_force.epoch}, and epoch "
                f"{unverified.epoch} > {in_force.epoch}: a node would take it"
            )
        else:
            keys = [
                MemberKey.of(public_key_from(k, option="--trusted-key"), _SINCE)
                for k in trusted_key or []
            ]
            load_signed_manifest(data, trusted=keys, now=now)
            detail = "signed by a trusted coordinator key"
    except (ManifestRejected, SignatureInvalid) as error:
        console.print(f"{check_mark(False)} signature: {error.message}")
        raise typer.Exit(EXIT_CHECK_FAILED) from None
    console.print(f"{check_mark(True)} signature: {detail}")


_SINCE = datetime(1970, 1, 1, tzinfo=UTC)
