"""What an endpoint must answer to an invalid request: the properties every fuzz check holds.

Common to all: never a 5xx (the request is the client's fault, and the specifications define
a client error for it), never a redirect, never a token or a successful result.

- Token endpoint, token exchange, jwt-bearer grant (RFC 6749 §5.2, OAuth 2.1 §3.2.4,
  RFC 8693 §2.2.2, RFC 7523 §3.1, RFC 8707 §2, RFC 9449 §5): 400 (401 for `invalid_client`)
  with a JSON object whose `error` is one of the codes defined for the endpoint.
- A protected resource (RFC 6750 §3 and §3.1, RFC 9449 §7.1, MCP authorization "Token
  Handling"): 401 `invalid_token` (or 400 `invalid_request`, 403 `insufficient_scope`), with a
  `WWW-Authenticate` challenge.
- An MCP endpoint (JSON-RPC 2.0 §5, §5.1; MCP basic/transports): a 4xx, or a JSON-RPC error
  whose `code` is an integer outside the reserved range unless it is a predefined one, and
  never a successful tool result.

Another 4xx status for a defined error code is a tolerated variant (AMB-ERROR-CODE-VARIANTS).
"""

from __future__ import annotations

from typing import Any

import httpx

from conformance import mcp
from conformance.discovery import json_object
from conformance.fuzz.runner import Judgement, held, tolerated, violated
from conformance.oauth.challenge import parse_www_authenticate
from conformance.oauth.token_exchange import describe, issued

OAUTH_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
"""RFC 6749 §5.2 (OAuth 2.1 §3.2.4): the token endpoint's error codes."""
TOKEN_ENDPOINT_ERRORS = OAUTH_ERRORS | {"invalid_target"}  # RFC 8707 §2, RFC 8693 §2.2.2
DPOP_ERRORS = frozenset({"invalid_dpop_proof", "use_dpop_nonce"})  # RFC 9449 §5, §8, §7.1
RESOURCE_ERRORS = {401: ("invalid_token",), 400: ("invalid_request",), 403: ("insufficient_scope",)}
"""RFC 6750 §3.1: the error codes of a protected resource and the status each goes with."""
JSONRPC_PREDEFINED = frozenset({-32700, -32600, -32601, -32602, -32603})
JSONRPC_RESERVED = range(-32768, -32000 + 1)
JSONRPC_SERVER_ERRORS = range(-32099, -32000 + 1)


def _not_an_error(response: httpx.Response) -> Judgement | None:
    """The answers no invalid request may get: a 5xx, a redirect, any other non-4xx."""
    if response.status_code >= 500:
        return violated(f"answered {describe(response)}: a server error for a client's mistake")
    if not 400 <= response.status_code < 500:
        return violated(f"answered {describe(response)}, not a client error")
    return None


def token_error(response: httpx.Response, codes: frozenset[str]) -> Judgement:
    """An invalid token request: no token, 400 (401 `invalid_client`), a JSON `error` from
    `codes` (RFC 6749 §5.2)."""
    if issued(response) is not None:
        return violated(f"answered {describe(response)} for an invalid request")
    wrong = _not_an_error(response)
    if wrong is not None:
        return wrong
    body = json_object(response)
    code = body.get("error") if body else None
    if not isinstance(code, str):
        return violated(f"answered {describe(response)}: no JSON object with an error code")
    if code not in codes:
        return violated(f"answered error={code!r}, not one of {', '.join(sorted(codes))}")
    if response.status_code == 400 or (response.status_code == 401 and code == "invalid_client"):
        return held()
    return tolerated(f"answered {describe(response)}, where 400 is the defined status")


def resource_error(response: httpx.Response, schemes: tuple[str, ...] = ("Bearer",)) -> Judgement:
    """A request to a protected resource with an invalid credential: refused with a
    challenge of one of `schemes` naming an RFC 6750 §3.1 (or RFC 9449 §7.1) error."""
    wrong = _not_an_error(response)
    if wrong is not None:
        return wrong
    parsed = parse_www_authenticate(response.headers.get_list("www-authenticate"))
    challenges = [c for c in parsed.challenges if c.scheme.lower() in {s.lower() for s in schemes}]
    if not challenges:
        return violated(
            f"answered {response.status_code} without a {' or '.join(schemes)} "
            "WWW-Authenticate challenge"
        )
    defined = RESOURCE_ERRORS.get(response.status_code, ())
    if response.status_code == 401:
        defined = (*defined, *sorted(DPOP_ERRORS))
    errors = {c.get("error") for c in challenges}
    if errors & set(defined):
        return held()
    return tolerated(
        f"answered {response.status_code} with challenge error(s) {sorted(map(str, errors))}"
    )


def _jsonrpc_error_problem(error: Any) -> str | None:
    """What is wrong with a JSON-RPC error object (JSON-RPC 2.0 §5.1), if anything."""
    if not isinstance(error, dict):
        return f"error member is {error!r}, not an object"
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        return f"error code {code!r} is not an integer"
    if not isinstance(message, str):
        return f"error message {message!r} is not a string"
    if code in JSONRPC_RESERVED and code not in JSONRPC_PREDEFINED | set(JSONRPC_SERVER_ERRORS):
        return f"error code {code} is reserved by JSON-RPC 2.0 and not defined"
    return None


def jsonrpc_refusal(response: httpx.Response) -> Judgement:
    """An invalid MCP request: a 4xx, or a JSON-RPC error (or no body, for what reads as a
    notification), never a successful result."""
    wrong = None if response.is_success else _not_an_error(response)
    if wrong is not None:
        return wrong
    messages = mcp.messages(response)
    for message in messages:
        result = message.get("result")
        if isinstance(result, dict) and not result.get("isError"):
            return violated(f"answered {response.status_code} with a successful result")
        if "error" in message:
            problem = _jsonrpc_error_problem(message["error"])
            if problem:
                return violated(f"answered {response.status_code}: {problem}")
    if response.is_success and response.content and not messages:
        return violated(f"answered {response.status_code} with a body that is not JSON-RPC")
    return held()
