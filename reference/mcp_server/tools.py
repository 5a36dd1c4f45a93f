"""The MCP server proper: an `MCPServer` from the official SDK with its tools.

`echo` needs the basic scope; the privileged tool needs the privileged scope as well. Each
downstream service of the deployment adds a connector tool (`connectors`), which needs the
basic scope. Scopes are enforced by `auth_middleware` before a request reaches the SDK,
using `tool_scopes(settings)` (MCP 2025-11-25 authorization §"Scope Challenge Handling").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import Request

from reference.mcp_server.connectors import (
    REQUEST_FLAGS,
    Caller,
    Connectors,
    DownstreamFailure,
    RequestFlags,
    SignInRequired,
)
from reference.settings import (
    BASIC_SCOPE,
    PRIVILEGED_SCOPE,
    PRIVILEGED_TOOL,
    DownstreamService,
    ReferenceSettings,
)

SERVER_NAME = "reference-mcp"

BASE_SCOPES: tuple[str, ...] = (BASIC_SCOPE,)
"""Scopes every MCP request needs."""

TOOL_SCOPES: dict[str, tuple[str, ...]] = {
    "echo": (BASIC_SCOPE,),
    PRIVILEGED_TOOL: (BASIC_SCOPE, PRIVILEGED_SCOPE),
}
"""Scopes each built-in tool needs, the full set to name in an `insufficient_scope` challenge."""

CONNECTOR_SCOPES: tuple[str, ...] = (BASIC_SCOPE,)
"""Scopes a connector tool needs at the MCP server (the downstream scopes are separate)."""


def tool_scopes(settings: ReferenceSettings) -> dict[str, tuple[str, ...]]:
    """Scopes of every tool of this deployment: the built-in ones and one per connector."""
    return {**TOOL_SCOPES, **{service.tool: CONNECTOR_SCOPES for service in settings.downstream}}


def required_scopes_for_tool(
    name: str | None, scopes: Mapping[str, tuple[str, ...]] = TOOL_SCOPES
) -> tuple[str, ...]:
    """The scopes a `tools/call` of `name` needs (unknown tools need only the base scopes)."""
    if name is None:
        return BASE_SCOPES
    return scopes.get(name, BASE_SCOPES)


def caller_of(ctx: Context) -> tuple[Caller, RequestFlags | None]:
    """The caller of this tool call, from the inbound access token of this very HTTP request.

    The SDK hands each message's Starlette request to the tool as
    `ctx.request_context.request`; `BearerAuthMiddleware` has put the validated token there
    as the SDK's `AuthenticatedUser` (`request.user`). The session is never the source:
    every request authenticates on its own (MCP security best practices §"Session
    Hijacking").
    """
    request = ctx.request_context.request
    if not isinstance(request, Request):
        raise ToolError("this tool is only available over authenticated HTTP")
    user = request.scope.get("user")
    token = user.access_token if isinstance(user, AuthenticatedUser) else None
    if token is None or not token.subject:
        raise ToolError("this tool needs a signed-in user")
    flags = request.scope.get(REQUEST_FLAGS)
    caller = Caller(
        user=token.subject,
        client_id=token.client_id,
        token=token.token,
        scopes=tuple(token.scopes),
    )
    return caller, flags if isinstance(flags, RequestFlags) else None


def _connector(
    service: DownstreamService, connectors: Connectors
) -> Callable[[str, Context], Awaitable[str]]:
    async def connector(action: str, ctx: Context) -> str:
        if action != service.action:
            valid = service.action
            raise ToolError(f"unknown action {action[:64]!r}; the valid action is {valid!r}")
        caller, flags = caller_of(ctx)
        try:
            return await connectors.fetch(service, caller)
        except SignInRequired as exc:
            raise ToolError(
                f"{service.name} needs your enterprise sign-in: sign in again, then retry"
            ) from exc
        except DownstreamFailure as failure:
            if flags is not None and connectors.settings.defect("hop2-failure-as-transport-error"):
                flags.transport_failure = True
            raise ToolError(connectors.error_text(failure)) from failure

    return connector


def create_mcp_server(connectors: Connectors | None = None) -> MCPServer:
    """An SDK server exposing `echo`, the privileged report tool and one tool per connector."""
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

    if connectors is not None:
        for service in connectors.settings.downstream:
            server.tool(
                name=service.tool,
                description=(
                    f"Read your own {service.name} data as the signed-in user "
                    f"(action: {service.action!r})."
                ),
            )(_connector(service, connectors))
    return server
