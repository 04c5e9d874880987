"""mTLS material: CA, node certificates, fingerprints and SPIFFE ids bound to members."""

from __future__ import annotations

import datetime as dt

import pytest

from auth.tls import (
    TlsError,
    create_ca,
    fingerprint,
    issue_node_certificate,
    peer_matches,
    spiffe_ids,
)

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


def test_node_certificate_carries_member_identity_and_hosts() -> None:
    ca = create_ca("ihx test CA", now=NOW)
    node = issue_node_certificate(ca, "nl-eokm", hosts=["localhost", "127.0.0.1"], now=NOW)
    assert spiffe_ids(node.certificate_pem) == ("spiffe://ihx/nl-eokm",)
    assert node.fingerprint.startswith("sha256:")
    assert len(node.fingerprint) == len("sha256:") + 64
    assert peer_matches(node.certificate_pem, node.fingerprint)
    assert peer_matches(node.certificate_pem, "spiffe://ihx/nl-eokm")


def test_another_members_certificate_from_the_same_ca_does_not_match() -> None:
    ca = create_ca("ihx test CA", now=NOW)
    nl = issue_node_certificate(ca, "nl-eokm", hosts=["localhost"], now=NOW)
    de = issue_node_certificate(ca, "de-eco", hosts=["localhost"], now=NOW)
    assert not peer_matches(de.certificate_pem, nl.fingerprint)
    assert not peer_matches(de.certificate_pem, "spiffe://ihx/nl-eokm")
    assert not peer_matches(de.certificate_pem, "something-else")


def test_bad_pem_is_a_clear_error() -> None:
    with pytest.raises(TlsError, match="not a PEM certificate"):
        fingerprint(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
