"""The reference MCP server: the official SDK's streamable HTTP app as an OAuth protected resource.

`create_app(settings, upstream)` returns one Starlette app served at the origin of
`settings.mcp_url`:

* `GET /.well-known/oauth-protected-resource<path>`: RFC 9728 metadata (`metadata.py`);
* `<path>` (POST, GET, DELETE): the SDK's stateful streamable HTTP endpoint, guarded by
  `auth_middleware.BearerAuthMiddleware`, which validates RFC 9068 JWT access tokens against
  the authorization server's JWKS at `{settings.issuer}/jwks`. Besides `echo` and the
  privileged tool it offers one connector tool per `settings.downstream` service
  (`connectors.py`: the second hop, by RFC 8693 token exchange or ID-JAG);
* `GET /_audit`: the second hop's audit trail, behind `settings.audit_token` (`audit.py`).

`upstream` holds the users' enterprise ID tokens (shared with the AS), the subject of the
ID-JAG model; without it that model answers every call with "sign in again".

The SDK's own auth settings are deliberately unused, so every challenge and every defect
switch is under this package's control.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from reference.mcp_server.audit import AuditTrail, audit_route
from reference.mcp_server.auth_middleware import BearerAuthMiddleware
from reference.mcp_server.connectors import Connectors
from reference.mcp_server.keys import KeyStore
from reference.mcp_server.metadata import metadata_routes
from reference.mcp_server.token_validation import TokenValidator
from reference.mcp_server.tools import create_mcp_server, tool_scopes
from reference.server_errors import SERVER_ERROR_HANDLERS
from reference.settings import ReferenceSettings
from reference.upstream import UpstreamIdentities

__all__ = ["create_app"]

LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")


def _transport_security(mcp_url: str) -> TransportSecuritySettings:
    """DNS-rebinding protection that admits the MCP URL's own host and loopback names."""
    netloc = urlsplit(mcp_url).netloc
    hosts = list(dict.fromkeys([netloc, *LOOPBACK_HOSTS]))
    origins = [f"http://{host}" for host in hosts] + [f"https://{host}" for host in hosts]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def create_app(
    settings: ReferenceSettings, upstream: UpstreamIdentities | None = None
) -> Starlette:
    """The reference MCP server as one ASGI app (see the module docstring)."""
    parts = urlsplit(settings.mcp_url)
    mcp_path = parts.path or "/"
    audit = AuditTrail(settings)
    connectors = Connectors(settings, upstream, audit)
    sdk_app = create_mcp_server(connectors).streamable_http_app(
        streamable_http_path=mcp_path,
        json_response=True,
        host=parts.hostname or "127.0.0.1",
        transport_security=_transport_security(settings.mcp_url),
    )
    keys = KeyStore(settings.issuer)
    validator = TokenValidator(settings, keys)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Mount does not run a sub-app's lifespan: start the SDK session manager here.
        async with sdk_app.router.lifespan_context(sdk_app):
            try:
                yield
            finally:
                await keys.aclose()
                await connectors.aclose()

    return Starlette(
        routes=[*metadata_routes(settings), audit_route(settings, audit), Mount("", app=sdk_app)],
        middleware=[
            Middleware(
                BearerAuthMiddleware,
                settings=settings,
                validator=validator,
                protected_path=mcp_path,
                tool_scopes=tool_scopes(settings),
                connectors=connectors,
            )
        ],
        lifespan=lifespan,
        exception_handlers=SERVER_ERROR_HANDLERS,
    )
