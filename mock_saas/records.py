"""What the service witnessed: one record per API or token request, read over HTTP.

The suite proves what the MCP server sent by reading `GET /_records` (see the contract):
every request is kept, accepted or not, with the raw credential and its unverified JOSE
header and claims, so a wrong audience, a passthrough token or a shared key is visible.
A `DPoP` proof is kept decoded too, with the service's verdict on it (`mock_saas.dpop`),
and `fault` names the injected fault that decided the answer, if any.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MAX_RECORDS = 10_000
DEFAULT_LIMIT = 1000


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(header, claims) of a compact JWS (RFC 7515 section 7.1), unverified; None if the
    value does not parse as one."""
    if token.count(".") != 2:
        return None
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return header, claims


def scopes_of(claims: dict[str, Any] | None) -> list[str]:
    """The `scope` claim (RFC 9068 section 2.2.3 / RFC 8693 section 4.2) as a list."""
    value = (claims or {}).get("scope")
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def caller_of(request: Request) -> str | None:
    return f"{request.client.host}:{request.client.port}" if request.client else None


def new_record(request: Request, kind: str) -> dict[str, Any]:
    """A record with the request's fields filled and the outcome fields at their defaults."""
    return {
        "kind": kind,
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "caller": caller_of(request),
        "authorization_scheme": None,
        "token": None,
        "token_kind": None,
        "header": None,
        "claims": None,
        "dpop": request.headers.get("dpop"),
        "dpop_required": False,
        "dpop_header": None,
        "dpop_claims": None,
        "dpop_verdict": None,
        "dpop_jti_reused": None,
        "fault": None,
        "accepted": False,
        "reason": "",
        "status": 0,
        "user": None,
        "scopes": [],
        "returned": [],
    }


def note_credential(record: dict[str, Any], token: str | None, static: bool) -> None:
    """Fill `token`, `token_kind`, `header` and `claims` for a presented credential."""
    record["token"] = token
    if token is None:
        return
    decoded = None if static else decode_unverified(token)
    record["token_kind"] = "static" if static else ("jwt" if decoded else "opaque")
    if decoded is not None:
        record["header"], record["claims"] = decoded
        record["scopes"] = scopes_of(decoded[1])


class Records:
    """A bounded, append-only log with increasing sequence numbers.

    Mutated only from the app's event loop and never across an `await`, which makes each
    append atomic for concurrent requests.
    """

    def __init__(self, limit: int = MAX_RECORDS) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=limit)
        self.last = 0

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        self.last += 1
        stored = {"seq": self.last, "time": time.time(), **record}
        self._records.append(stored)
        return stored

    def since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """Records with `seq` greater than `seq`, oldest first, at most `limit`."""
        found = [r for r in self._records if r["seq"] > seq]
        return found[: max(limit, 0)]


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = int(raw)  # ValueError for non-numbers, answered 400 by the caller
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


async def records_endpoint(request: Request, records: Records) -> Response:
    """`GET /_records?since=N&limit=L` -> `{"records": [...], "last": M}`."""
    try:
        since = _int_param(request, "since", 0)
        limit = _int_param(request, "limit", DEFAULT_LIMIT)
    except ValueError:
        return JSONResponse(
            {"error": "invalid_request", "error_description": "since and limit are integers"},
            status_code=400,
        )
    return JSONResponse({"records": records.since(since, limit), "last": records.last})
