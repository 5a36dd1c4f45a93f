"""Injected failures of the API routes, switched over HTTP (`POST /_faults`).

They let the suite watch how the MCP server handles a downstream failure: whether the
tool error leaks the downstream body (the canary below), and whether one broken service
takes other requests down with it.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MODES = ("none", "server_error", "unavailable")
CANARY = "MOCK-SAAS-INTERNAL-DETAIL"
"""Appears only in fault bodies; if a client of the MCP server ever sees it, it leaked."""


class Faults:
    """The current fault mode of one service."""

    def __init__(self) -> None:
        self.mode = "none"

    def response(self, kind: str) -> Response | None:
        """The faulted answer for an API request, or None when no fault is on."""
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


async def faults_endpoint(request: Request, faults: Faults) -> Response:
    """`GET /_faults` -> `{"mode": ...}`; `POST /_faults` `{"mode": ...}` sets it."""
    if request.method == "POST":
        try:
            mode = json.loads(await request.body()).get("mode")
        except (ValueError, AttributeError):
            mode = None
        if mode not in MODES:
            return JSONResponse(
                {"error": "invalid_request", "error_description": f"mode must be one of {MODES}"},
                status_code=400,
            )
        faults.mode = mode
    return JSONResponse({"mode": faults.mode})
