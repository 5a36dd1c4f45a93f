"""The token endpoint: OAuth 2.1 §3.2 (request/response), §4.1.3 (authorization code grant),
§4.3 (refresh token grant), RFC 7636 §4.6 (PKCE verification), RFC 8707 §2.2 (`resource`).

Second-hop grants live in their own modules: RFC 8693 token exchange (`token_exchange`) and
the RFC 7523 jwt-bearer grant for ID-JAGs (`jwt_bearer`).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reference.authorization_server import client_metadata_documents, dpop
from reference.authorization_server.client_auth import (
    PresentedCredentials,
    identify_client,
    known_client,
    presented_credentials,
    verify_secret,
)
from reference.authorization_server.context import Context, context
from reference.authorization_server.errors import (
    NO_STORE,
    InternalServerError,
    OAuthError,
    oauth_error_response,
    plain_server_error,
)
from reference.authorization_server.federation import s256
from reference.authorization_server.jwt_bearer import GRANT_TYPE as JWT_BEARER
from reference.authorization_server.jwt_bearer import jwt_bearer_grant
from reference.authorization_server.params import (
    Params,
    collect,
    is_absolute_uri_without_fragment,
    is_pkce_value,
    read_form,
    split_scope,
)
from reference.authorization_server.store import AuthorizationCode, Client, Grant, now
from reference.authorization_server.token_exchange import GRANT_TYPE as TOKEN_EXCHANGE
from reference.authorization_server.token_exchange import token_exchange_grant
from reference.authorization_server.tokens import IssuedTokens, issue_for_grant
from reference.settings import BASIC_SCOPE, SCOPES_SUPPORTED

SUPPORTED_GRANTS = ("authorization_code", "refresh_token", TOKEN_EXCHANGE, JWT_BEARER)
# Grants only an authenticated confidential client may use (RFC 8693 §2.1 leaves client
# authentication to the AS; ID-JAG §8.1: confidential clients only).
CONFIDENTIAL_GRANTS = (TOKEN_EXCHANGE, JWT_BEARER)
# The first hop's token-response defects leave second-hop responses alone.
FIRST_HOP_GRANTS = ("authorization_code", "refresh_token", "password")
# `rt-race-double-redeem`, `token-code-race-double-redeem`: seconds of simulated store
# latency between reading a one-time credential's state and marking it used.
RACE_WINDOW = 0.05
# The mock IdP's test users, for the `token-password-grant-enabled` defect only.
PASSWORD_USERS = {"alice": "alice-password", "bob": "bob-password"}

Handler = Callable[[Context, Client, Params], Awaitable[IssuedTokens]]


# --- shared checks ---


def requested_scope(ctx: Context, form: Params, granted: list[str]) -> list[str]:
    """OAuth 2.1 §3.2.2 / §4.3.1: a token request may narrow, never widen, the grant's scope.

    Under `token-scope-escalation`, requested scopes unknown to the AS are copied in.
    """
    requested = split_scope(form.get("scope"))
    if not requested:
        return list(granted)
    escalate = ctx.defect("token-scope-escalation")
    extra = [
        s for s in requested if s not in granted and not (escalate and s not in SCOPES_SUPPORTED)
    ]
    if extra:
        raise OAuthError("invalid_scope", f"scope beyond the grant: {' '.join(extra)}")
    return requested


def check_resource(ctx: Context, form: Params, grant_resource: str) -> None:
    """RFC 8707 §2.2: the requested resource must be valid and within the grant.

    Failure is `invalid_target` (`invalid_request` under `token-invalid-target-wrong-code`).
    """
    values = form.all("resource")
    if not values:
        return
    error = "invalid_request" if ctx.defect("token-invalid-target-wrong-code") else "invalid_target"
    if len(values) > 1:
        raise OAuthError(error, "only one resource may be requested")
    if not is_absolute_uri_without_fragment(values[0]):
        raise OAuthError(error, "resource must be an absolute URI without a fragment")
    if values[0] != grant_resource:
        raise OAuthError(error, "the resource is not covered by the grant")


def verify_pkce(ctx: Context, code: AuthorizationCode, verifier: str | None) -> OAuthError | None:
    """RFC 7636 §4.6 / OAuth 2.1 §4.1.3: recompute the challenge with the recorded method.

    Returns the error to report, or None when the verifier fits. A verifier sent for a code
    issued without a challenge is `invalid_request` (OAuth 2.1 §3.2.4; RFC 9700 §4.8.2, the
    PKCE downgrade), as is one outside the grammar (RFC 7636 §4.1: 43*128unreserved).
    """
    if code.code_challenge is None:
        if verifier is not None and not ctx.defect("token-pkce-downgrade"):
            return OAuthError("invalid_request", "code_verifier sent but no challenge recorded")
        return None
    if verifier is None:
        return OAuthError("invalid_request", "code_verifier is required")
    if not is_pkce_value(verifier) and not ctx.defect("token-pkce-verifier-unchecked"):
        return OAuthError("invalid_request", "code_verifier is not 43-128 unreserved characters")
    if not verifier.isascii():  # S256 hashes ASCII(code_verifier) (RFC 7636 §4.2): no match
        return OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    computed = s256(verifier) if code.code_challenge_method == "S256" else verifier
    if not hmac.compare_digest(computed.encode(), code.code_challenge.encode()):
        return OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    return None


def _code_error(
    ctx: Context,
    client: Client,
    code: AuthorizationCode,
    form: Params,
    verifier_error: OAuthError | None,
) -> OAuthError | None:
    """Binding checks of OAuth 2.1 §4.1.3 (client, redirect_uri) and PKCE."""
    if code.client_id != client.client_id and not ctx.defect("token-code-not-bound-to-client"):
        return OAuthError("invalid_grant", "the code was issued to another client")
    redirect_uri = form.get("redirect_uri")
    if redirect_uri is not None and ctx.defect("token-redirect-uri-compare-crash"):
        hmac.compare_digest(redirect_uri, code.redirect_uri)  # TypeError on non-ASCII input
    if (
        redirect_uri is not None
        and redirect_uri != code.redirect_uri
        and not ctx.defect("token-redirect-uri-not-checked")
    ):
        return OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
    if verifier_error is not None and not ctx.defect("token-pkce-not-verified"):
        return verifier_error
    return None


def _replay(
    ctx: Context,
    client: Client,
    code: AuthorizationCode,
    verifier_error: OAuthError | None,
    form: Params,
) -> None:
    """OAuth 2.1 §4.1.3: a used code is refused and, on an otherwise valid presentation
    (right client, verifier, redirect URI), the tokens issued from it are revoked.
    A replay with invalid parameters does not revoke, so it cannot be used for DoS."""
    valid_presentation = (
        code.client_id == client.client_id
        and verifier_error is None
        and form.get("redirect_uri") in (None, code.redirect_uri)
    )
    if valid_presentation and not ctx.defect("token-code-reuse-keeps-tokens"):
        for grant_id in code.grant_ids:
            ctx.store.revoke_grant(grant_id)
    raise OAuthError("invalid_grant", "the authorization code was already used")


# --- grants ---


async def authorization_code_grant(ctx: Context, client: Client, form: Params) -> IssuedTokens:
    """OAuth 2.1 §4.1.3."""
    value = form.get("code")
    if value is None:
        raise OAuthError("invalid_request", "code is required")
    code = ctx.store.codes.get(value)
    if code is None or code.expires_at <= now():
        raise OAuthError("invalid_grant", "unknown or expired authorization code")
    verifier_error = verify_pkce(ctx, code, form.get("code_verifier"))
    used = code.used
    if ctx.defect("token-code-race-double-redeem"):
        # The defect: a store round trip between reading the code's state and marking it
        # used, so concurrent redemptions all see it unused (OAuth 2.1 §4.1.3: tokens only once).
        await asyncio.sleep(RACE_WINDOW)
    if used and not ctx.defect("token-code-reusable"):
        _replay(ctx, client, code, verifier_error, form)
    error = _code_error(ctx, client, code, form, verifier_error)
    if error is not None:
        raise error
    resource = code.resource or ctx.settings.mcp_url
    check_resource(ctx, form, resource)
    scope = requested_scope(ctx, form, code.scope)
    code.used = True
    grant = ctx.store.new_grant(
        client_id=client.client_id,
        user=code.user,
        scope=code.scope,
        resource=resource,
        auth_time=code.auth_time,
    )
    code.grant_ids.append(grant.id)
    return issue_for_grant(
        ctx, grant, scope=scope, with_refresh_token="refresh_token" in client.grant_types
    )


def _refresh_scope(ctx: Context, form: Params, grant: Grant) -> list[str]:
    """OAuth 2.1 §4.3.1: an omitted scope is the grant's; a wider one is `invalid_scope`
    (under `rt-scope-widening`, whatever is asked is granted)."""
    if ctx.defect("rt-scope-widening"):
        return split_scope(form.get("scope")) or list(grant.scope)
    return requested_scope(ctx, form, grant.scope)


def _refresh_target(ctx: Context, form: Params, grant: Grant) -> Grant:
    """OAuth 2.1 §3.2.3, RFC 8707 §2.2: tokens only for the grant's resource (under
    `rt-resource-not-bound`, a requested resource becomes the new token's audience)."""
    values = form.all("resource")
    if ctx.defect("rt-resource-not-bound") and len(values) == 1:
        return replace(grant, resource=values[0])
    check_resource(ctx, form, grant.resource)
    return grant


