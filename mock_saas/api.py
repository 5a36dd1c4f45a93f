"""The API route: who may read, and what they get (RFC 6750, RFC 9068 section 4, RFC 9449).

Accepted: a static integration-user key (sees every user's data), or a JWT signed by a
trusted AS or the service's own AS, unexpired, whose `aud` contains the service's resource
(RFC 8707) and whose `scope` holds the read scope. A DPoP-bound token (`cnf.jkt`), and at a
service with `require_dpop` every token, must come as `Authorization: DPoP` with a valid proof
for this request (RFC 9449 §7.1); otherwise `Authorization: DPoP` is taken like `Bearer`.
Injected token faults (`mock_saas.faults`) refuse a token that would otherwise be accepted.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mock_saas.data import BUILT_IN_USERS, body_for, returned_items
from mock_saas.dpop import CHALLENGE_ALGS, ProofCheck, bound_key, check_proof
from mock_saas.records import decode_unverified, new_record, note_credential, scopes_of
from mock_saas.state import ServiceState
from mock_saas.verify import JwtRejected, verify_jwt

INTEGRATION_USER = "integration"
SCHEMES = {"bearer": "Bearer", "dpop": "DPoP"}  # RFC 9449 section 7.1: the DPoP scheme


class ApiRejected(Exception):
    """A request the API refuses: 401 (`invalid_token`, `invalid_dpop_proof`) or 403
    `insufficient_scope`. `fault` names the injected fault that refused it, if any."""

    def __init__(
        self,
        reason: str,
        status_code: int = 401,
        scope: str | None = None,
        *,
        error: str = "invalid_token",
        fault: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.scope = scope
        self.error = "insufficient_scope" if status_code == 403 else error
        self.fault = fault

    def response(self, dpop: bool) -> Response:
        """RFC 6750 section 3 challenge with section 3.1's error code; with `dpop`, the
        RFC 9449 section 7.1 `DPoP` challenge naming the accepted algorithms."""
        params = [f'error="{self.error}"']
        if self.status_code == 403:
            params.append(f'scope="{self.scope}"')
        elif self.fault is not None:  # a fixed text, safe inside a quoted-string
            params.append(f'error_description="{self.reason}"')
        if dpop:
            params.append(f'algs="{CHALLENGE_ALGS}"')
        challenge = f"{'DPoP' if dpop else 'Bearer'} {', '.join(params)}"
        return JSONResponse(
            {"error": self.error, "error_description": self.reason},
            status_code=self.status_code,
            headers={"WWW-Authenticate": challenge},
        )


def parse_authorization(value: str | None) -> tuple[str | None, str | None]:
    """(scheme as written, credential) of an Authorization header (RFC 9110 11.6.2)."""
    if not value:
        return None, None
    scheme, _, credential = value.strip().partition(" ")
    return scheme, credential.strip() or None


def is_service_key(state: ServiceState, token: str) -> bool:
    return any(
        hmac.compare_digest(key.encode(), token.encode()) for key in state.settings.service_keys
    )


def _require_dpop(scheme: str, proof: ProofCheck, jkt: str | None) -> None:
    """RFC 9449 §7.1: the DPoP scheme, a DPoP-bound token, a valid proof for this request."""
    if scheme.lower() != "dpop":
        raise ApiRejected("a DPoP-bound token must be presented with the DPoP scheme")
    if jkt is None:
        raise ApiRejected("the access token is not DPoP-bound (no cnf.jkt)")
    if not proof.valid:
        raise ApiRejected(
            f"DPoP proof refused: {proof.verdict or 'no DPoP header'}", error="invalid_dpop_proof"
        )


async def authorize(
    state: ServiceState,
    scheme: str | None,
    token: str | None,
    static: bool,
    proof: ProofCheck,
) -> tuple[str, list[str]]:
    """The user a request reads as, and its scopes; raises `ApiRejected`."""
    if token is None:
        raise ApiRejected("no access token")
    if scheme is None or scheme.lower() not in SCHEMES:
        raise ApiRejected(f"unsupported authorization scheme {scheme!r}")
    if static:
        return INTEGRATION_USER, list(state.settings.all_scopes)
    decoded = decode_unverified(token)
    if decoded is None:
        raise ApiRejected("the token is neither a JWT nor a known API key")
    settings = state.settings
    try:
        claims = await verify_jwt(
            state.trust, token, *decoded, audience=settings.resource, require=("aud",)
        )
    except JwtRejected as exc:
        raise ApiRejected(str(exc)) from exc
    state.faults.know(token)
    jkt = bound_key(claims)
    if settings.require_dpop or jkt is not None:
        _require_dpop(scheme, proof, jkt)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise ApiRejected("the token has no sub claim")
    scopes = scopes_of(claims)
    if settings.read_scope not in scopes:
        raise ApiRejected(
            f"the token lacks the {settings.read_scope!r} scope", 403, settings.read_scope
        )
    return sub, scopes


def every_user(state: ServiceState) -> list[str]:
    """What the integration user sees: the built-in users and every user seen so far."""
    return list(dict.fromkeys([*BUILT_IN_USERS, *state.seen_users]))


def _judge_proof(
    state: ServiceState, request: Request, record: dict[str, Any], token: str | None
) -> ProofCheck:
    """The `DPoP` header(s) of an API request, judged against this request and the token."""
    claims = record.get("claims") if isinstance(record.get("claims"), dict) else None
    proof = check_proof(
        request.headers.getlist("dpop"),
        state.proofs,
        method=request.method,
        url=state.settings.api_url,
        access_token=token,
        jkt=bound_key(claims),
    )
    proof.note(record)
    return proof


async def api_endpoint(request: Request, state: ServiceState) -> Response:
    """`GET {api_path}`: the caller's data, and a record of what was presented."""
    record = new_record(request, "api")
    record["dpop_required"] = state.settings.require_dpop
    scheme, token = parse_authorization(request.headers.get("authorization"))
    record["authorization_scheme"] = SCHEMES.get((scheme or "").lower())
    static = token is not None and is_service_key(state, token)
    note_credential(record, token, static)
    proof = _judge_proof(state, request, record, token)
    response = state.faults.response(state.settings.kind)
    if response is not None:
        record["reason"] = f"fault injected: {state.faults.mode}"
        record["fault"] = state.faults.mode
    else:
        response = await _serve(state, record, scheme, token, static, proof)
    record["status"] = response.status_code
    state.records.add(record)
    return response


async def _serve(
    state: ServiceState,
    record: dict[str, Any],
    scheme: str | None,
    token: str | None,
    static: bool,
    proof: ProofCheck,
) -> Response:
    dpop = state.settings.require_dpop or bound_key(record.get("claims")) is not None
    try:
        user, scopes = await authorize(state, scheme, token, static, proof)
        assert token is not None
        refusal = state.faults.refusal(token)
        if refusal is not None:
            record["user"] = user
            raise ApiRejected(refusal[1], fault=refusal[0])
    except ApiRejected as exc:
        record["reason"] = exc.reason
        record["fault"] = exc.fault
        return exc.response(dpop)
    if static:
        users = every_user(state)
    else:
        users = [user]
        state.saw_user(user)
    body = body_for(state.settings, users, integration=static)
    record.update(
        accepted=True,
        reason="integration key" if static else "valid access token",
        user=user,
        scopes=scopes,
        returned=returned_items(body),
    )
    return JSONResponse(body)
