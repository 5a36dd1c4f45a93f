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
from reference.authorization_server.store import Client
from reference.authorization_server.tokens import decode_own_access_token


def revoke(ctx: Context, client: Client, token: str) -> None:
    """RFC 7009 §2.1: revoke a token of the calling client.

    A refresh token takes its whole grant with it (access tokens included); an access token
    is revoked alone. Unknown tokens and other clients' tokens are left alone.
    """
    rt = ctx.store.refresh_tokens.get(token)
    if rt is not None:
        if rt.client_id == client.client_id:
            ctx.store.revoke_grant(rt.grant_id)
        return
    claims = decode_own_access_token(ctx, token, verify_exp=False)
    if claims is None:
        return
    record = ctx.store.access_tokens.get(str(claims["jti"]))
    if record is not None and record.client_id == client.client_id:
        record.revoked = True


async def revocation_endpoint(request: Request) -> Response:
    """POST /revoke: client authentication as at the token endpoint (RFC 7009 §2.1);
    200 whether or not the token was known (RFC 7009 §2.2)."""
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
    revoke(ctx, client, token)
    return Response(status_code=200, headers=NO_STORE)
