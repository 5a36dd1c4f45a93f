"""The API route: who may read, and what they get (RFC 6750, RFC 9068 section 4).

Accepted: a static integration-user key (sees every user's data), or a JWT signed by a
trusted AS or the service's own AS, unexpired, whose `aud` contains the service's resource
(RFC 8707) and whose `scope` holds the read scope. `Authorization: DPoP` is accepted like
`Bearer` for now (RFC 9449 proofs are not checked yet) and recorded as such.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mock_saas.data import BUILT_IN_USERS, body_for, returned_items
from mock_saas.records import decode_unverified, new_record, note_credential, scopes_of
from mock_saas.state import ServiceState
from mock_saas.verify import JwtRejected, verify_jwt

INTEGRATION_USER = "integration"
SCHEMES = {"bearer": "Bearer", "dpop": "DPoP"}  # RFC 9449 section 7.1: the DPoP scheme


class ApiRejected(Exception):
    """A request the API refuses: 401 `invalid_token` or 403 `insufficient_scope`."""

    def __init__(self, reason: str, status_code: int = 401, scope: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.scope = scope

    def response(self) -> Response:
        """RFC 6750 section 3 challenge, with section 3.1's error code."""
        if self.status_code == 403:
            error = "insufficient_scope"
            challenge = f'Bearer error="insufficient_scope", scope="{self.scope}"'
        else:
            error = "invalid_token"
            challenge = 'Bearer error="invalid_token"'
        return JSONResponse(
            {"error": error, "error_description": self.reason},
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


async def authorize(
    state: ServiceState, scheme: str | None, token: str | None, static: bool
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


async def api_endpoint(request: Request, state: ServiceState) -> Response:
    """`GET {api_path}`: the caller's data, and a record of what was presented."""
    record = new_record(request, "api")
    scheme, token = parse_authorization(request.headers.get("authorization"))
    record["authorization_scheme"] = SCHEMES.get((scheme or "").lower())
    static = token is not None and is_service_key(state, token)
    note_credential(record, token, static)
    response = state.faults.response(state.settings.kind)
    if response is not None:
        record["reason"] = f"fault injected: {state.faults.mode}"
    else:
        response = await _serve(state, record, scheme, token, static)
    record["status"] = response.status_code
    state.records.add(record)
    return response


async def _serve(
    state: ServiceState,
    record: dict[str, Any],
    scheme: str | None,
    token: str | None,
    static: bool,
) -> Response:
    try:
        user, scopes = await authorize(state, scheme, token, static)
    except ApiRejected as exc:
        record["reason"] = exc.reason
        return exc.response()
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
