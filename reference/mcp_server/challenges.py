"""`WWW-Authenticate` challenges and the error responses that carry them.

RFC 6750 §3 (Bearer challenge syntax and error codes), §3.1 (`invalid_request`,
`invalid_token` -> 401, `insufficient_scope` -> 403); RFC 9728 §5.1 (`resource_metadata`);
MCP 2025-11-25 authorization §"Protected Resource Metadata Discovery Requirements" and
§"Scope Challenge Handling" (`scope` in 401 and 403 challenges). RFC 9449 §7.1: the `DPoP`
challenge takes the same parameters plus `algs`; a server that accepts both schemes sends
both challenges (RFC 9110 §11.6.1), here in two `WWW-Authenticate` fields, Bearer first.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import JSONResponse, Response


@dataclass(frozen=True)
class Challenge:
    """The auth-params of one challenge; `None` members are left out."""

    error: str | None = None
    error_description: str | None = None
    scope: str | None = None
    resource_metadata: str | None = None
    algs: str | None = None  # RFC 9449 §7.1, DPoP challenges only


def _quoted_string_safe(value: str) -> str:
    """RFC 6750 §3: error_description / scope use %x20-21 / %x23-5B / %x5D-7E only."""
    return "".join(ch for ch in value if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')


def www_authenticate(challenge: Challenge, scheme: str = "Bearer") -> str:
    """Render `Bearer k="v", ...` (RFC 6750 §3, RFC 9110 §11.6.1 auth-params), or the same
    for `DPoP` (RFC 9449 §7.1)."""
    params = [
        ("error", challenge.error),
        ("error_description", challenge.error_description),
        ("scope", challenge.scope),
        ("resource_metadata", challenge.resource_metadata),
        ("algs", challenge.algs),
    ]
    rendered = [f'{name}="{_quoted_string_safe(value)}"' for name, value in params if value]
    return f"{scheme} " + ", ".join(rendered) if rendered else scheme


def challenge_response(
    status_code: int,
    challenge: Challenge | None,
    description: str,
    dpop: Challenge | None = None,
) -> Response:
    """A JSON error response (no JSON-RPC result, no tool output) with an optional Bearer
    challenge and an optional DPoP challenge."""
    errors = [c.error for c in (dpop, challenge) if c is not None and c.error]
    headers = {"Cache-Control": "no-store"}
    if challenge is not None:
        headers["WWW-Authenticate"] = www_authenticate(challenge)
    response = JSONResponse(
        {"error": errors[0] if errors else "unauthorized", "error_description": description},
        status_code=status_code,
        headers=headers,
    )
    if dpop is not None:
        response.headers.append("WWW-Authenticate", www_authenticate(dpop, "DPoP"))
    return response
