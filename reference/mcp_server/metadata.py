"""RFC 9728 OAuth 2.0 Protected Resource Metadata for the MCP server.

RFC 9728 §2 (members), §3 and §3.1 (the well-known URL is built by inserting
`/.well-known/oauth-protected-resource` between the host and the path of the resource id),
§3.2 (200, `application/json`, members without values omitted), §3.3 (`resource` equals the
identifier the URL was built from). MCP 2025-11-25 authorization §"Authorization Server
Location" requires `authorization_servers`. RFC 9728 §2 `dpop_signing_alg_values_supported`
lists the DPoP proof algorithms the server accepts (asymmetric only, RFC 9449 §11.6); it
still takes Bearer for unbound tokens, so `dpop_bound_access_tokens_required` is false. MCP
2026-07-28 §"Refresh Tokens" (SEP-2207): `offline_access` is not a resource scope and is not
listed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reference.dpop import ALGORITHMS
from reference.settings import SCOPES_SUPPORTED, ReferenceSettings

WELL_KNOWN_SUFFIX = "/.well-known/oauth-protected-resource"
UNRESOLVABLE_AS = "http://127.0.0.1:9/nowhere"
"""A loopback issuer on the discard port, where nothing serves AS metadata."""

RESOURCE_NAME = "Reference MCP server"
OFFLINE_ACCESS = "offline_access"
"""The scope that asks the AS for a refresh token: an AS matter, never a resource scope."""


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of an absolute URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def resource_path(url: str) -> str:
    """The path of the resource id with the trailing slash dropped (RFC 9728 §3.1)."""
    return urlsplit(url).path.rstrip("/")


def path_inserted_metadata_path(resource: str) -> str:
    """RFC 9728 §3.1: `/.well-known/oauth-protected-resource` + the resource's path."""
    return WELL_KNOWN_SUFFIX + resource_path(resource)


def metadata_path(settings: ReferenceSettings) -> str | None:
    """The one path the metadata is served at, or `None` when it is not served at all."""
    if settings.defect("prm-not-discoverable"):
        return None
    if settings.defect("prm-root-well-known-only"):
        return WELL_KNOWN_SUFFIX
    return path_inserted_metadata_path(settings.mcp_url)


def metadata_url(settings: ReferenceSettings) -> str | None:
    """The absolute metadata URL that challenges name in `resource_metadata` (RFC 9728 §5.1)."""
    path = metadata_path(settings)
    return None if path is None else origin_of(settings.mcp_url) + path


def _resource_identifier(settings: ReferenceSettings) -> str:
    """RFC 9728 §3.3: identical to the URL clients call (`settings.mcp_url`)."""
    if settings.defect("prm-resource-trailing-slash"):
        return settings.mcp_url + "/"
    if settings.defect("prm-resource-has-fragment"):
        return settings.mcp_url + "#frag"
    return settings.mcp_url


def metadata_document(settings: ReferenceSettings) -> dict[str, Any]:
    """The RFC 9728 §2 document; members without values are omitted (§3.2)."""
    document: dict[str, Any] = {"resource": _resource_identifier(settings)}
    if not settings.defect("prm-no-authorization-servers"):
        servers = [settings.issuer]
        if settings.defect("prm-lists-unresolvable-as"):
            servers.append(UNRESOLVABLE_AS)
        document["authorization_servers"] = servers
    if not settings.defect("prm-no-scopes-supported"):
        document["scopes_supported"] = list(SCOPES_SUPPORTED)
        if settings.defect("prm-lists-offline-access"):
            document["scopes_supported"].append(OFFLINE_ACCESS)
    document["bearer_methods_supported"] = ["header"]
    if not settings.defect("prm-no-dpop-algs"):
        document["dpop_signing_alg_values_supported"] = list(ALGORITHMS)
    document["dpop_bound_access_tokens_required"] = False
    document["resource_name"] = RESOURCE_NAME
    if settings.defect("prm-wrong-content-type"):
        document["resource_documentation"] = None
    return document


def _metadata_endpoint(settings: ReferenceSettings) -> Callable[[Request], Awaitable[Response]]:
    document = metadata_document(settings)

    async def endpoint(request: Request) -> Response:
        """RFC 9728 §3.2: readable without credentials, 200 `application/json`."""
        if settings.defect("prm-wrong-content-type"):
            return JSONResponse(document, media_type="text/plain")
        return JSONResponse(document)

    return endpoint


def metadata_routes(settings: ReferenceSettings) -> list[Route]:
    """The well-known route(s) serving the metadata (none under `prm-not-discoverable`)."""
    path = metadata_path(settings)
    if path is None:
        return []
    return [Route(path, _metadata_endpoint(settings), methods=["GET"])]
