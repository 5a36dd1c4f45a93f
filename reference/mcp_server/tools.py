"""The MCP server proper: an `MCPServer` from the official SDK with two tools.

`echo` needs the basic scope; the privileged tool needs the privileged scope as well.
Scopes are enforced by `auth_middleware` before a request reaches the SDK, using
`TOOL_SCOPES` (MCP 2025-11-25 authorization §"Scope Challenge Handling").
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from reference.settings import BASIC_SCOPE, PRIVILEGED_SCOPE, PRIVILEGED_TOOL

SERVER_NAME = "reference-mcp"

BASE_SCOPES: tuple[str, ...] = (BASIC_SCOPE,)
"""Scopes every MCP request needs."""

TOOL_SCOPES: dict[str, tuple[str, ...]] = {
    "echo": (BASIC_SCOPE,),
    PRIVILEGED_TOOL: (BASIC_SCOPE, PRIVILEGED_SCOPE),
}
"""Scopes each tool needs, the full set to name in an `insufficient_scope` challenge."""


def required_scopes_for_tool(name: str | None) -> tuple[str, ...]:
    """The scopes a `tools/call` of `name` needs (unknown tools need only the base scopes)."""
    if name is None:
        return BASE_SCOPES
    return TOOL_SCOPES.get(name, BASE_SCOPES)


def create_mcp_server() -> MCPServer:
    """An SDK server exposing `echo` and the privileged report tool."""
    server: MCPServer = MCPServer(name=SERVER_NAME)

    @server.tool(name="echo", description="Return the given text unchanged.")
    def echo(text: str) -> str:
        return text

    @server.tool(
        name=PRIVILEGED_TOOL,
        description=f"Return a small administrative report (needs scope {PRIVILEGED_SCOPE}).",
    )
    def admin_report() -> str:
        return "admin report: 2 tools registered; status ok"

    return server
