"""The token endpoint: client authentication, then one handler per `grant_type`.

A new grant is one function added to `GRANT_HANDLERS`; discovery's `grant_types_supported`
is derived from that table. RFC 8693 token exchange (ID-JAG issuance) lives in
`mock_idp.token_exchange`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse

from mock_idp.grant import (
    BASIC_CHALLENGE,
    JWT_BEARER,
    NO_STORE,
    TOKEN_EXCHANGE,
    GrantHandler,
    TokenContext,
    TokenError,
)
from mock_idp.keys import SigningKey
from mock_idp.settings import IdpClient, IdpSettings
from mock_idp.store import Store
from mock_idp.token_exchange import (
    client_named_without_secret,
    self_redeem_grant,
    token_exchange_grant,
)

__all__ = ["GRANT_HANDLERS", "NO_STORE", "TokenContext", "TokenError", "token_endpoint"]

# RFC 7636 section 4.1: code_verifier = 43*128unreserved
VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


async def token_endpoint(
    request: Request, settings: IdpSettings, store: Store, signing_key: SigningKey
) -> JSONResponse:
    """RFC 6749 section 3.2: POST, form-encoded, authenticated client, dispatch by grant."""
    try:
        params = await form_params(request)
        grant_type = params.get("grant_type")
        if not grant_type:
            raise TokenError("invalid_request", "grant_type is required")
        authorization = request.headers.get("authorization")
        client: IdpClient | None = None
        if grant_type == TOKEN_EXCHANGE and settings.has_defect("idp-exchange-without-client-auth"):
            client = client_named_without_secret(authorization, params, settings)
        authenticated = client is None
        if client is None:
            client = authenticate_client(authorization, params, settings)
        handler = grant_handlers(settings).get(grant_type)
        if handler is None:
            raise TokenError("unsupported_grant_type", f"grant_type {grant_type!r} unsupported")
        ctx = TokenContext(
            settings, store, signing_key, client, params, authenticated and not client.is_public
        )
        body = handler(ctx)
    except TokenError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


def grant_handlers(settings: IdpSettings) -> dict[str, GrantHandler]:
    """The grants this instance serves: `GRANT_HANDLERS`, plus jwt-bearer when the
    `idp-self-redeem` defect is on (never advertised)."""
    if settings.has_defect("idp-self-redeem"):
        return {**GRANT_HANDLERS, JWT_BEARER: self_redeem_grant}
    return GRANT_HANDLERS


async def form_params(request: Request) -> dict[str, str]:
    """RFC 6749 section 3.2 / appendix B: form-encoded body; section 3.2: no repeats."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise TokenError("invalid_request", "body must be application/x-www-form-urlencoded")
    form = await request.form()
    items = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    keys = [k for k, _ in items]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise TokenError("invalid_request", f"repeated parameter(s): {', '.join(repeated)}")
    return {k: v for k, v in items if v != ""}


def authenticate_client(
    authorization: str | None, params: Mapping[str, str], settings: IdpSettings
) -> IdpClient:
    """RFC 6749 section 2.3: exactly one method: client_secret_basic (2.3.1 HTTP Basic),
    client_secret_post (2.3.1 body), or none for a public client (section 2.1)."""
    basic = _parse_basic(authorization) if authorization else None
    if basic is not None:
        if "client_secret" in params:
            raise TokenError("invalid_request", "more than one client authentication method")
        basic_id, basic_secret = basic
        if params.get("client_id", basic_id) != basic_id:
            raise TokenError("invalid_request", "client_id differs from the Basic credentials")
        return _check_secret(settings, basic_id, basic_secret, 401, BASIC_CHALLENGE)
    client_id = params.get("client_id")
    if not client_id:
        raise TokenError("invalid_client", "no client authentication", 401, BASIC_CHALLENGE)
    secret = params.get("client_secret")
    client = settings.client(client_id)
    if secret is None and client is not None and client.is_public:
        return client
    if secret is None:
        raise TokenError("invalid_client", "no client authentication", 401, BASIC_CHALLENGE)
    return _check_secret(settings, client_id, secret, 400, {})


