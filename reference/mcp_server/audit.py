"""The MCP server's audit trail of its second hop, readable at `GET {origin}/_audit`.

MCP security best practices §"Token Passthrough" names the loss of an audit trail as one
harm of forwarding client tokens: a server acting for users must be able to say which user,
through which client, got which downstream token and made which call. Every downstream token
acquisition is a `token_exchange` event (RFC 8693 exchange at the AS, or ID-JAG issuance at
the IdP and its redemption at the service's AS) and every API call a `downstream_call` event,
each with its outcome. Events never carry tokens or response bodies.

`GET /_audit?since=N` with `Authorization: Bearer <settings.audit_token>` answers
`{"events": [events with seq > N], "last": highest seq}`; anything else gets 401.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reference.settings import ReferenceSettings

AUDIT_PATH = "/_audit"
MAX_EVENTS = 10_000
"""Events kept in memory; older ones are forgotten (sequence numbers keep counting)."""

TOKEN_EXCHANGE_EVENT = "token_exchange"
DOWNSTREAM_CALL_EVENT = "downstream_call"
SUCCESS = "success"
FAILURE = "failure"


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    time: str  # RFC 3339, UTC
    event: str  # TOKEN_EXCHANGE_EVENT | DOWNSTREAM_CALL_EVENT
    user: str
    client_id: str
    service: str
    scopes: list[str]
    outcome: str  # SUCCESS | FAILURE
    detail: str


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditTrail:
    """An in-memory, append-only event log (the `audit-*` defects drop some events)."""

    def __init__(self, settings: ReferenceSettings) -> None:
        self.settings = settings
        self._events: deque[AuditEvent] = deque(maxlen=MAX_EVENTS)
        self._last = 0

    def _suppressed(self, event: str, outcome: str) -> bool:
        if event == TOKEN_EXCHANGE_EVENT and self.settings.defect("audit-exchange-not-logged"):
            return True
        if outcome == FAILURE and self.settings.defect("audit-failures-not-logged"):
            return True
        return (
            event == DOWNSTREAM_CALL_EVENT
            and outcome == SUCCESS
            and self.settings.defect("audit-downstream-call-not-logged")
        )

    def record(
        self,
        event: str,
        *,
        user: str,
        client_id: str,
        service: str,
        scopes: Iterable[str],
        outcome: str,
        detail: str,
    ) -> None:
        if self._suppressed(event, outcome):
            return
        self._last += 1
        self._events.append(
            AuditEvent(
                seq=self._last,
                time=_now_rfc3339(),
                event=event,
                user=user,
                client_id=client_id,
                service=service,
                scopes=list(scopes),
                outcome=outcome,
                detail=detail,
            )
        )

    def since(self, seq: int) -> list[dict[str, Any]]:
        return [asdict(event) for event in self._events if event.seq > seq]

    @property
    def last(self) -> int:
        return self._last


def _audit_credential(request: Request) -> str | None:
    """The bearer credential of the request (RFC 6750 §2.1; scheme case-insensitive)."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def _unauthorized(credential: str | None) -> Response:
    """RFC 6750 §3.1: no error code when no credential was sent, else `invalid_token`."""
    challenge = "Bearer" if credential is None else 'Bearer error="invalid_token"'
    return JSONResponse(
        {"error": "unauthorized", "error_description": "the audit token is required"},
        status_code=401,
        headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
    )


def audit_route(settings: ReferenceSettings, trail: AuditTrail) -> Route:
    """`GET /_audit?since=N`: readable only with the deployment's audit token."""

    async def endpoint(request: Request) -> Response:
        credential = _audit_credential(request)
        if credential is None or not hmac.compare_digest(
            credential.encode(), settings.audit_token.encode()
        ):
            return _unauthorized(credential)
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "since must be an integer"},
                status_code=400,
            )
        return JSONResponse(
            {"events": trail.since(since), "last": trail.last},
            headers={"Cache-Control": "no-store"},
        )

    return Route(AUDIT_PATH, endpoint, methods=["GET"])
