"""Error types of the auth part: keys, signatures, manifests.

Each carries a stable machine ``code``; the exchange edge maps them to gRPC status codes once.
"""

from __future__ import annotations

from common.errors import IhxError


class AuthError(IhxError):
    """Base of all auth errors."""

    code = "auth-error"


class KeyFileError(AuthError):
    """A key file is missing, unreadable or not an Ed25519 key."""

    code = "key-file"


class ManifestError(AuthError):
    """A manifest document is malformed; the message names the offending field."""

    code = "manifest-invalid"


class SignatureInvalid(AuthError):
    """A signature does not verify over the bytes received."""

    code = "signature-invalid"


class UnknownKey(AuthError):
    """A key id that no current member holds."""

    code = "unknown-key"


class KeyNotValid(AuthError):
    """The key exists but was not valid (not yet, expired or revoked) at signing time."""

    code = "key-not-valid"


class ProofInvalid(AuthError):
    """A Merkle root or inclusion proof does not match the bytes."""

    code = "proof-invalid"


class ManifestRejected(AuthError):
    """A new manifest is refused: bad signature or an epoch not higher than the current one."""

    code = "manifest-rejected"


class ManifestNotYetValid(ManifestRejected):
    """A manifest issued later than our clock allows: refused now, acceptable once time passes."""

    code = "manifest-not-yet-valid"


class KeyFormatError(AuthError):
    """Bytes or text that should encode an Ed25519 public key do not."""

    code = "key-format"


class UnknownMember(AuthError):
    """A member id that the current manifest does not list."""

    code = "unknown-member"


class TokenInvalid(AuthError):
    """A partner's bearer token is refused; ``code`` says why (``token-alg``, ``token-expired``…).

    The message is short and safe to return to the caller: it never repeats the token or any value
    taken from it.
    """

    code = "token-invalid"


class PermissionDenied(AuthError):
    """A valid token whose scopes do not allow the call; the message names the missing scope."""

    code = "permission-denied"


class TrustConfigError(AuthError):
    """The trusted-issuer configuration (a JWKS file, an issuer, a policy) is unusable.

    The message names the offending field path, e.g. ``issuers[0].jwks.keys[1].kty``.
    """

    code = "trust-config"


class TokenIssueError(AuthError):
    """The node refuses to mint a token: a lifetime over the maximum, a bad subject or scope."""

    code = "token-issue"


class IssuerUnavailable(AuthError):
    """An external issuer's keys cannot be had now (its IdP is down, slow or answers nonsense).

    Not the caller's fault: the edge answers UNAVAILABLE, and tokens of every other issuer are
    still verified.
    """

    code = "token-issuer-unavailable"
