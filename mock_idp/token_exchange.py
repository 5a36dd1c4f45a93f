"""ID-JAG issuance by RFC 8693 token exchange (the IdP role of
draft-ietf-oauth-identity-assertion-authz-grant, "IDJAG" below).

A client that signed a user in holds the user's ID token (`aud` = its client id here). It
exchanges that ID token for an Identity Assertion JWT Authorization Grant (ID-JAG, IDJAG
section 3) addressed to a resource authorization server (RAS), which the client then
redeems there with the RFC 7523 jwt-bearer grant. The IdP itself never redeems ID-JAGs
(IDJAG "Cross-Domain Use"); `self_redeem_grant` exists only for the `idp-self-redeem` defect.

Every `idp-*` defect switch of `reference/defects.py` is implemented here, except
`idp-metadata-silent` (discovery, `mock_idp.app`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from mock_idp.grant import (
    ACCESS_TOKEN_TYPE,
    BASIC_CHALLENGE,
    ID_JAG_TYP,
    ID_JAG_TYPE,
    ID_TOKEN_TYPE,
    TokenContext,
    TokenError,
)
from mock_idp.keys import ALGORITHM
from mock_idp.settings import IdpClient, IdpSettings

LONG_LIVED = 86400  # `idp-idjag-long-lived`: a day


@dataclass(frozen=True)
class Target:
    """Where the ID-JAG goes: the RAS issuer (`aud`), the requested resource, and the
    scopes policy allows there (None: no policy known, for an unknown audience that the
    `idp-audience-not-required` defect let through)."""

    audience: str
    resource: str | None
    allowed_scopes: tuple[str, ...] | None


def token_exchange_grant(ctx: TokenContext) -> dict[str, Any]:
    """RFC 8693 section 2.1 request, section 2.2.1 response, as profiled by IDJAG section 4.3
    ("Token Exchange", its "Processing Rules" and "Response"); errors per RFC 8693
    section 2.2.2 / RFC 6749 section 5.2."""
    require_client_secret(ctx)
    params = ctx.params
    if params.get("requested_token_type") != ID_JAG_TYPE:
        raise TokenError("invalid_request", f"requested_token_type must be {ID_JAG_TYPE}")
    subject_token = params.get("subject_token")
    subject_token_type = params.get("subject_token_type")
    if subject_token is None or subject_token_type is None:
        raise TokenError("invalid_request", "subject_token and subject_token_type are required")
    if subject_token_type != ID_TOKEN_TYPE:
        raise TokenError("invalid_request", f"subject_token_type must be {ID_TOKEN_TYPE}")
    target = resolve_target(ctx.settings, params)
    subject = validate_subject(ctx, subject_token)
    granted = grant_scopes(ctx.settings, target, params.get("scope", ""))
    id_jag, lifetime = issue_id_jag(ctx, subject, target, granted)
    body: dict[str, Any] = {
        "access_token": id_jag,
        "issued_token_type": ID_JAG_TYPE,
        "token_type": "N_A",  # IDJAG section 4.3 "Response": not an OAuth access token
        "expires_in": lifetime,
    }
    if ctx.settings.has_defect("idp-wrong-issued-token-type"):
        body.update(token_type="Bearer", issued_token_type=ACCESS_TOKEN_TYPE)
    if granted:
        body["scope"] = " ".join(granted)
    return body


def require_client_secret(ctx: TokenContext) -> None:
    """IDJAG "Client Authentication" (confidential clients only) and the MCP profile's
    "Compromised Token Leverage": the exchange needs a client that proved its secret."""
    if ctx.authenticated or ctx.settings.has_defect("idp-exchange-without-client-auth"):
        return
    raise TokenError(
        "invalid_client",
        "token exchange requires a confidential client authenticating with its secret",
        401,
        BASIC_CHALLENGE,
    )


def client_named_without_secret(
    authorization: str | None, params: Mapping[str, str], settings: IdpSettings
) -> IdpClient | None:
    """`idp-exchange-without-client-auth`: a request with no credentials at all that names
    a registered `client_id` is taken to come from that client."""
    if authorization or "client_secret" in params:
        return None
    return settings.client(params.get("client_id", ""))


def resolve_target(settings: IdpSettings, params: Mapping[str, str]) -> Target:
    """IDJAG section 4.3: `audience` is REQUIRED and is the RAS issuer identifier (RFC 8414
    section 2); an RAS the IdP has no trust relationship with is `invalid_target` (RFC 8693
    section 2.2.2). `resource` (RFC 8707 section 2) must be one the RAS serves: the MCP
    profile's audience/resource pairing."""
    lenient = settings.has_defect("idp-audience-not-required")
    name = params.get("audience")
    if name is None:
        if not (lenient and settings.audiences):
            raise TokenError("invalid_request", "audience is required")
        name = settings.audiences[0].issuer
    resource = params.get("resource")
    audience = settings.audience(name)
    if audience is None:
        if not lenient:
            raise TokenError("invalid_target", "audience is not a known authorization server")
        return Target(name, resource, None)
    if resource is not None and resource not in audience.resources and not lenient:
        raise TokenError("invalid_target", "resource is not served by that audience")
    return Target(audience.issuer, resource, audience.scopes)


