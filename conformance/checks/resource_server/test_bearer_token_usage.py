"""How the MCP server takes bearer tokens and refuses requests that lack a usable one.

RFC 6750 §2 (the token travels in the `Authorization` header) and §3 (the challenge of a
refusal), OAuth 2.1 (draft-ietf-oauth-v2-1-13) §5.1 (no tokens in the URI query, scheme name
matched case-insensitively; the form-encoded body method is only a MAY) and §5.3 (error codes),
MCP 2025-11-25 authorization "Access Token Usage" (every request carries its token, in the
`Authorization` header) and "Error Handling" (401 / 403 refusals).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from conformance import mcp
from conformance.errors import TargetUnreachable
from conformance.fixtures import Run
from conformance.flows import TokenSet
from conformance.oauth import jwt
from conformance.oauth.challenge import bearer_challenge
from conformance.verdict import Verdict

# --- helpers -------------------------------------------------------------------------------


def _leaks_result(response: httpx.Response) -> bool:
    """True when a refusal still carries a JSON-RPC `result` (or a stack trace)."""
    return (
        any("result" in m for m in mcp.messages(response))
        or "Traceback (most recent" in response.text
    )


def _describe(response: httpx.Response) -> str:
    challenge = response.headers.get("www-authenticate")
    return f"{response.status_code}" + (f" ({challenge})" if challenge else "")


def _post(
    run: Run,
    message: dict[str, Any],
    *,
    token: str | None = None,
    scheme: str = "Bearer",
    session: tuple[str | None, str] | None = None,
    url: str | None = None,
    note: str = "",
) -> httpx.Response:
    """POST one JSON-RPC message; `session` is (Mcp-Session-Id, negotiated protocol version)."""
    session_id, version = session if session else (None, run.config.protocol_version)
    return mcp.post(
        run.http,
        url or run.mcp_url,
        message,
        token=token,
        scheme=scheme,
        protocol_version=version,
        session_id=session_id,
        note=note,
    )


def _initialize(
    run: Run, token: str | None, *, scheme: str = "Bearer", note: str = "initialize"
) -> httpx.Response:
    return _post(
        run, mcp.initialize(run.config.protocol_version), token=token, scheme=scheme, note=note
    )


def _require_token_works(run: Run, alice_tokens: TokenSet, verdict: Verdict) -> httpx.Response:
    """Known-good control: alice's token opens an MCP session (else the check is an error)."""
    response = _initialize(
        run, alice_tokens.access_token, note="known-good: initialize with alice's token"
    )
    verdict.precondition(
        response.is_success, f"initialize with alice's valid token got {_describe(response)}"
    )
    return response


def _open_session(run: Run, alice_tokens: TokenSet, verdict: Verdict) -> tuple[str | None, str]:
    """Initialize with alice's token; return (Mcp-Session-Id or None, negotiated version)."""
    response = _require_token_works(run, alice_tokens, verdict)
    session_id = response.headers.get("mcp-session-id")
    result = mcp.result_of(response) or {}
    version = str(result.get("protocolVersion") or run.config.protocol_version)
    initialized = _post(
        run,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        token=alice_tokens.access_token,
        session=(session_id, version),
        note="known-good: notifications/initialized",
    )
    verdict.precondition(
        initialized.is_success,
        f"notifications/initialized with alice's token got {_describe(initialized)}",
    )
    return session_id, version


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _granted_scopes(alice_tokens: TokenSet, requested: str | None) -> set[str]:
    """Scopes alice's token carries: the token response's `scope`, the JWT claim, else requested."""
    granted = set(str(alice_tokens.body.get("scope") or requested or "").split())
    token = alice_tokens.access_token
    if jwt.is_jwt(token):
        claim = jwt.claims(token).get("scope")
        granted |= set(claim.split() if isinstance(claim, str) else claim or [])
    return granted


