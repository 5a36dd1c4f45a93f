"""The service AS's token endpoint: the RFC 7523 jwt-bearer grant for ID-JAGs.

draft-ietf-oauth-identity-assertion-authz-grant (ID-JAG) section 4.4 ("resource
authorization server" processing) on top of RFC 7523 section 3; error responses are
RFC 6749 section 5.2. A valid DPoP proof binds the issued token to its key (RFC 9449 §5,
`cnf.jkt` per §6.1, `token_type` DPoP); with `require_dpop` a proof is required. Every
request is recorded, with the assertion and the proof it carried.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mock_idp.token import NO_STORE, TokenError, form_params
from mock_saas.dpop import ALGORITHMS, ProofCheck, check_proof
from mock_saas.records import decode_unverified, new_record, note_credential, scopes_of
from mock_saas.settings import SaasClient, SaasSettings
from mock_saas.state import ServiceState
from mock_saas.verify import JwtRejected, verify_jwt

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"
ID_JAG_TYP = "oauth-id-jag+jwt"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="mock_saas"'}


def metadata(settings: SaasSettings) -> dict[str, Any]:
    """RFC 8414 section 2 metadata of the service's own AS."""
    return {
        "issuer": settings.issuer,
        "token_endpoint": settings.token_endpoint,
        "jwks_uri": settings.jwks_uri,
        "grant_types_supported": [JWT_BEARER],
        "authorization_grant_profiles_supported": [ID_JAG_PROFILE],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "scopes_supported": list(settings.all_scopes),
        "dpop_signing_alg_values_supported": list(ALGORITHMS),  # RFC 9449 §5.1
    }


async def token_endpoint(request: Request, state: ServiceState) -> Response:
    """RFC 6749 section 3.2: POST, form-encoded, authenticated confidential client."""
    record = new_record(request, "token")
    record.update(
        grant_type=None,
        client_id=None,
        assertion=None,
        assertion_header=None,
        assertion_claims=None,
        issued_jti=None,
        issued_jkt=None,
    )
    record["dpop_required"] = state.settings.require_dpop
    proof = check_proof(
        request.headers.getlist("dpop"),
        state.proofs,
        method="POST",
        url=state.settings.token_endpoint,
    )
    proof.note(record)
    response: Response
    try:
        params = await form_params(request)
        record["grant_type"] = params.get("grant_type")
        _note_assertion(record, params.get("assertion"))
        if not params.get("grant_type"):
            raise TokenError("invalid_request", "grant_type is required")
        client = authenticate_client(request.headers.get("authorization"), params, state.settings)
        record["client_id"] = client.client_id
        if params["grant_type"] != JWT_BEARER:
            raise TokenError("unsupported_grant_type", f"only {JWT_BEARER}")
        body, claims = await jwt_bearer_grant(state, client, params, proof)
    except TokenError as exc:
        record["reason"] = exc.description
        response = exc.response()
    else:
        record.update(
            accepted=True,
            reason="access token issued",
            user=claims["sub"],
            scopes=body["scope"].split(),
            issued_jti=claims["jti"],
            issued_jkt=claims.get("cnf", {}).get("jkt"),
        )
        response = JSONResponse(body, headers=NO_STORE)
    record["status"] = response.status_code
    state.records.add(record)
    return response


def _note_assertion(record: dict[str, Any], assertion: str | None) -> None:
    """The assertion is the credential of a jwt-bearer request: record it like a token
    (`token`, `header`, `claims`) and under its own names too."""
    note_credential(record, assertion, static=False)
    record["scopes"] = []  # for token requests, `scopes` are the granted ones
    record["assertion"] = assertion
    record["assertion_header"] = record["header"]
    record["assertion_claims"] = record["claims"]


def authenticate_client(
    authorization: str | None, params: Mapping[str, str], settings: SaasSettings
) -> SaasClient:
    """RFC 6749 section 2.3.1: client_secret_basic or client_secret_post, exactly one.
    Every client here is confidential, so there is no unauthenticated path."""
    if authorization:
        if "client_secret" in params:
            raise TokenError("invalid_request", "more than one client authentication method")
        client_id, secret = _basic_credentials(authorization)
        if params.get("client_id", client_id) != client_id:
            raise TokenError("invalid_request", "client_id differs from the Basic credentials")
    else:
        client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
    client = settings.client(client_id)
    if (
        not secret
        or client is None
        or not hmac.compare_digest(client.client_secret.encode(), secret.encode())
    ):
        raise TokenError("invalid_client", "client authentication failed", 401, _BASIC_CHALLENGE)
    return client


