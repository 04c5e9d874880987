"""``ihx tls``: a development CA and node certificates for mutual TLS between nodes.

Production may use any CA; what binds a certificate to a member is the manifest's
``tls_identity`` (the printed fingerprint or SPIFFE id), checked by the receiving node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auth.tls import Issued, create_ca, issue_node_certificate, read_pem
from common.clock import whole_second_clock
from exchange.cli.common import CliError, out, write_atomic


def _write(directory: Path, name: str, issued: Issued) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / f"{name}.crt", issued.certificate_pem)
    write_atomic(directory / f"{name}.key", issued.key_pem, mode=0o600)


def register(app: typer.Typer) -> None:
    tls = typer.Typer(help="Certificates for mutual TLS between nodes.", no_args_is_help=True)
    app.add_typer(tls, name="tls")

    @tls.command("ca")
    def ca(
        out_dir: Annotated[Path, typer.Option("--out", help="Directory for ca.crt and ca.key.")],
        name: Annotated[str, typer.Option(help="CA common name.")] = "ihx development CA",
    ) -> None:
        """Create a development certificate authority."""
        if (out_dir / "ca.key").exists():
            raise CliError(f"{out_dir / 'ca.key'}: exists; refusing to overwrite a CA key")
        _write(out_dir, "ca", create_ca(name, now=whole_second_clock()))
        out().print(f"CA written to {out_dir}/ca.crt and ca.key")

    @tls.command("node")
    def node(
        ca_dir: Annotated[Path, typer.Option("--ca", help="Directory with ca.crt and ca.key.")],
        member: Annotated[str, typer.Option(help="Member id the certificate is for.")],
        host: Annotated[list[str], typer.Option(help="DNS name or IP of the node.")],
        out_dir: Annotated[Path, typer.Option("--out", help="Directory for node.crt/.key.")],
    ) -> None:
        """Issue a node certificate (server and client auth) signed by the CA."""
        if (out_dir / "node.key").exists():
            raise CliError(f"{out_dir / 'node.key'}: exists; refusing to overwrite a node key")
        authority = Issued(
            read_pem(ca_dir / "ca.crt", "CA certificate"), read_pem(ca_dir / "ca.key", "CA key")
        )
        issued = issue_node_certificate(authority, member, hosts=host, now=whole_second_clock())
        _write(out_dir, "node", issued)
        out().print(f"certificate for {member} written to {out_dir}/node.crt and node.key")
        out().print(f'manifest tls_identity = "{issued.fingerprint}"')
        out().print(f'  (or the SPIFFE id "spiffe://ihx/{member}")')
