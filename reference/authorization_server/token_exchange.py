"""RFC 8693 token exchange: the MCP server trades a user's access token for a downstream one.

The second hop of exchange model 1. The MCP server's own confidential client presents the
access token it received (`subject_token`, RFC 8693 §2.1) and names a downstream service
with `resource` and/or `audience`; the AS answers with a short-lived JWT access token for
that service only, still for the same user, naming the MCP server as the actor (§4.1).
Errors follow RFC 8693 §2.2.2 (RFC 6749 §5.2 codes plus `invalid_target`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from reference.authorization_server import dpop
from reference.authorization_server.context import Context
from reference.authorization_server.errors import OAuthError
from reference.authorization_server.params import Params, split_scope
from reference.authorization_server.store import Client, now, random_token
from reference.authorization_server.tokens import (
    LONG_LIFETIME,
    IssuedTokens,
    decode_own_access_token,
    sign_access_token,
)
from reference.settings import TOKEN_EXCHANGE, DownstreamService

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
# RFC 8693 §3: a JWT access token of this AS is both; either type names it.
SUBJECT_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)
ISSUABLE_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)


@dataclass(frozen=True)
class ExchangeRequest:
    """The parameters of an exchange request that passed the syntax checks of RFC 8693 §2.1."""

    subject_token: str
    actor_token: str | None
    requested_token_type: str
    service: DownstreamService
    scope: list[str]


# --- request parameters (RFC 8693 §2.1) ---


def _subject_token(ctx: Context, form: Params) -> str:
    """`subject_token` and `subject_token_type` are REQUIRED; this AS exchanges only its own
    access tokens, so any other type is refused with `invalid_request` (§2.2.2)."""
    token, token_type = form.get("subject_token"), form.get("subject_token_type")
    if token is None:
        raise OAuthError("invalid_request", "subject_token is required")
    if token_type is None:
        if not ctx.defect("tx-subject-token-type-optional"):
            raise OAuthError("invalid_request", "subject_token_type is required")
    elif (
        token_type not in SUBJECT_TOKEN_TYPES
        and not ctx.defect("tx-unknown-subject-token-type-accepted")
        and not (
            ctx.defect("tx-subject-token-type-prefix-match")
            and token_type.startswith(SUBJECT_TOKEN_TYPES)
        )
    ):
        raise OAuthError("invalid_request", f"unsupported subject_token_type {token_type!r}")
    return token


def _actor_token(ctx: Context, form: Params) -> str | None:
    """`actor_token_type` is REQUIRED when `actor_token` is present and MUST NOT be included
    otherwise (§2.1)."""
    token, token_type = form.get("actor_token"), form.get("actor_token_type")
    if (token is None) != (token_type is None) and not ctx.defect("tx-actor-pairing-unchecked"):
        raise OAuthError("invalid_request", "actor_token and actor_token_type go together")
    if token is not None and token_type is not None and token_type not in SUBJECT_TOKEN_TYPES:
        raise OAuthError("invalid_request", f"unsupported actor_token_type {token_type!r}")
    return token


def _requested_token_type(form: Params) -> str:
    """`requested_token_type` is OPTIONAL (§2.1); only JWT access tokens are issued here."""
    requested = form.get("requested_token_type") or ACCESS_TOKEN_TYPE
    if requested not in ISSUABLE_TOKEN_TYPES:
        raise OAuthError("invalid_request", f"cannot issue requested_token_type {requested!r}")
    return requested


def _target_error(ctx: Context) -> str:
    return "invalid_request" if ctx.defect("tx-invalid-target-wrong-code") else "invalid_target"


def _service(ctx: Context, form: Params) -> DownstreamService:
    """The downstream service named by `resource` (RFC 8707 §2) and/or `audience` (a
    resource URL or a service name). An unknown target is `invalid_target` (§2.2.2)."""
    resources, audiences = form.all("resource"), form.all("audience")
    if not resources and not audiences:
        raise OAuthError("invalid_request", "resource or audience required")
    if len(resources) > 1 or len(audiences) > 1:
        raise OAuthError(_target_error(ctx), "only one resource and one audience may be named")
    exchangeable = [s for s in ctx.settings.downstream if s.model == TOKEN_EXCHANGE]
    named = [
        s
        for s in exchangeable
        if all(r == s.resource for r in resources)
        and all(a in (s.resource, s.name) for a in audiences)
    ]
    if not named:
        raise OAuthError(_target_error(ctx), "no downstream service for this resource/audience")
    return named[0]


def _scope(ctx: Context, form: Params, service: DownstreamService) -> list[str]:
    """RFC 8693 §2.1 `scope` (RFC 6749 §3.3): absent -> the service's default scopes; every
    requested scope must be one the service's policy offers, else `invalid_scope`."""
    requested = split_scope(form.get("scope"))
    if not requested:
        return list(service.scopes)
    beyond = [s for s in requested if s not in service.all_scopes]
    if beyond and not ctx.defect("tx-scope-escalation"):
        raise OAuthError("invalid_scope", f"scope beyond the service policy: {' '.join(beyond)}")
    return requested


