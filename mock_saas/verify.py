"""Signed-JWT checks shared by the API (access tokens) and the token endpoint (ID-JAGs).

RFC 8725 section 3.1: the algorithm comes from an asymmetric allow-list, never from the
token alone; section 3.8/3.9: the issuer is trusted first and its own keys verify the
signature. Time claims follow RFC 7519 section 4.1.4/4.1.5/4.1.6.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from mock_saas.keys import ASYMMETRIC_ALGORITHMS, KeyUnavailable, TrustStore

CLOCK_SKEW = 60
"""Seconds of leeway for `iat` and `nbf` (never for `exp`: expired means expired)."""


class JwtRejected(Exception):
    """The JWT is not acceptable; the message is the reason recorded and returned."""


def describe(exc: jwt.InvalidTokenError) -> str:
    """A short reason for a PyJWT validation failure."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the token audience does not include this resource"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token signature is invalid"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token has no {exc.claim} claim"
    return f"the token is invalid ({type(exc).__name__})"


async def verify_jwt(
    trust: TrustStore,
    token: str,
    header: dict[str, Any],
    unverified: dict[str, Any],
    *,
    audience: str | None,
    require: tuple[str, ...],
) -> dict[str, Any]:
    """Verify `token` (whose unverified header and claims are given) and return its claims.

    The issuer must be trusted and its key (by `kid`) must verify the signature; `exp` must
    be in the future; `iat` and `nbf`, if present, not in the future. With `audience`, the
    `aud` claim must contain it (RFC 7519 section 4.1.3).
    """
    alg = header.get("alg")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise JwtRejected(f"alg {alg!r} is not allowed")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JwtRejected("kid is not a string")
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not trust.trusts(issuer):
        raise JwtRejected(f"issuer {issuer!r} is not trusted")
    try:
        key = await trust.key(issuer, kid, alg)
    except KeyUnavailable as exc:
        raise JwtRejected(f"no verification key: {exc}") from exc
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            options={
                "verify_aud": audience is not None,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["exp", *require],
            },
            leeway=0,
        )
    except jwt.InvalidTokenError as exc:
        raise JwtRejected(describe(exc)) from exc
    now = time.time()
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, int | float) or value > now + CLOCK_SKEW):
            raise JwtRejected(f"{name} is in the future")
    return claims
