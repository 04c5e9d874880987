"""Which bearer tokens a node accepts: one place for the node's gRPC edge and ``ihx web``.

``token_policy`` joins the node's own issuer with the external issuers of ``[auth] jwks`` (an
external one may not claim the node's own issuer name) for the node's audience, leeway and
longest lifetime. ``own_issuer`` is the node's issuer as the manifest states it — the member's
unrevoked keys — for a process without the private key (``ihx web``); the node itself passes
the issuer of the key it signs with.
"""

from __future__ import annotations

from datetime import timedelta

from auth.errors import TrustConfigError
from auth.manifest import Manifest
from auth.tokens import TokenPolicy, TrustedIssuer, load_jwks_issuers, node_issuer
from exchange.errors import ConfigError
from exchange.settings import Settings


def token_policy(settings: Settings, member: str, own: TrustedIssuer) -> TokenPolicy:
    issuers = {own.issuer: own}
    if settings.jwks_path is not None:
        external = load_jwks_issuers(settings.jwks_path)
        if own.issuer in external:
            raise TrustConfigError(
                f"{settings.jwks_path}: issuer {own.issuer!r} is this node's own"
            )
        issuers.update(external)
    return TokenPolicy(
        audience=member,
        issuers=issuers,
        leeway=timedelta(seconds=settings.token_leeway_s),
        max_lifetime=timedelta(seconds=settings.max_token_lifetime_s),
    )


def own_issuer(manifest: Manifest, member: str, issuer: str) -> TrustedIssuer:
    """``member``'s issuer with its unrevoked keys in ``manifest``."""
    found = manifest.find_member(member)
    if found is None:
        raise ConfigError(f"node.member {member!r} is not a member of the manifest")
    keys = [k for k in found.keys if k.revoked_at is None]
    if not keys:
        raise ConfigError(f"{member} has no unrevoked key in the manifest")
    issuers = [node_issuer(k.public_key, issuer) for k in keys]
    return TrustedIssuer(
        issuer, {kid: key for i in issuers for kid, key in i.keys.items()}, ("EdDSA",)
    )
