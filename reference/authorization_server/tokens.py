"""JWT access tokens (RFC 9068) and refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from reference.authorization_server import dpop
from reference.authorization_server.context import Context
from reference.authorization_server.keys import ALGORITHM
from reference.authorization_server.store import AccessTokenRecord, Grant, now, random_token

LONG_LIFETIME = 86400  # the `at-long-lived` defect: a day
REFRESH_TOKEN_LIFETIME = 86400  # OAuth 2.1 §4.3.3: refresh tokens expire (here after a day)


@dataclass
class IssuedTokens:
    access_token: str
    expires_in: int
    scope: list[str]
    refresh_token: str | None = None
    issued_token_type: str | None = None  # RFC 8693 §2.2.1, token exchange responses only
    resource: str | None = None  # ID-JAG §4.4.1: the granted resource, stated in the response
    token_type: str = "Bearer"  # RFC 9449 §5: `DPoP` when the access token is bound to a key


def access_token_lifetime(ctx: Context, client_id: str | None = None) -> int:
    """Seconds an access token lives (MCP-1125 §11.2: short-lived); a test-hook override for
    the client wins."""
    override = ctx.store.lifetimes.get(client_id or "")
    if override is not None and override.access_token is not None:
        return override.access_token
    if ctx.defect("at-long-lived"):
        return LONG_LIFETIME
    return ctx.settings.access_token_lifetime


def refresh_token_lifetime(ctx: Context, client_id: str) -> float | None:
    """Seconds a refresh token of `client_id` lives; None (never expires) under
    `rt-never-expires`."""
    if ctx.defect("rt-never-expires"):
        return None
    override = ctx.store.lifetimes.get(client_id)
    if override is not None and override.refresh_token is not None:
        return override.refresh_token
    return REFRESH_TOKEN_LIFETIME


def sign_access_token(
    ctx: Context, claims: dict[str, Any], *, client_id: str, typ: str, grant_id: str | None
) -> str:
    """Sign a JWT access token with the AS key and remember it by `jti` for introspection and
    revocation. `claims` must hold jti, sub, scope (a string), aud, iat and exp; `client_id`
    is the client the token was issued to, whether or not the claims name it. Inside a DPoP
    token request the token is bound to the proof key (RFC 9449 §6.1 `cnf.jkt`)."""
    claims = dpop.confirm(claims)
    token = jwt.encode(
        claims, ctx.key.private_key, algorithm=ALGORITHM, headers={"kid": ctx.key.kid, "typ": typ}
    )
    ctx.store.access_tokens[claims["jti"]] = AccessTokenRecord(
        jti=claims["jti"],
        grant_id=grant_id,
        client_id=client_id,
        user=claims["sub"],
        scope=claims["scope"].split(),
        aud=claims["aud"],
        iat=claims["iat"],
        exp=claims["exp"],
    )
    return token


def mint_access_token(
    ctx: Context,
    *,
    client_id: str,
    user: str,
    scope: list[str],
    resource: str,
    auth_time: int,
    grant_id: str | None,
) -> tuple[str, int]:
    """Sign an RFC 9068 access token and remember its `jti`.

    RFC 9068 §2.1: header `typ` is `at+jwt`; §2.2: claims iss, exp, aud, sub, client_id, iat,
    jti (+ auth_time, scope). RFC 8707 §2.2: `aud` is the requested resource.
    Returns the token and its lifetime in seconds.
    """
    iat = now()
    lifetime = access_token_lifetime(ctx, client_id)
    # The defect: one fixed audience (the MCP server) whatever resource was requested.
    aud = ctx.settings.mcp_url if ctx.defect("token-audience-ignores-resource") else resource
    claims: dict[str, Any] = {
        "iss": ctx.issuer,
        "sub": user,
        "aud": aud,
        "client_id": client_id,
        "scope": " ".join(scope),
        "iat": iat,
        "exp": iat + lifetime,
        "jti": random_token(16),
        "auth_time": auth_time,
    }
    if ctx.defect("jwt-missing-client-id"):
        del claims["client_id"]
    typ = "JWT" if ctx.defect("jwt-typ-plain-jwt") else "at+jwt"
    token = sign_access_token(ctx, claims, client_id=client_id, typ=typ, grant_id=grant_id)
    return token, lifetime


def issue_for_grant(
    ctx: Context, grant: Grant, *, scope: list[str], with_refresh_token: bool
) -> IssuedTokens:
    """An access token (narrowed to `scope`) plus, optionally, a new refresh token."""
    token, lifetime = mint_access_token(
        ctx,
        client_id=grant.client_id,
        user=grant.user,
        scope=scope,
        resource=grant.resource,
        auth_time=grant.auth_time,
        grant_id=grant.id,
    )
    rt = None
    if with_refresh_token:
        rt = ctx.store.new_refresh_token(grant, refresh_token_lifetime(ctx, grant.client_id)).token
        dpop.bind_refresh_token(ctx, rt)
    token_type = dpop.token_type(ctx, dpop.bound_key())
    return IssuedTokens(token, lifetime, scope, rt, token_type=token_type)


def decode_own_access_token(
    ctx: Context, token: str, *, verify_exp: bool = True
) -> dict[str, Any] | None:
    """Claims of a JWT this AS signed, or None if it is not one (signature, issuer, expiry)."""
    try:
        return jwt.decode(
            token,
            ctx.key.public_key,
            algorithms=[ALGORITHM],
            issuer=ctx.issuer,
            options={
                "verify_aud": False,
                "verify_exp": verify_exp,
                "require": ["jti", "exp", "iat"],
            },
        )
    except jwt.PyJWTError:
        return None
