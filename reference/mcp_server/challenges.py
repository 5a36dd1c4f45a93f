"""`WWW-Authenticate` challenges and the error responses that carry them.

RFC 6750 §3 (Bearer challenge syntax and error codes), §3.1 (`invalid_request`,
`invalid_token` -> 401, `insufficient_scope` -> 403); RFC 9728 §5.1 (`resource_metadata`);
MCP 2025-11-25 authorization §"Protected Resource Metadata Discovery Requirements" and
§"Scope Challenge Handling" (`scope` in 401 and 403 challenges).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import JSONResponse, Response


@dataclass(frozen=True)
class Challenge:
    """The auth-params of one Bearer challenge; `None` members are left out."""

    error: str | None = None
    error_description: str | None = None
    scope: str | None = None
    resource_metadata: str | None = None


def _quoted_string_safe(value: str) -> str:
    """RFC 6750 §3: error_description / scope use %x20-21 / %x23-5B / %x5D-7E only."""
    return "".join(ch for ch in value if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')


def www_authenticate(challenge: Challenge) -> str:
    """Render `Bearer k="v", ...` (RFC 6750 §3, RFC 9110 §11.6.1 auth-params)."""
    params = [
        ("error", challenge.error),
        ("error_description", challenge.error_description),
        ("scope", challenge.scope),
        ("resource_metadata", challenge.resource_metadata),
    ]
    rendered = [f'{name}="{_quoted_string_safe(value)}"' for name, value in params if value]
    return "Bearer " + ", ".join(rendered) if rendered else "Bearer"


def challenge_response(
    status_code: int,
    challenge: Challenge | None,
    description: str,
) -> Response:
    """A JSON error response (no JSON-RPC result, no tool output) with an optional challenge."""
    error = challenge.error if challenge is not None and challenge.error else "unauthorized"
    headers = {"Cache-Control": "no-store"}
    if challenge is not None:
        headers["WWW-Authenticate"] = www_authenticate(challenge)
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status_code,
        headers=headers,
    )