def validate_subject(ctx: TokenContext, subject_token: str) -> dict[str, Any]:
    """IDJAG section 4.3 "Processing Rules": the IdP MUST validate the subject token and MUST
    check that its audience is the `client_id` the request authenticated as."""
    if ctx.settings.has_defect("idp-subject-not-validated"):
        claims = _decode_unverified(subject_token)
    else:
        claims = _decode_id_token(ctx, subject_token)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise TokenError("invalid_grant", "the subject token has no sub")
    if not ctx.settings.has_defect("idp-subject-audience-unchecked") and (
        ctx.client.client_id not in _audiences(claims.get("aud"))
    ):
        raise TokenError("invalid_grant", "the subject token was not issued to this client")
    return claims


def _decode_id_token(ctx: TokenContext, token: str) -> dict[str, Any]:
    """An ID token this IdP signed (OIDC Core 1.0 section 3.1.3.7 steps 1-3, 6, 9): RS256
    with our key, our `iss`, unexpired. The explicit `typ` check (RFC 8725 section 3.11)
    keeps other JWTs we sign, notably ID-JAGs, from passing as ID tokens."""
    try:
        if jwt.get_unverified_header(token).get("typ", "JWT") != "JWT":
            raise TokenError("invalid_grant", "the subject token is not an ID token")
        claims: dict[str, Any] = jwt.decode(
            token,
            ctx.signing_key.private_key.public_key(),
            algorithms=[ALGORITHM],
            issuer=ctx.settings.issuer,
            options={"verify_aud": False, "require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError("invalid_grant", f"the subject token is not valid: {exc}") from exc
    return claims


def _decode_unverified(token: str) -> dict[str, Any]:
    """`idp-subject-not-validated`: the claims as they stand, nothing verified."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenError("invalid_grant", f"the subject token is not a JWT: {exc}") from exc
    return claims


def _audiences(aud: object) -> tuple[str, ...]:
    """RFC 7519 section 4.1.3: one string or an array of strings."""
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list):
        return tuple(a for a in aud if isinstance(a, str))
    return ()


def grant_scopes(settings: IdpSettings, target: Target, scope: str) -> tuple[str, ...]:
    """IDJAG section 4.3 "Processing Rules": policy decides the scopes, which may be fewer
    than requested (never more); an empty result is `invalid_scope` (RFC 6749 section
    5.2). No scope requested: none granted."""
    requested = tuple(dict.fromkeys(scope.split()))
    if not requested:
        return ()
    if target.allowed_scopes is None or settings.has_defect("idp-scope-not-narrowed"):
        return requested
    granted = tuple(s for s in requested if s in target.allowed_scopes)
    if not granted:
        raise TokenError("invalid_scope", "none of the requested scopes is allowed")
    return granted


def issue_id_jag(
    ctx: TokenContext, subject: Mapping[str, Any], target: Target, granted: tuple[str, ...]
) -> tuple[str, int]:
    """IDJAG section 3: the ID-JAG, typed `oauth-id-jag+jwt`, signed with the IdP key, and
    its lifetime. `client_id` is the client's id at the RAS (IDJAG "Cross-Domain Client ID
    Handling")."""
    settings = ctx.settings
    now = int(ctx.store.now())
    lifetime = settings.id_jag_lifetime
    if settings.has_defect("idp-idjag-long-lived"):
        lifetime = LONG_LIVED
    client_id = (
        ctx.client.client_id
        if settings.has_defect("idp-idjag-client-id-unmapped")
        else ctx.client.ras_client_id(target.audience)
    )
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": subject["sub"],
        "aud": target.audience,
        "client_id": client_id,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + lifetime,
    }
    if target.resource is not None and not settings.has_defect("idp-resource-dropped"):
        claims["resource"] = target.resource
    if granted:
        claims["scope"] = " ".join(granted)
    auth_time = subject.get("auth_time")
    if isinstance(auth_time, int) and not isinstance(auth_time, bool):
        claims["auth_time"] = auth_time
    typ = "JWT" if settings.has_defect("idp-idjag-typ-jwt") else ID_JAG_TYP
    ctx.store.add_id_jag(claims["jti"], claims["exp"])
    return ctx.signing_key.sign(claims, typ=typ), lifetime


def self_redeem_grant(ctx: TokenContext) -> dict[str, Any]:
    """`idp-self-redeem` only: RFC 7523 section 2.1 jwt-bearer with one of this IdP's own
    ID-JAGs as `assertion`, from any authenticated client, answered with an opaque access
    token. IDJAG "Cross-Domain Use" forbids exactly this."""
    assertion = ctx.params.get("assertion")
    if assertion is None:
        raise TokenError("invalid_request", "assertion is required")
    try:
        claims = jwt.decode(
            assertion,
            ctx.signing_key.private_key.public_key(),
            algorithms=[ALGORITHM],
            issuer=ctx.settings.issuer,
            options={"verify_aud": False, "require": ["iss", "sub", "exp", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError("invalid_grant", f"the assertion is not valid: {exc}") from exc
    if not ctx.store.issued_id_jag(str(claims["jti"])):
        raise TokenError("invalid_grant", "the assertion is not an ID-JAG issued here")
    scope = tuple(str(claims.get("scope", "")).split())
    lifetime = ctx.settings.id_token_lifetime
    access = ctx.store.add_access_token(str(claims["sub"]), ctx.client.client_id, scope, lifetime)
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": lifetime,
    }
    if scope:
        body["scope"] = " ".join(scope)
    return body
