"""RFC 7009 token revocation."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from reference.authorization_server.client_auth import (
    identify_client,
    presented_credentials,
    verify_secret,
)
from reference.authorization_server.context import Context, context
from reference.authorization_server.errors import NO_STORE, OAuthError, oauth_error_response
from reference.authorization_server.params import read_form
from reference.authorization_server.store import Client, RefreshToken
from reference.authorization_server.tokens import decode_own_access_token


def _revoke_refresh_token(ctx: Context, rt: RefreshToken) -> None:
    """RFC 7009 §2.1: revoking a refresh token revokes its grant and (SHOULD) the access
    tokens issued from it.

    Under `revocation-keeps-access-tokens` only the refresh token is dropped; under
    `rt-revocation-ignored` nothing happens at all."""
    if ctx.defect("rt-revocation-ignored"):
        return
    if ctx.defect("revocation-keeps-access-tokens"):
        del ctx.store.refresh_tokens[rt.token]
        return
    ctx.store.revoke_grant(rt.grant_id)


def revoke(ctx: Context, client: Client, token: str) -> bool:
    """RFC 7009 §2.1: revoke a token of the calling client; False when the token is unknown.

    A refresh token takes its whole grant with it (access tokens included); an access token
    is revoked alone. Other clients' tokens are left alone.
    """
    rt = ctx.store.refresh_tokens.get(token)
    if rt is not None:
        if rt.client_id == client.client_id:
            _revoke_refresh_token(ctx, rt)
        return True
    claims = decode_own_access_token(ctx, token, verify_exp=False)
    record = ctx.store.access_tokens.get(str(claims["jti"])) if claims else None
    if record is None:
        return False
    if record.client_id == client.client_id:
        record.revoked = True
    return True


async def revocation_endpoint(request: Request) -> Response:
    """POST /revoke: client authentication as at the token endpoint (RFC 7009 §2.1);
    200 whether or not the token was known (RFC 7009 §2.2; `revocation-unknown-token-error`
    answers 400 for an unknown one)."""
    ctx = context(request)
    try:
        form = await read_form(request)
        creds = presented_credentials(request, form)
        client = (
            verify_secret(ctx, creds) if creds.secret is not None else identify_client(ctx, creds)
        )
        token = form.get("token")
        if token is None:
            raise OAuthError("invalid_request", "token is required")
    except OAuthError as err:
        return oauth_error_response(err, realm=ctx.issuer)
    known = revoke(ctx, client, token)
    if not known and ctx.defect("revocation-unknown-token-error"):
        return oauth_error_response(
            OAuthError("invalid_request", "unknown token"), realm=ctx.issuer
        )
    return Response(status_code=200, headers=NO_STORE)
