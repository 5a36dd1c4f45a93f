"""Injected failures of the API routes, switched over HTTP (`POST /_faults`).

They let the suite watch how the MCP server handles a downstream failure: whether the
tool error leaks the downstream body (the canary below), whether one broken service
takes other requests down with it, and what it does when its token stops working.

* `{"mode": "server_error" | "unavailable"}`: every API request gets 500 or 503.
* `{"mode": "reject_tokens"}`: every credential is refused with 401 `invalid_token` until
  `{"mode": "none"}`, so the suite can count how often the MCP server tries.
* `{"expire_tokens": true}`: one shot. Every access token the service has issued or seen so
  far is expired from now on (401 `invalid_token`, "the access token expired"); tokens
  obtained afterwards work. That is what a token reaching the end of its life looks like.
"""

from __future__ import annotations

import hashlib
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MODES = ("none", "server_error", "unavailable", "reject_tokens")
CANARY = "MOCK-SAAS-INTERNAL-DETAIL"
"""Appears only in fault bodies; if a client of the MCP server ever sees it, it leaked."""

EXPIRED = "the access token expired"
REJECTED = "the access token is not accepted right now"
MAX_TRACKED_TOKENS = 10_000


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Faults:
    """The current fault mode of one service, and the tokens it has expired."""

    def __init__(self) -> None:
        self.mode = "none"
        self._known: dict[str, None] = {}  # fingerprints of tokens issued or seen
        self._expired: dict[str, None] = {}

    def response(self, kind: str) -> Response | None:
        """The faulted answer for an API request, or None when no such fault is on."""
        if self.mode == "server_error":
            return JSONResponse(
                {
                    "errorCode": "INTERNAL_ERROR",
                    "message": f"{CANARY}: unhandled exception in {kind} request handler",
                    "trace": (
                        f'  File "/srv/{kind}/api/handlers.py", line 412, in get_records\n'
                        f"    raise InternalError('{CANARY}: connection pool exhausted')"
                    ),
                },
                status_code=500,
            )
        if self.mode == "unavailable":
            return JSONResponse(
                {"errorCode": "SERVICE_UNAVAILABLE", "message": "try again later"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        return None

    def know(self, token: str) -> None:
        """Remember a token the service issued or saw (what `expire_tokens` expires)."""
        if len(self._known) < MAX_TRACKED_TOKENS:
            self._known[_fingerprint(token)] = None

    def expire_known(self) -> int:
        """Expire every token known so far; the number of tokens newly expired."""
        fresh = [f for f in self._known if f not in self._expired]
        for fingerprint in fresh[: max(MAX_TRACKED_TOKENS - len(self._expired), 0)]:
            self._expired[fingerprint] = None
        self._known.clear()
        return len(fresh)

    def refusal(self, token: str) -> tuple[str, str] | None:
        """(fault, reason) when a token fault refuses `token`, else None."""
        if self.mode == "reject_tokens":
            return "reject_tokens", REJECTED
        if _fingerprint(token) in self._expired:
            return "expired", EXPIRED
        return None


async def faults_endpoint(request: Request, faults: Faults) -> Response:
    """`GET /_faults` -> `{"mode": ...}`; `POST /_faults` `{"mode": ...}` sets it and
    `{"expire_tokens": true}` expires the tokens known so far (also `{"expired": N}`)."""
    body: dict[str, object] = {}
    if request.method == "POST":
        try:
            document = json.loads(await request.body())
        except ValueError:
            document = None
        mode = document.get("mode", faults.mode) if isinstance(document, dict) else None
        expire = document.get("expire_tokens", False) if isinstance(document, dict) else None
        if mode not in MODES or not isinstance(expire, bool):
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": f"mode must be one of {MODES}; expire_tokens a boolean",
                },
                status_code=400,
            )
        faults.mode = mode
        if expire:
            body["expired"] = faults.expire_known()
    return JSONResponse({"mode": faults.mode, **body})
