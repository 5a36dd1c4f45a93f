"""MCP requests over streamable HTTP, as a client sends them (MCP basic/transports)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

from conformance.http import Http

ACCEPT = "application/json, text/event-stream"
_ids = itertools.count(1)


def jsonrpc(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or {}}


def initialize(protocol_version: str) -> dict[str, Any]:
    return jsonrpc(
        "initialize",
        {
            "protocolVersion": protocol_version,
            "capabilities": {},
            "clientInfo": {"name": "mcp-auth-conformance", "version": "0.1"},
        },
    )


def tools_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return jsonrpc("tools/call", {"name": name, "arguments": arguments})


def request_headers(
    *,
    token: str | None = None,
    scheme: str = "Bearer",
    protocol_version: str | None = None,
    session_id: str | None = None,
    extra_headers: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """The headers of a POST to the MCP endpoint: both media types accepted, a JSON body, the
    token, the negotiated protocol version and the session (MCP basic/transports)."""
    headers = [("Accept", ACCEPT), ("Content-Type", "application/json")]
    if token is not None:
        headers.append(("Authorization", f"{scheme} {token}"))
    if protocol_version:
        headers.append(("MCP-Protocol-Version", protocol_version))
    if session_id:
        headers.append(("Mcp-Session-Id", session_id))
    headers.extend(extra_headers or [])
    return headers


def post(
    http: Http,
    url: str,
    message: dict[str, Any],
    *,
    token: str | None = None,
    scheme: str = "Bearer",
    protocol_version: str | None = None,
    session_id: str | None = None,
    extra_headers: list[tuple[str, str]] | None = None,
    note: str = "",
) -> httpx.Response:
    """POST one JSON-RPC message to the MCP endpoint, authorized with `token` if given."""
    headers = request_headers(
        token=token,
        scheme=scheme,
        protocol_version=protocol_version if message.get("method") != "initialize" else None,
        session_id=session_id,
        extra_headers=extra_headers,
    )
    return http.post(url, headers=headers, json=message, note=note)


def messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a response body, plain JSON or an SSE stream's `data:` lines."""
    texts = [response.text]
    if "text/event-stream" in response.headers.get("content-type", ""):
        texts = [
            line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")
        ]
    found: list[dict[str, Any]] = []
    for text in texts:
        try:
            body = json.loads(text)
        except ValueError:
            continue
        found.extend(
            item for item in (body if isinstance(body, list) else [body]) if isinstance(item, dict)
        )
    return found


def result_of(response: httpx.Response) -> dict[str, Any] | None:
    """The first JSON-RPC `result` object in the response (JSON or SSE), or None."""
    return next(
        (m["result"] for m in messages(response) if isinstance(m.get("result"), dict)), None
    )


def describe(response: httpx.Response) -> str:
    challenge = response.headers.get("www-authenticate")
    return f"{response.status_code}" + (f" ({challenge})" if challenge else "")


class Session:
    """An initialized MCP session (MCP basic/lifecycle) authorized with one access token."""

    def __init__(
        self, http: Http, url: str, token: str, session_id: str | None, version: str
    ) -> None:
        self.http, self.url, self.token = http, url, token
        self.session_id, self.version = session_id, version

    @classmethod
    def open(cls, http: Http, url: str, token: str, protocol_version: str) -> Session:
        """`initialize` then `notifications/initialized`; a refusal is a lost precondition."""
        from conformance.errors import PreconditionFailed

        response = post(http, url, initialize(protocol_version), token=token, note="initialize")
        if not response.is_success:
            raise PreconditionFailed(f"MCP initialize with a valid token got {describe(response)}")
        result = result_of(response) or {}
        version = str(result.get("protocolVersion") or protocol_version)
        session = cls(http, url, token, response.headers.get("mcp-session-id"), version)
        initialized = session.send(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}, "notifications/initialized"
        )
        if not initialized.is_success:
            raise PreconditionFailed(f"notifications/initialized got {describe(initialized)}")
        return session

    def send(self, message: dict[str, Any], note: str) -> httpx.Response:
        return post(
            self.http,
            self.url,
            message,
            token=self.token,
            protocol_version=self.version,
            session_id=self.session_id,
            note=note,
        )


def tool_text(result: dict[str, Any] | None) -> str:
    """The text content blocks of a `tools/call` result, joined (MCP server/tools)."""
    if not result or not isinstance(result.get("content"), list):
        return ""
    return "\n".join(
        str(block.get("text", ""))
        for block in result["content"]
        if isinstance(block, dict) and block.get("type") == "text"
    )


def present(run: Any, token: str, note: str) -> httpx.Response:
    """An `initialize` authorized with `token`: how the MCP server of `run` judges the token."""
    return post(
        run.http, run.mcp_url, initialize(run.config.protocol_version), token=token, note=note
    )