def _parse_basic(authorization: str) -> tuple[str, str]:
    """RFC 7617 credentials; RFC 6749 2.3.1: id and secret are form-urlencoded first."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise TokenError(
            "invalid_client", "unsupported authentication scheme", 401, BASIC_CHALLENGE
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise TokenError(
            "invalid_client", "malformed Basic credentials", 401, BASIC_CHALLENGE
        ) from exc
    if ":" not in decoded:
        raise TokenError("invalid_client", "malformed Basic credentials", 401, BASIC_CHALLENGE)
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def _check_secret(
    settings: IdpSettings,
    client_id: str,
    secret: str,
    status_code: int,
    headers: Mapping[str, str],
) -> IdpClient:
    client = settings.client(client_id)
    if (
        client is None
        or client.client_secret is None
        or not hmac.compare_digest(client.client_secret.encode(), secret.encode())
    ):
        raise TokenError("invalid_client", "client authentication failed", status_code, headers)
    return client


# --- grant: authorization_code ---


def authorization_code_grant(ctx: TokenContext) -> dict[str, Any]:
    """RFC 6749 section 4.1.3 (+ OIDC Core 3.1.3.2, RFC 7636 section 4.6)."""
    code_value = ctx.params.get("code")
    if not code_value:
        raise TokenError("invalid_request", "code is required")
    record = ctx.store.code(code_value)
    if record is None:
        raise TokenError("invalid_grant", "unknown authorization code")
    if record.redeemed:
        # RFC 6749 section 4.1.2: reuse => deny, and revoke tokens issued from the code.
        ctx.store.revoke_access_tokens(record.access_tokens)
        raise TokenError("invalid_grant", "authorization code already used")
    record.redeemed = True  # the first attempt consumes the code, even if it fails below
    if record.expires_at <= ctx.store.now():
        raise TokenError("invalid_grant", "authorization code expired")
    if record.request.client_id != ctx.client.client_id:
        raise TokenError("invalid_grant", "authorization code was issued to another client")
    if ctx.params.get("redirect_uri") != record.request.redirect_uri:
        raise TokenError("invalid_grant", "redirect_uri does not match the authorization request")
    verify_pkce(record.request.code_challenge, ctx.params.get("code_verifier"))

    access = ctx.store.add_access_token(
        record.username,
        ctx.client.client_id,
        record.request.scope,
        ctx.settings.id_token_lifetime,
    )
    record.access_tokens.append(access.token)
    return {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": ctx.settings.id_token_lifetime,
        "id_token": issue_id_token(ctx, record.username, record.auth_time, record.request.nonce),
        "scope": " ".join(record.request.scope),
    }


def verify_pkce(challenge: str | None, verifier: str | None) -> None:
    """RFC 7636 section 4.6 (S256 only); RFC 9700 section 2.1.1: a verifier without a
    challenge in the authorization request is rejected (PKCE downgrade)."""
    if challenge is None:
        if verifier is not None:
            raise TokenError("invalid_grant", "code_verifier sent but no code_challenge was")
        return
    if verifier is None:
        raise TokenError("invalid_grant", "code_verifier is required")
    if not VERIFIER_RE.match(verifier):
        raise TokenError("invalid_grant", "malformed code_verifier")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise TokenError("invalid_grant", "code_verifier does not match code_challenge")


def s256(verifier: str) -> str:
    """RFC 7636 section 4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue_id_token(ctx: TokenContext, username: str, auth_time: int, nonce: str | None) -> str:
    """OIDC Core 1.0 section 2 (ID Token claims) and 3.1.3.6; RS256, header typ JWT + kid."""
    user = ctx.settings.user(username)
    now = int(ctx.store.now())
    claims: dict[str, Any] = {
        "iss": ctx.settings.issuer,
        "sub": username,
        "aud": ctx.client.client_id,
        "exp": now + ctx.settings.id_token_lifetime,
        "iat": now,
        "auth_time": auth_time,
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if user is not None:
        claims.update(email=user.email, email_verified=True, name=user.name)
    return ctx.signing_key.sign(claims, typ="JWT")


# RFC 7523 jwt-bearer is deliberately absent: draft-ietf-oauth-identity-assertion-authz-grant
# "Cross-Domain Use": the IdP MUST NOT issue access tokens for an ID-JAG it issued itself.
GRANT_HANDLERS: dict[str, GrantHandler] = {
    "authorization_code": authorization_code_grant,
    TOKEN_EXCHANGE: token_exchange_grant,
}
