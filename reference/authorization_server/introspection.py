"""RFC 7662 token introspection for access and refresh tokens issued by this AS."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reference.authorization_server.client_auth import presented_credentials, verify_secret
from reference.authorization_server.context import Context, context
from reference.authorization_server.errors import NO_STORE, OAuthError, oauth_error_response
from reference.authorization_server.params import read_form
from reference.authorization_server.tokens import decode_own_access_token

INACTIVE: dict[str, Any] = {"active": False}


def _refresh_token_info(ctx: Context, token: str) -> dict[str, Any] | None:
    if ctx.defect("introspection-reports-inactive-as-active"):
        rt = ctx.store.refresh_tokens.get(token)
    else:
        rt = ctx.store.active_refresh_token(token)
    if rt is None:
        return None
    grant = ctx.store.grants[rt.grant_id]
    return {
        "active": True,
        "scope": " ".join(grant.scope),
        "client_id": rt.client_id,
        "sub": grant.user,
        "aud": grant.resource,
        "iss": ctx.issuer,
        "iat": rt.issued_at,
    }


def _access_token_info(ctx: Context, token: str) -> dict[str, Any] | None:
    # The defect: known tokens are described as active, however expired or revoked.
    inactive_as_active = ctx.defect("introspection-reports-inactive-as-active")
    claims = decode_own_access_token(ctx, token, verify_exp=not inactive_as_active)
    if claims is None:
        return None
    jti = str(claims["jti"])
    records = ctx.store.access_tokens
    record = records.get(jti) if inactive_as_active else ctx.store.active_access_token(jti)
    if record is None:
        return None
    info: dict[str, Any] = {
        "active": True,
        "scope": " ".join(record.scope),
        "client_id": record.client_id,
        "sub": record.user,
        "aud": record.aud,
        "exp": record.exp,
        "iat": record.iat,
        "iss": ctx.issuer,
        "jti": record.jti,
        "token_type": "Bearer",
    }
    # RFC 9449 §6.2: a bound token's key, and `token_type` DPoP.
    if isinstance(claims.get("cnf"), dict):
        info["cnf"] = claims["cnf"]
        info["token_type"] = "DPoP"
    return info


def introspect(ctx: Context, token: str, hint: str | None) -> dict[str, Any]:
    """RFC 7662 §2.2: `active: true` with token metadata, or only `active: false` for
    revoked, expired, unknown or foreign tokens (§4: say nothing more about those)."""
    lookups = [_access_token_info, _refresh_token_info]
    if hint == "refresh_token":
        lookups.reverse()
    for lookup in lookups:
        info = lookup(ctx, token)
        if info is not None:
            return info
    if ctx.defect("introspection-inactive-details"):
        return {**INACTIVE, "iss": ctx.issuer, "error_description": "expired, revoked or unknown"}
    return dict(INACTIVE)


async def introspection_endpoint(request: Request) -> Response:
    """POST /introspect. RFC 7662 §2.1: the caller must authenticate; here any confidential
    client of this AS may introspect."""
    ctx = context(request)
    try:
        form = await read_form(request)
        creds = presented_credentials(request, form)
        if creds.secret is None:
            raise OAuthError("invalid_client", "introspection requires client authentication", 401)
        verify_secret(ctx, creds)
        token = form.get("token")
        if token is None:
            raise OAuthError("invalid_request", "token is required")
    except OAuthError as err:
        return oauth_error_response(err, realm=ctx.issuer)
    return JSONResponse(introspect(ctx, token, form.get("token_type_hint")), headers=NO_STORE)
