"""POST /_test/lifetimes: a test-only hook that shortens token lifetimes for one client.

It lets the suite watch refresh and access tokens expire in a second or two instead of hours.
The body names one client and its lifetimes in seconds; only tokens issued to that client
afterwards are affected, so the rest of a run keeps the normal lifetimes. A null or missing
lifetime restores the default. Like `/_test/sign`, it exists only when `settings.test_signer`
is true and answers loopback callers only.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reference.authorization_server.context import context
from reference.authorization_server.store import TokenLifetimes
from reference.authorization_server.test_signer import loopback_json

MAX_LIFETIME = 86400 * 30


def _lifetime(body: dict[str, Any], name: str) -> int | None:
    """A lifetime member: a positive whole number of seconds, or null/absent for the default."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_LIFETIME:
        raise ValueError(f"{name} must be a whole number of seconds from 1 to {MAX_LIFETIME}")
    return value


async def lifetimes_endpoint(request: Request) -> Response:
    """Set `{"client_id", "access_token", "refresh_token"}` lifetimes for one client."""
    ctx = context(request)
    body = await loopback_json(request)
    if isinstance(body, Response):
        return body
    if not isinstance(body.get("client_id"), str):
        return JSONResponse(
            {"error": 'expected {"client_id": ..., "access_token": N, "refresh_token": N}'},
            status_code=400,
        )
    client_id = body["client_id"]
    if client_id not in ctx.store.clients:
        return JSONResponse({"error": f"unknown client {client_id!r}"}, status_code=404)
    try:
        lifetimes = TokenLifetimes(
            _lifetime(body, "access_token"), _lifetime(body, "refresh_token")
        )
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    ctx.store.lifetimes[client_id] = lifetimes
    return JSONResponse(
        {
            "client_id": client_id,
            "access_token": lifetimes.access_token,
            "refresh_token": lifetimes.refresh_token,
        }
    )