def _privileged_call(run: Run, alice_tokens: TokenSet, verdict: Verdict) -> httpx.Response:
    """tools/call of the privileged tool with alice's under-scoped token, in a working session."""
    tool, scope = run.config.privileged_tool, run.config.privileged_scope
    if not tool or not scope:
        pytest.skip(
            "no privileged tool and scope configured (scopes.privileged_tool, scopes.privileged)"
        )
    held = _granted_scopes(alice_tokens, run.config.basic_scope)
    verdict.precondition(
        scope not in held,
        f"alice's token already carries the privileged scope {scope!r} "
        f"(granted: {' '.join(sorted(held))}); "
        f"set scopes.basic to a scope without it",
    )
    session = _open_session(run, alice_tokens, verdict)
    listed = _post(
        run,
        mcp.jsonrpc("tools/list"),
        token=alice_tokens.access_token,
        session=session,
        note="known-good: tools/list with alice's token",
    )
    verdict.precondition(
        listed.is_success and any("result" in m for m in mcp.messages(listed)),
        f"tools/list with alice's token got {_describe(listed)}",
    )
    return _post(
        run,
        mcp.tools_call(tool, {}),
        token=alice_tokens.access_token,
        session=session,
        note=f"tools/call {tool} without scope {scope}",
    )


# --- checks --------------------------------------------------------------------------------


@pytest.mark.requirement("RS-MISSING-TOKEN-401")
def test_requests_without_token_get_401(run: Run, verdict: Verdict) -> None:
    """Every request without a token gets 401 and no result (OAuth 2.1 §5.3, MCP Error Handling)."""
    version = run.config.protocol_version
    tool = run.config.privileged_tool or "echo"
    responses = [
        ("POST initialize", _initialize(run, None, note="initialize without a token")),
        (
            "POST tools/list",
            _post(run, mcp.jsonrpc("tools/list"), note="tools/list without a token"),
        ),
        (
            "POST tools/call",
            _post(run, mcp.tools_call(tool, {}), note="tools/call without a token"),
        ),
        (
            "DELETE",
            run.http.request(
                "DELETE",
                run.mcp_url,
                headers={"MCP-Protocol-Version": version},
                note="DELETE without a token",
            ),
        ),
    ]
    try:
        responses.append(
            (
                "GET",
                run.http.get(
                    run.mcp_url,
                    headers={"Accept": "text/event-stream", "MCP-Protocol-Version": version},
                    note="GET (SSE stream) without a token",
                ),
            )
        )
    except TargetUnreachable as exc:
        # The POSTs were just answered: a GET that never completes is a stream left open.
        verdict.fail(
            "RS-MISSING-TOKEN-401",
            f"GET without a token was not refused: no complete answer ({exc}); "
            f"an SSE stream seems to have opened",
        )
    for what, response in responses:
        verdict.expect(
            "RS-MISSING-TOKEN-401",
            response.status_code == 401,
            f"{what} without a token got {_describe(response)}, not 401",
        )
        verdict.expect(
            "RS-MISSING-TOKEN-401",
            not _leaks_result(response),
            f"{what} without a token got a body with a JSON-RPC result or a stack trace",
        )