def _basic_credentials(authorization: str) -> tuple[str, str]:
    """RFC 7617 credentials; RFC 6749 2.3.1: id and secret are form-urlencoded first."""
    scheme, _, value = authorization.strip().partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError(scheme)
        client_id, colon, secret = (
            base64.b64decode(value.strip(), validate=True).decode().partition(":")
        )
        if not colon:
            raise ValueError("no colon")
    except (ValueError, binascii.Error) as exc:
        raise TokenError(
            "invalid_client", "malformed client credentials", 401, _BASIC_CHALLENGE
        ) from exc
    return unquote_plus(client_id), unquote_plus(secret)


def _proof_key(settings: SaasSettings, proof: ProofCheck) -> str | None:
    """RFC 9449 §5: the key a token is bound to, from a valid proof; an invalid proof, or
    none where DPoP is required, is `invalid_dpop_proof`."""
    if proof.proof is None and not settings.require_dpop:
        return None
    if not proof.valid:
        reason = proof.verdict or "a DPoP proof is required"
        raise TokenError("invalid_dpop_proof", f"DPoP proof refused: {reason}")
    return proof.jkt


async def jwt_bearer_grant(
    state: ServiceState, client: SaasClient, params: Mapping[str, str], proof: ProofCheck
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate an ID-JAG and issue an access token; returns (response body, AT claims)."""
    assertion = params.get("assertion")
    if not assertion:
        raise TokenError("invalid_request", "assertion is required")
    claims = await verify_id_jag(state, client, assertion)
    settings = state.settings
    resource = _resource(settings, claims.get("resource"))
    scope = granted_scope(settings, claims, params.get("scope"))
    jkt = _proof_key(settings, proof)
    # The replay check is last and synchronous, so it cannot race another redemption.
    if not state.use_jti(claims["iss"], claims["jti"], float(claims["exp"])):
        raise TokenError("invalid_grant", "the assertion's jti was already used")
    now = int(time.time())
    access_claims = {
        "iss": settings.issuer,
        "aud": resource,
        "sub": claims["sub"],
        "client_id": client.client_id,
        "scope": " ".join(scope),
        "iat": now,
        "exp": now + settings.token_lifetime,
        "jti": secrets.token_urlsafe(16),
    }
    if jkt is not None:
        access_claims["cnf"] = {"jkt": jkt}
    state.saw_user(claims["sub"])
    token = state.signing_key.sign(access_claims, typ="at+jwt")
    state.faults.know(token)
    body = {
        "access_token": token,
        "token_type": "Bearer" if jkt is None else "DPoP",
        "expires_in": settings.token_lifetime,
        "scope": access_claims["scope"],
    }
    return body, access_claims


async def verify_id_jag(state: ServiceState, client: SaasClient, assertion: str) -> dict[str, Any]:
    """ID-JAG section 4.4 / RFC 7523 section 3: type, issuer, signature, audience, client,
    time, subject and id of the assertion. Every failure is `invalid_grant`."""
    decoded = decode_unverified(assertion)
    if decoded is None:
        raise TokenError("invalid_grant", "the assertion is not a JWT")
    header, unverified = decoded
    if header.get("typ") != ID_JAG_TYP:
        raise TokenError("invalid_grant", f"the assertion typ must be {ID_JAG_TYP!r}")
    try:
        claims = await verify_jwt(
            state.idp_trust, assertion, header, unverified, audience=None, require=("sub", "jti")
        )
    except JwtRejected as exc:
        raise TokenError("invalid_grant", f"assertion rejected: {exc}") from exc
    aud = claims.get("aud")
    if aud != state.settings.issuer and aud != [state.settings.issuer]:
        raise TokenError("invalid_grant", "the assertion is not addressed to this AS")
    if claims.get("client_id") != client.client_id:
        raise TokenError("invalid_grant", "the assertion was issued for another client")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise TokenError("invalid_grant", "the assertion has no usable sub")
    if not isinstance(claims["jti"], str) or not claims["jti"]:
        raise TokenError("invalid_grant", "the assertion has no usable jti")
    return claims


def _resource(settings: SaasSettings, claimed: Any) -> str:
    """ID-JAG section 3: `resource`, if present, must be one this AS serves."""
    if claimed is None or claimed == settings.resource or claimed == [settings.resource]:
        return settings.resource
    raise TokenError("invalid_grant", f"the assertion's resource {claimed!r} is not served here")


def granted_scope(
    settings: SaasSettings, claims: Mapping[str, Any], requested: str | None
) -> list[str]:
    """ID-JAG scopes ∩ requested scopes (if any); an ID-JAG scope this AS does not know
    is `invalid_grant`, an empty result `invalid_scope` (RFC 6749 section 5.2)."""
    carried = scopes_of(dict(claims))
    unknown = sorted(set(carried) - set(settings.all_scopes))
    if unknown:
        raise TokenError("invalid_grant", f"the assertion carries unknown scope(s): {unknown}")
    wanted = set(requested.split()) if requested is not None else set(carried)
    granted = [s for s in carried if s in wanted]
    if not granted:
        raise TokenError("invalid_scope", "no requested scope is granted by the assertion")
    return granted
