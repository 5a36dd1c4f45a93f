"""The reference OAuth 2.1 authorization server of the MCP reference deployment.

Public interface: `create_app(settings, upstream)`. Sign-in is federated to the mock
enterprise IdP; clients register dynamically (RFC 7591); access tokens are RFC 9068 JWTs.
Second hop: the MCP server's pre-registered client exchanges user tokens for downstream
tokens (RFC 8693), and pre-registered clients redeem ID-JAGs (RFC 7523 jwt-bearer).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from reference.authorization_server.authorize import authorize_endpoint
from reference.authorization_server.client_metadata_documents import DocumentFetcher
from reference.authorization_server.context import Context
from reference.authorization_server.federation import IdpClient, callback_endpoint
from reference.authorization_server.introspection import introspection_endpoint
from reference.authorization_server.keys import generate_signing_key
from reference.authorization_server.metadata import (
    WELL_KNOWN_PATH,
    jwks_endpoint,
    metadata_endpoint,
)
from reference.authorization_server.registration import deployment_clients, registration_endpoint
from reference.authorization_server.revocation import revocation_endpoint
from reference.authorization_server.store import Store
from reference.authorization_server.test_hooks import lifetimes_endpoint
from reference.authorization_server.test_signer import sign_endpoint
from reference.authorization_server.token import token_endpoint
from reference.server_errors import SERVER_ERROR_HANDLERS
from reference.settings import ReferenceSettings
from reference.upstream import UpstreamIdentities

__all__ = ["create_app"]


def create_app(
    settings: ReferenceSettings, upstream: UpstreamIdentities | None = None
) -> Starlette:
    """Build the authorization server for one reference deployment (fresh key and state).

    `upstream` receives each user's IdP ID token at sign-in; the deployment's MCP server
    shares it. Without one, the AS keeps its own.
    """
    routes = [
        Route(WELL_KNOWN_PATH, metadata_endpoint, methods=["GET"]),
        Route("/jwks", jwks_endpoint, methods=["GET"]),
        Route("/register", registration_endpoint, methods=["POST"]),
        Route("/authorize", authorize_endpoint, methods=["GET"]),
        Route("/callback", callback_endpoint, methods=["GET"]),
        Route("/token", token_endpoint, methods=["GET", "POST"]),  # GET: 405 from the endpoint
        Route("/introspect", introspection_endpoint, methods=["POST"]),
        Route("/revoke", revocation_endpoint, methods=["POST"]),
    ]
    if settings.test_signer:
        routes.append(Route("/_test/sign", sign_endpoint, methods=["POST"]))
        routes.append(Route("/_test/lifetimes", lifetimes_endpoint, methods=["POST"]))
    app = Starlette(routes=routes, exception_handlers=SERVER_ERROR_HANDLERS)
    app.state.client_documents = DocumentFetcher(settings)  # client ID metadata documents
    store = Store()
    for client in deployment_clients(settings):
        store.clients[client.client_id] = client
    app.state.ctx = Context(
        settings=settings,
        store=store,
        key=generate_signing_key(),
        idp=IdpClient(settings),
        upstream=upstream if upstream is not None else UpstreamIdentities(),
    )
    return app