async def refresh_token_grant(ctx: Context, client: Client, form: Params) -> IssuedTokens:
    """OAuth 2.1 §4.3.1: the token is bound to its client, its grant still active, the token
    itself valid (unexpired, not yet rotated); scope and resource stay within the grant.
    Public and confidential clients alike get a new refresh token on every use, and the
    replay of a rotated one revokes the whole family (RFC 9700 §4.14.2)."""
    value = form.get("refresh_token")
    if value is None:
        raise OAuthError("invalid_request", "refresh_token is required")
    if form.all("resource") and ctx.defect("rt-resource-param-refused"):
        raise OAuthError("invalid_target", "resource is not supported when refreshing")
    rt = ctx.store.refresh_tokens.get(value)
    bound = rt is not None and (
        rt.client_id == client.client_id or ctx.defect("rt-not-bound-to-client")
    )
    if rt is None or not bound:
        raise OAuthError("invalid_grant", "unknown refresh token")
    dpop.require_refresh_key(ctx, rt)
    grant: Grant = ctx.store.grants[rt.grant_id]
    if grant.revoked:
        raise OAuthError("invalid_grant", "the grant was revoked")
    if rt.expired():
        raise OAuthError("invalid_grant", "the refresh token has expired")
    active = rt.active
    if ctx.defect("rt-race-double-redeem"):
        # The defect: a store round trip between reading the token's state and marking it
        # used, so concurrent redemptions all see it unused.
        await asyncio.sleep(RACE_WINDOW)
    if not active:
        if not ctx.defect("rt-reuse-keeps-family"):
            ctx.store.revoke_grant(grant.id)
        raise OAuthError("invalid_grant", "refresh token already used")
    scope = _refresh_scope(ctx, form, grant)
    target = _refresh_target(ctx, form, grant)
    if ctx.defect("rt-not-rotated"):
        issued = issue_for_grant(ctx, target, scope=scope, with_refresh_token=False)
        return replace(issued, refresh_token=rt.token)
    if not ctx.defect("rt-old-still-valid"):
        rt.active = False
    return issue_for_grant(ctx, target, scope=scope, with_refresh_token=True)


async def password_grant(ctx: Context, client: Client, form: Params) -> IssuedTokens:
    """Only under `token-password-grant-enabled` (OAuth 2.1 §10 removed this grant)."""
    username, password = form.get("username") or "", form.get("password") or ""
    expected = PASSWORD_USERS.get(username)
    if expected is None or not hmac.compare_digest(expected, password):
        raise OAuthError("invalid_grant", "invalid resource owner credentials")
    values = form.all("resource")
    resource = (
        values[0] if len(values) == 1 and values[0] in ctx.resources else ctx.settings.mcp_url
    )
    check_resource(ctx, form, resource)
    scope = (
        requested_scope(ctx, form, list(SCOPES_SUPPORTED)) if form.get("scope") else [BASIC_SCOPE]
    )
    grant = ctx.store.new_grant(
        client_id=client.client_id, user=username, scope=scope, resource=resource, auth_time=now()
    )
    return issue_for_grant(ctx, grant, scope=scope, with_refresh_token=True)


GRANTS: dict[str, Handler] = {
    "authorization_code": authorization_code_grant,
    "refresh_token": refresh_token_grant,
    TOKEN_EXCHANGE: token_exchange_grant,
    JWT_BEARER: jwt_bearer_grant,
}


def supported_grants(ctx: Context) -> tuple[str, ...]:
    """The grants the token endpoint processes (`tx-grant-unsupported` drops token exchange)."""
    if ctx.defect("tx-grant-unsupported"):
        return tuple(g for g in SUPPORTED_GRANTS if g != TOKEN_EXCHANGE)
    return SUPPORTED_GRANTS


# --- request processing ---


def _grant_type(ctx: Context, form: Params, creds: PresentedCredentials) -> str:
    """OAuth 2.1 §3.2.4: missing -> invalid_request; unknown or refused ->
    unsupported_grant_type (unauthorized_client for a public client asking for
    client_credentials, which it can never use)."""
    grant_type = form.get("grant_type")
    if grant_type is None:
        if ctx.defect("token-error-not-json"):
            raise InternalServerError("no grant_type")
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type == "password" and ctx.defect("token-password-grant-enabled"):
        return grant_type
    if grant_type in supported_grants(ctx):
        return grant_type
    # `token-error-not-json` crashes on every unsupported grant but password, whose refusal
    # TOKEN-NO-PASSWORD-GRANT judges.
    if grant_type != "password" and ctx.defect("token-error-not-json"):
        raise InternalServerError(f"no handler for grant_type {grant_type!r}")
    client = known_client(ctx, creds)
    if grant_type == "client_credentials" and client is not None and not client.confidential:
        raise OAuthError("unauthorized_client", "public clients cannot use client_credentials")
    raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")


def token_response(ctx: Context, issued: IssuedTokens, grant_type: str) -> JSONResponse:
    """OAuth 2.1 §3.2.3: access_token, token_type, expires_in, refresh_token, scope;
    `Cache-Control: no-store`. RFC 8693 §2.2.1 adds `issued_token_type`; ID-JAG §4.4.1 the
    granted `resource`."""
    body: dict[str, Any] = {"access_token": issued.access_token}
    if issued.issued_token_type is not None:
        body["issued_token_type"] = issued.issued_token_type
    body["token_type"] = issued.token_type
    body["expires_in"] = issued.expires_in
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    body["scope"] = " ".join(issued.scope)
    if issued.resource is not None:
        body["resource"] = issued.resource
    first_hop = grant_type in FIRST_HOP_GRANTS
    if first_hop and ctx.defect("token-response-missing-token-type"):
        del body["token_type"]
    cacheable = (first_hop and ctx.defect("token-response-cacheable")) or (
        grant_type == JWT_BEARER and ctx.defect("ras-response-cacheable")
    )
    return JSONResponse(body, headers={} if cacheable else dict(NO_STORE))


async def token_form(ctx: Context, request: Request) -> Params:
    """The token request's parameters: form-encoded request content only (OAuth 2.1 §3.2.2;
    §2.4.1: client credentials MUST NOT be included in the request URI), none repeated
    (§3.2, §3.2.4 `invalid_request`)."""
    if ctx.defect("token-repeated-params-accepted"):
        # The defect: a parameter repeated with the same value counts as sent once; only
        # conflicting repeats are refused.
        async with request.form() as raw:
            pairs = dict.fromkeys((k, v) for k, v in raw.multi_items() if isinstance(v, str))
        form = collect(pairs)
        if form.repeated(allowed=("resource",)):
            raise OAuthError("invalid_request", "conflicting repeated parameters")
        return form
    form = await read_form(request)
    if ctx.defect("token-get-accepted"):
        # The defect: query parameters count as request parameters (a framework's merged
        # "values"), so a GET, or a POST with its parameters in the URI, is honoured.
        for name, value in request.query_params.multi_items():
            if value and name not in form.values:
                form.values[name] = [value]
    return form


async def issue(ctx: Context, request: Request) -> tuple[str, IssuedTokens]:
    """Authenticate or identify the client, then run the grant. Returns the grant type and
    what was issued."""
    form = await token_form(ctx, request)
    creds = presented_credentials(request, form)
    await client_metadata_documents.refresh_client(request, ctx, creds.client_id)
    authenticated = verify_secret(ctx, creds) if creds.secret is not None else None
    grant_type = _grant_type(ctx, form, creds)
    client = authenticated or identify_client(
        ctx,
        creds,
        allow_unauthenticated=(
            grant_type == "authorization_code"
            and ctx.defect("token-confidential-client-unauthenticated")
        )
        or (grant_type == "refresh_token" and ctx.defect("rt-confidential-client-unauthenticated")),
    )
    if grant_type in CONFIDENTIAL_GRANTS and authenticated is None:
        raise OAuthError("invalid_client", f"{grant_type} requires client authentication", 401)
    if grant_type == "password":
        return grant_type, await password_grant(ctx, client, form)
    if grant_type not in client.grant_types:
        raise OAuthError("unauthorized_client", f"the client may not use {grant_type}")
    # RFC 9449 §5: the proof is judged before the grant, so a refused proof consumes nothing.
    jkt = await dpop.proof_key(ctx, request, client, form)
    with dpop.bound_to(jkt):
        return grant_type, await GRANTS[grant_type](ctx, client, form)


async def token_endpoint(request: Request) -> Response:
    """POST /token (any other method: 405, OAuth 2.1 §3.2: token requests use POST)."""
    ctx = context(request)
    if request.method != "POST" and not ctx.defect("token-get-accepted"):
        refused = OAuthError("invalid_request", "the token endpoint accepts POST only", 405)
        response = oauth_error_response(refused, realm=ctx.issuer)
        response.headers["Allow"] = "POST"
        return response
    try:
        grant_type, issued = await issue(ctx, request)
    except OAuthError as err:
        return dpop.with_nonce(ctx, request, oauth_error_response(err, realm=ctx.issuer))
    except InternalServerError:
        return plain_server_error()
    return dpop.with_nonce(ctx, request, token_response(ctx, issued, grant_type))
