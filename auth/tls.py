"""TLS material for mutual TLS between nodes, and binding a peer certificate to a member.

``ihx tls`` uses ``create_ca`` and ``issue_node_certificate`` to make a development CA and node
certificates (ECDSA P-256, SAN with the node's DNS names/IPs and a SPIFFE-style URI
``spiffe://ihx/<member>``); production may use any CA. A valid certificate is not enough to
speak as a member: the manifest names each member's ``tls_identity`` — either
``sha256:<fingerprint of the DER certificate>`` or the URI SAN — and the receiver checks that
the TLS peer is the member that signed the envelope, so member A cannot speak as B even with a
certificate from the same CA.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from auth.errors import AuthError

SPIFFE_PREFIX = "spiffe://ihx/"


class TlsError(AuthError):
    code = "tls"


@dataclass(frozen=True, slots=True)
class Issued:
    certificate_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate_pem)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_ca(name: str, *, now: dt.datetime, days: int = 3650) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_node_certificate(
    ca: Issued,
    member: str,
    *,
    hosts: list[str],
    now: dt.datetime,
    days: int = 397,
) -> Issued:
    """A certificate for both ends of mTLS (server and client auth) for ``member``."""
    try:
        ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem)
        ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    except ValueError as error:
        raise TlsError(f"CA files are not a PEM certificate and key: {error}") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TlsError("the CA key must be an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(SPIFFE_PREFIX + member)]
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def fingerprint(certificate_pem: bytes) -> str:
    """``sha256:<hex>`` of the DER certificate — the value for a manifest's tls_identity."""
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError as error:
        raise TlsError(f"not a PEM certificate: {error}") from None
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def spiffe_ids(certificate_pem: bytes) -> tuple[str, ...]:
    cert = x509.load_pem_x509_certificate(certificate_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        u
        for u in san.get_values_for_type(x509.UniformResourceIdentifier)
        if u.startswith(SPIFFE_PREFIX)
    )


def peer_matches(certificate_pem: bytes, tls_identity: str) -> bool:
    """Does the TLS peer's certificate carry the identity the manifest names for a member?"""
    if tls_identity.startswith("sha256:"):
        return fingerprint(certificate_pem) == tls_identity.lower()
    if tls_identity.startswith(SPIFFE_PREFIX):
        return tls_identity in spiffe_ids(certificate_pem)
    return False


def read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsError(f"{path}: cannot read the {what}: {error.strerror}") from None