def parse_request(ctx: Context, form: Params) -> ExchangeRequest:
    """Every syntactic rule of RFC 8693 §2.1, before any token is looked at."""
    subject_token = _subject_token(ctx, form)
    actor_token = _actor_token(ctx, form)
    requested = _requested_token_type(form)
    service = _service(ctx, form)
    return ExchangeRequest(
        subject_token, actor_token, requested, service, _scope(ctx, form, service)
    )


# --- token validation (RFC 8693 §2.1: "validated according to its type") ---


def _is_access_token_type(ctx: Context, typ: Any) -> bool:
    """RFC 9068 §4: `typ` is `at+jwt` (or `application/at+jwt`), compared case-insensitively.
    Under `jwt-typ-plain-jwt` the AS types its own access tokens `JWT`; it still takes them."""
    if not isinstance(typ, str):
        return False
    accepted = {"at+jwt", "application/at+jwt"}
    if ctx.defect("jwt-typ-plain-jwt"):
        accepted.add("jwt")
    return typ.lower() in accepted


def _own_token_claims(ctx: Context, token: str, what: str) -> dict[str, Any]:
    """Claims of an unrevoked, unexpired JWT access token this AS signed (RFC 9068 §4).

    Tokens the AS signed but never minted (the test signer) have no record: they are judged
    by signature and claims alone, as the MCP server judges them.
    """
    try:
        typ = jwt.get_unverified_header(token).get("typ")
    except jwt.PyJWTError as exc:
        raise OAuthError("invalid_request", f"{what} is not a JWT") from exc
    claims = decode_own_access_token(ctx, token)
    if (
        not _is_access_token_type(ctx, typ)
        or claims is None
        or not isinstance(claims.get("sub"), str)
    ):
        raise OAuthError("invalid_request", f"{what} is not a valid access token of this AS")
    jti = str(claims["jti"])
    if jti in ctx.store.access_tokens and ctx.store.active_access_token(jti) is None:
        raise OAuthError("invalid_request", f"{what} was revoked")
    return claims


def _unverified_claims(token: str) -> dict[str, Any]:
    """Only under `tx-subject-token-not-validated`: the payload, trusted as it is."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise OAuthError("invalid_request", "subject_token is not a JWT") from exc
    if not isinstance(claims.get("sub"), str):
        raise OAuthError("invalid_request", "subject_token has no subject")
    return claims


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def subject_claims(ctx: Context, client: Client, token: str) -> dict[str, Any]:
    """The validated subject token (RFC 8693 §2.2.2: invalid -> `invalid_request`).

    It must also be addressed to the requesting client's own resource: a token meant for
    another party cannot be turned into downstream access (confused deputy, RFC 8693 §5).
    """
    if ctx.defect("tx-subject-token-not-validated"):
        claims = _unverified_claims(token)
    else:
        claims = _own_token_claims(ctx, token, "subject_token")
    if ctx.defect("tx-subject-audience-ignored"):
        return claims
    if client.resource is None or client.resource not in _audiences(claims):
        raise OAuthError("invalid_request", "subject_token is not addressed to this client")
    return claims


def actor(ctx: Context, client: Client, actor_token: str | None) -> dict[str, str]:
    """The `act` claim (RFC 8693 §4.1): the actor token's party, else the requesting client."""
    if actor_token is None:
        return {"sub": client.client_id}
    claims = _own_token_claims(ctx, actor_token, "actor_token")
    act = {"sub": str(claims["sub"])}
    if isinstance(claims.get("client_id"), str):
        act["client_id"] = claims["client_id"]
    return act


# --- the issued token (RFC 8693 §2.2.1) ---


def _expiry(ctx: Context, iat: int, subject_exp: Any) -> int:
    """`exp`: at most `exchanged_token_lifetime` from now and never after the subject token
    (an exchanged token must not outlive the authorization it derives from)."""
    if ctx.defect("tx-long-lived-token"):
        return iat + LONG_LIFETIME
    exp = iat + ctx.settings.exchanged_token_lifetime
    # An unvalidated subject (`tx-subject-token-not-validated`) may lack exp or be expired.
    if isinstance(subject_exp, int | float) and subject_exp > iat:
        exp = min(exp, int(subject_exp))
    return exp


def mint_exchanged_token(
    ctx: Context,
    client: Client,
    request: ExchangeRequest,
    subject: dict[str, Any],
    act: dict[str, str],
) -> tuple[str, int]:
    """An RFC 9068 JWT for the downstream service only (`aud` = its resource), for the
    subject's user, naming the actor. Returns the token and its lifetime in seconds."""
    iat = now()
    exp = _expiry(ctx, iat, subject.get("exp"))
    resource = request.service.resource
    claims: dict[str, Any] = {
        "iss": ctx.issuer,
        "sub": client.client_id if ctx.defect("tx-service-identity-sub") else subject["sub"],
        "aud": (
            [resource, ctx.settings.mcp_url]
            if ctx.defect("tx-token-audience-includes-mcp")
            else resource
        ),
        "client_id": client.client_id,
        "scope": " ".join(request.scope),
        "iat": iat,
        "exp": exp,
        "jti": random_token(16),
        "act": act,
    }
    if isinstance(subject.get("auth_time"), int):
        claims["auth_time"] = subject["auth_time"]
    # Revoking the user's grant also revokes what was exchanged from it.
    record = ctx.store.access_tokens.get(str(subject.get("jti")))
    grant_id = record.grant_id if record is not None else None
    token = sign_access_token(
        ctx, claims, client_id=client.client_id, typ="at+jwt", grant_id=grant_id
    )
    return token, exp - iat


async def token_exchange_grant(ctx: Context, client: Client, form: Params) -> IssuedTokens:
    """RFC 8693 §2.1 request, §2.2.1 response: no refresh token; `issued_token_type` names
    what was issued (the requested type when given, else an access token). With a DPoP proof
    the issued token is bound to its key, as for every grant (RFC 9449 §5)."""
    request = parse_request(ctx, form)
    subject = subject_claims(ctx, client, request.subject_token)
    act = actor(ctx, client, request.actor_token)
    jkt = None if ctx.defect("as-dpop-exchange-unbound") else dpop.bound_key()
    with dpop.bound_to(jkt):
        token, lifetime = mint_exchanged_token(ctx, client, request, subject, act)
    issued_type = (
        None
        if ctx.defect("tx-response-missing-issued-token-type")
        else request.requested_token_type
    )
    return IssuedTokens(
        token,
        lifetime,
        request.scope,
        issued_token_type=issued_type,
        token_type=dpop.token_type(ctx, jkt),
    )
