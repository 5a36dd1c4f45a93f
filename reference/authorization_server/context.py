"""The per-instance context every endpoint reads from `request.app.state.ctx`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from reference.authorization_server.keys import SigningKey
from reference.authorization_server.store import Store
from reference.settings import ReferenceSettings
from reference.upstream import UpstreamIdentities

if TYPE_CHECKING:
    from reference.authorization_server.federation import IdpClient


@dataclass
class Context:
    settings: ReferenceSettings
    store: Store
    key: SigningKey
    idp: IdpClient
    # Each user's IdP ID token, kept at sign-in for the deployment's MCP server (ID-JAG model).
    upstream: UpstreamIdentities = field(default_factory=UpstreamIdentities)

    @property
    def issuer(self) -> str:
        """The real issuer identifier (tokens and `iss` always carry this value)."""
        return self.settings.issuer

    def defect(self, name: str) -> bool:
        return self.settings.defect(name)

    def url(self, path: str) -> str:
        return f"{self.settings.issuer}{path}"

    @property
    def resources(self) -> tuple[str, ...]:
        """The resource servers this AS issues tokens for (RFC 8707 §2)."""
        return (self.settings.mcp_url, self.settings.second_resource)


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx
