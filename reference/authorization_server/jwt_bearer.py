"""RFC 7523 jwt-bearer grant for Identity Assertion JWT Authorization Grants (ID-JAG).

This AS acts as the Resource Authorization Server of draft-ietf-oauth-identity-assertion-
authz-grant ("ID-JAG" below): a client presents the ID-JAG the enterprise IdP issued it as
the `assertion` (RFC 7523 §2.1; ID-JAG §4.4) and receives an access token for the resource
the ID-JAG names, acting for the user the IdP vouches for. The assertion is checked by
RFC 7523 §3 and ID-JAG §4.4.1; failures are `invalid_grant` (RFC 7523 §3.1) unless noted.
Client authentication (confidential clients only, ID-JAG §8.1) happens at the token endpoint.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeGuard

import jwt

from reference.authorization_server.context import Context
from reference.authorization_server.errors import OAuthError
from reference.authorization_server.federation import IdpError
from reference.authorization_server.params import Params, split_scope
from reference.authorization_server.store import Client, now
from reference.authorization_server.tokens import IssuedTokens, issue_for_grant
from reference.settings import SCOPES_SUPPORTED

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"
ID_JAG_TYP = "oauth-id-jag+jwt"
# RFC 8725 §3.1 / §3.2: an allow-list of asymmetric algorithms (with the JWK `kty` each
# needs); never `none`, never HS*.
ALGORITHMS = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}
CLOCK_SKEW = 60  # seconds allowed for `iat` and `nbf` (RFC 7523 §3 items 5-6)
REPLAY_CACHE_ROUND_TRIP = 0.05  # seconds; only the `ras-jti-race` defect waits for it


def _is_numeric_date(value: Any) -> TypeGuard[int | float]:
    """RFC 7519 §2 NumericDate: a JSON number of seconds since the epoch."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _invalid(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def _header(ctx: Context, assertion: str) -> dict[str, Any]:
    """ID-JAG §3 / §4.4.1: `typ` is exactly `oauth-id-jag+jwt` (RFC 8725 §3.11), so ID tokens
    and other JWTs of the same IdP are not grants; the algorithm is allow-listed."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise _invalid("the assertion is not a JWT") from exc
    if header.get("typ") != ID_JAG_TYP and not ctx.defect("ras-typ-unchecked"):
        raise _invalid(f"the assertion typ must be {ID_JAG_TYP}")
    alg = header.get("alg")
    if not (isinstance(alg, str) and alg in ALGORITHMS) and not ctx.defect(
        "ras-signature-unchecked"
    ):
        raise _invalid(f"assertion alg {header.get('alg')!r} is not accepted")
    return header


async def _verified_claims(ctx: Context, assertion: str, header: dict[str, Any]) -> dict[str, Any]:
    """RFC 7523 §3 items 1 and 9: `iss` is the trusted IdP and the signature verifies with
    one of its keys (its JWKS from OIDC discovery). Time and audience claims are checked
    separately, so the pyjwt checks of those are off here."""
    if ctx.defect("ras-signature-unchecked"):
        try:
            claims: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise _invalid("the assertion is not a JWT") from exc
        return claims
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise _invalid("the assertion is not a JWT") from exc
    if unverified.get("iss") != ctx.settings.idp_issuer:
        raise _invalid("the assertion issuer is not trusted")
    try:
        key = await ctx.idp.key_for(header.get("kid"))
    except IdpError as exc:
        raise _invalid("no key of the trusted IdP verifies the assertion") from exc
    if key.key_type != ALGORITHMS[header["alg"]]:
        raise _invalid("the assertion alg does not fit the IdP key")
    try:
        claims = jwt.decode(
            assertion,
            key.key,
            algorithms=[header["alg"]],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise _invalid("the assertion signature does not verify") from exc
    return claims


def _check_audience(ctx: Context, claims: dict[str, Any]) -> None:
    """ID-JAG §4.4.1 / RFC 7523 §3 item 3: `aud` is this AS's issuer identifier, as a string
    or a one-element array (no other party may also accept the assertion)."""
    if ctx.defect("ras-aud-unchecked"):
        return
    aud = claims.get("aud")
    if aud != ctx.issuer and aud != [ctx.issuer]:
        raise _invalid("the assertion is not addressed to this authorization server")


def _check_client(ctx: Context, client: Client, claims: dict[str, Any]) -> None:
    """ID-JAG §4.4.1: the `client_id` claim names the client that authenticated."""
    if claims.get("client_id") != client.client_id and not ctx.defect("ras-client-id-unbound"):
        raise _invalid("the assertion was issued to another client")


def _check_times(ctx: Context, claims: dict[str, Any]) -> None:
    """RFC 7523 §3 items 4-6: `exp` present and in the future; `iat` and `nbf` not in the
    future (small clock skew allowed)."""
    if ctx.defect("ras-expiry-unchecked"):
        return
    t = now()
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if ctx.defect("ras-exp-numeric-string") and isinstance(exp, str) and exp.isdigit():
        exp = int(exp)
    if not _is_numeric_date(exp) or exp <= t:
        raise _invalid("the assertion has expired or has no exp")
    if iat is not None and (not _is_numeric_date(iat) or iat > t + CLOCK_SKEW):
        raise _invalid("the assertion iat is in the future")
    if nbf is not None and (not _is_numeric_date(nbf) or nbf > t + CLOCK_SKEW):
        raise _invalid("the assertion is not yet valid")


def _check_identity(claims: dict[str, Any]) -> None:
    """RFC 7523 §3 item 2 and ID-JAG §3.1: `sub` and `jti` are required (`jti` for replay
    detection, RFC 7523 §3 item 7)."""
    for name in ("sub", "jti"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise _invalid(f"the assertion has no {name}")


def _resource(ctx: Context, claims: dict[str, Any]) -> str | None:
    """ID-JAG §3.1 / §4.4.1 `resource` (RFC 8707 §2): one resource this AS serves, as a
    string or one-element array. None when the claim is absent (the default resource)."""
    resource = claims.get("resource")
    if isinstance(resource, list) and len(resource) == 1:
        resource = resource[0]
    if resource is None:
        return None
    if resource not in ctx.resources:
        raise _invalid("the assertion names a resource this server does not serve")
    return str(resource)


def _scope(ctx: Context, claims: dict[str, Any], form: Params) -> list[str]:
    """ID-JAG §4.4.1 (RFC 6749 §3.3): the granted scope is the ID-JAG's `scope`, narrowed to
    the requested `scope` if one is sent; never wider than the ID-JAG. Scopes in the ID-JAG
    that this AS does not know -> `invalid_grant`; nothing left -> `invalid_scope`."""
    granted_by_idp = split_scope(
        claims.get("scope") if isinstance(claims.get("scope"), str) else ""
    )
    unknown = [s for s in granted_by_idp if s not in SCOPES_SUPPORTED]
    if unknown:
        raise _invalid(f"the assertion carries unknown scopes: {' '.join(unknown)}")
    requested = split_scope(form.get("scope"))
    if requested and ctx.defect("ras-scope-not-intersected"):
        granted = [s for s in requested if s in SCOPES_SUPPORTED]
    elif requested:
        granted = [s for s in granted_by_idp if s in requested]
    else:
        granted = granted_by_idp
    if not granted:
        raise OAuthError("invalid_scope", "no requested scope is granted by the assertion")
    return granted


async def _redeem_once(ctx: Context, claims: dict[str, Any]) -> None:
    """RFC 7523 §3 item 7: an assertion's `jti` is redeemed once; it is remembered until the
    assertion expires. The check and the record are one step (no await between them, nor
    between them and issuing the token), so concurrent redemptions cannot both pass."""
    iss, jti, exp = str(claims.get("iss")), claims["jti"], claims.get("exp")
    if ctx.store.assertion_seen(iss, jti) and not ctx.defect("ras-jti-replay-accepted"):
        raise _invalid("the assertion was already redeemed")
    if ctx.defect("ras-jti-race"):
        # The check-then-act bug: a round trip to a shared replay cache between the check
        # and the record lets every concurrent redemption through.
        await asyncio.sleep(REPLAY_CACHE_ROUND_TRIP)
    # Without a usable exp (only under `ras-expiry-unchecked`) remember it for an hour.
    ctx.store.remember_assertion(iss, jti, int(exp) if _is_numeric_date(exp) else now() + 3600)


async def jwt_bearer_grant(ctx: Context, client: Client, form: Params) -> IssuedTokens:
    """RFC 7523 §2.1 / ID-JAG §4.4: redeem an ID-JAG for an access token for its `resource`
    and user. ID-JAG §4.4.1: the response states the granted scope and resource; §4.4.3:
    no refresh token (the client re-presents the ID-JAG instead)."""
    assertion = form.get("assertion")
    if assertion is None:
        raise OAuthError("invalid_request", "assertion is required")
    header = _header(ctx, assertion)
    claims = await _verified_claims(ctx, assertion, header)
    _check_audience(ctx, claims)
    _check_client(ctx, client, claims)
    _check_times(ctx, claims)
    _check_identity(claims)
    resource = _resource(ctx, claims)
    scope = _scope(ctx, claims, form)
    await _redeem_once(ctx, claims)
    auth_time = claims.get("auth_time")
    grant = ctx.store.new_grant(
        client_id=client.client_id,
        user=claims["sub"],
        scope=scope,
        resource=resource or ctx.settings.mcp_url,
        auth_time=auth_time if isinstance(auth_time, int) else now(),
    )
    issued = issue_for_grant(
        ctx, grant, scope=scope, with_refresh_token=ctx.defect("ras-refresh-token-issued")
    )
    issued.resource = resource
    return issued