@pytest.mark.requirement("RS-MALFORMED-TOKEN-401")
def test_malformed_tokens_get_401_invalid_token(
    run: Run, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """Unparsable tokens get 401 error="invalid_token" (OAuth 2.1 §5.3.2, MCP Token Handling)."""
    _require_token_works(run, alice_tokens, verdict)
    for label, token in (
        ("not-a-token", "not-a-token"),
        ("a random 43-character string", secrets.token_urlsafe(32)),
    ):
        response = _initialize(run, token, note=f"initialize with {label}")
        status = response.status_code
        if not verdict.expect(
            "RS-MALFORMED-TOKEN-401",
            status == 401,
            f"{label} got {_describe(response)}"
            + (" (accepted)" if 200 <= status < 300 else "")
            + (" (a server error)" if status >= 500 else ""),
        ):
            continue
        challenge = bearer_challenge(response)
        error = challenge.get("error") if challenge else None
        verdict.expect(
            "RS-MALFORMED-TOKEN-401",
            error == "invalid_token",
            f"{label} got 401 with error={error!r} in the Bearer challenge, not invalid_token",
        )


@pytest.mark.requirement("RS-QUERY-TOKEN-IGNORED")
def test_query_access_token_is_ignored(run: Run, alice_tokens: TokenSet, verdict: Verdict) -> None:
    """A valid token in the access_token query parameter counts as no token (OAuth 2.1 §5.1)."""
    _require_token_works(run, alice_tokens, verdict)
    # Ignored means: the same outcome as the request without any token (normally 401).
    baseline = _initialize(run, None, note="initialize without any token")
    url = _with_query(run.mcp_url, access_token=alice_tokens.access_token)
    response = _post(
        run,
        mcp.initialize(run.config.protocol_version),
        url=url,
        note="initialize with alice's token in the query, no Authorization",
    )
    verdict.expect(
        "RS-QUERY-TOKEN-IGNORED",
        response.status_code == baseline.status_code,
        f"POST with ?access_token=<alice's valid token> and no Authorization header "
        f"got {_describe(response)}, while the same request without any token got "
        f"{baseline.status_code}",
    )
    challenge = bearer_challenge(response)
    if response.status_code == 401 and challenge and challenge.get("error"):
        verdict.note(
            f"the refusal names error={challenge.get('error')!r}: the query token "
            f"seems to have been read (RFC 6750 §3.1: no error code without "
            f"authentication)"
        )


@pytest.mark.requirement("RS-BODY-TOKEN-IGNORED")
def test_body_access_token_is_ignored(run: Run, alice_tokens: TokenSet, verdict: Verdict) -> None:
    """A valid token as a form-encoded `access_token` or in a message's `_meta` counts as no
    token (MCP "Token Requirements"; OAuth 2.1 §5.1.2, RFC 6750 §2.2: a MAY MCP has no use for)."""
    _require_token_works(run, alice_tokens, verdict)
    token = alice_tokens.access_token
    form_headers = [("Accept", mcp.ACCEPT), ("Content-Type", "application/x-www-form-urlencoded")]

    def form(data: dict[str, str], note: str) -> httpx.Response:
        return run.http.post(run.mcp_url, headers=form_headers, data=data, note=note)

    message = mcp.initialize(run.config.protocol_version)
    message["params"]["_meta"] = {"access_token": token}
    # Ignored means: the same outcome as the same request without any token (normally 401).
    for what, response, baseline in (
        (
            "a form-encoded POST with access_token=<alice's valid token>",
            form({"access_token": token}, "form-encoded POST with alice's token, no Authorization"),
            form({}, "form-encoded POST without any token"),
        ),
        (
            "initialize with params._meta.access_token=<alice's valid token>",
            _post(run, message, note="initialize with alice's token in _meta, no Authorization"),
            _initialize(run, None, note="initialize without any token"),
        ),
    ):
        verdict.expect(
            "RS-BODY-TOKEN-IGNORED",
            response.status_code == baseline.status_code,
            f"{what} and no Authorization header got {_describe(response)}, while the same "
            f"request without any token got {baseline.status_code}",
        )


@pytest.mark.requirement("RS-SCHEME-CASE-INSENSITIVE")
def test_bearer_scheme_is_case_insensitive(
    run: Run, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """`bearer` and `BEARER` work like `Bearer` (OAuth 2.1 §5.1.1, RFC 9110 §11.1)."""
    _require_token_works(run, alice_tokens, verdict)
    for scheme in ("bearer", "BEARER"):
        response = _initialize(
            run, alice_tokens.access_token, scheme=scheme, note=f"initialize with scheme {scheme!r}"
        )
        verdict.expect(
            "RS-SCHEME-CASE-INSENSITIVE",
            response.is_success,
            f"'Authorization: {scheme} <alice's valid token>' got "
            f"{_describe(response)}, while 'Bearer' got 2xx",
        )


@pytest.mark.requirement("RS-AUTH-EVERY-REQUEST")
def test_session_id_does_not_replace_token(
    run: Run, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """A request with a valid Mcp-Session-Id but no token gets 401 (MCP Access Token Usage)."""
    session = _open_session(run, alice_tokens, verdict)
    if session[0] is None:
        pytest.skip(
            "the server issues no Mcp-Session-Id: a stateless server authenticates "
            "each request by construction"
        )
    with_token = _post(
        run,
        mcp.jsonrpc("tools/list"),
        token=alice_tokens.access_token,
        session=session,
        note="known-good: tools/list in the session with a token",
    )
    verdict.precondition(
        with_token.is_success,
        f"tools/list in alice's session with her token got {_describe(with_token)}",
    )
    without = _post(
        run,
        mcp.jsonrpc("tools/list"),
        session=session,
        note="tools/list in alice's session without a token",
    )
    # The session id must not stand in for the token: the request is refused (401 is what
    # RS-MISSING-TOKEN-401 demands of every tokenless request; here any refusal proves it).
    verdict.expect(
        "RS-AUTH-EVERY-REQUEST",
        not without.is_success,
        f"tools/list with alice's Mcp-Session-Id and no Authorization got "
        f"{_describe(without)}: the session id stood in for a token",
    )
    verdict.expect(
        "RS-AUTH-EVERY-REQUEST",
        not _leaks_result(without),
        "the refusal of the session-only request carries a JSON-RPC result",
    )
    if not without.is_success and without.status_code != 401:
        verdict.note(f"the session-only request was refused with {without.status_code}, not 401")


@pytest.mark.requirement("RS-INSUFFICIENT-SCOPE-403")
def test_insufficient_scope_gets_403_challenge(
    run: Run, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """Missing scope gets 403 insufficient_scope, scope and resource_metadata (RFC 6750 §3.1)."""
    response = _privileged_call(run, alice_tokens, verdict)
    needed = str(run.config.privileged_scope)
    challenge = bearer_challenge(response)
    error = challenge.get("error") if challenge else None
    verdict.expect(
        "RS-INSUFFICIENT-SCOPE-403",
        response.status_code == 403,
        f"tools/call {run.config.privileged_tool} without {needed} got "
        f"{_describe(response)}, not 403",
    )
    verdict.expect(
        "RS-INSUFFICIENT-SCOPE-403",
        error == "insufficient_scope",
        f"the Bearer challenge has error={error!r}, not insufficient_scope",
    )
    scope = (challenge.get("scope") if challenge else None) or ""
    verdict.expect(
        "RS-INSUFFICIENT-SCOPE-403",
        needed in scope.split(),
        f"the challenge's scope attribute {scope!r} does not name {needed}",
    )
    verdict.expect(
        "RS-INSUFFICIENT-SCOPE-403",
        bool(challenge and challenge.get("resource_metadata")),
        "the challenge has no resource_metadata attribute",
    )


@pytest.mark.requirement("RS-SCOPE-ENFORCED")
def test_privileged_tool_not_run_without_scope(
    run: Run, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """The privileged tool does not run for a token without its scope (OAuth 2.1 §5.3.2)."""
    response = _privileged_call(run, alice_tokens, verdict)
    ran = response.is_success and any(
        isinstance(m.get("result"), dict) and not m["result"].get("isError")
        for m in mcp.messages(response)
    )
    verdict.expect(
        "RS-SCOPE-ENFORCED",
        not ran,
        f"tools/call {run.config.privileged_tool} without "
        f"{run.config.privileged_scope} got {response.status_code} "
        f"with a successful result",
    )
