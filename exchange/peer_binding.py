"""With mutual TLS, the TLS client must be the member that signed what it sends.

A valid certificate of member A must not carry envelopes (or hellos) signed by member B: the
manifest names each member's ``tls_identity`` and the client's certificate must match it. One
rule for every signed thing a peer sends over the Exchange service (receiver.py, hellos.py).
"""

from __future__ import annotations

from auth.errors import PermissionDenied
from auth.manifest import Manifest
from auth.tls import peer_matches


def check_peer(manifest: Manifest, member: str, certificate: bytes | None) -> None:
    """Raise ``PermissionDenied`` unless ``certificate`` is ``member``'s TLS identity."""
    identity = manifest.member(member).tls_identity
    if identity is None or certificate is None:
        raise PermissionDenied(
            f"member {member} has no TLS identity in the manifest"
            if identity is None
            else "no client certificate"
        )
    if not peer_matches(certificate, identity):
        raise PermissionDenied(
            f"the TLS client is not member {member} (certificate does not match its tls_identity)"
        )
