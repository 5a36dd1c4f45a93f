"""The reference OAuth 2.1 authorization server of the MCP reference deployment.

Public interface: `create_app(settings)`. Sign-in is federated to the mock enterprise IdP;
clients register dynamically (RFC 7591); access tokens are RFC 9068 JWTs.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from reference.authorization_server.authorize import authorize_endpoint
from reference.authorization_server.context import Context
from reference.authorization_server.federation import IdpClient, callback_endpoint
from reference.authorization_server.introspection import introspection_endpoint
from reference.authorization_server.keys import generate_signing_key
from reference.authorization_server.metadata import (
    WELL_KNOWN_PATH,
    jwks_endpoint,
    metadata_endpoint,
)
from reference.authorization_server.registration import registration_endpoint
from reference.authorization_server.revocation import revocation_endpoint
from reference.authorization_server.store import Store
from reference.authorization_server.test_signer import sign_endpoint
from reference.authorization_server.token import token_endpoint
from reference.settings import ReferenceSettings

__all__ = ["create_app"]


def create_app(settings: ReferenceSettings) -> Starlette:
    """Build the authorization server for one reference deployment (fresh key and state)."""
    routes = [
        Route(WELL_KNOWN_PATH, metadata_endpoint, methods=["GET"]),
        Route("/jwks", jwks_endpoint, methods=["GET"]),
        Route("/register", registration_endpoint, methods=["POST"]),
        Route("/authorize", authorize_endpoint, methods=["GET"]),
        Route("/callback", callback_endpoint, methods=["GET"]),
        Route("/token", token_endpoint, methods=["POST"]),
        Route("/introspect", introspection_endpoint, methods=["POST"]),
        Route("/revoke", revocation_endpoint, methods=["POST"]),
    ]
    if settings.test_signer:
        routes.append(Route("/_test/sign", sign_endpoint, methods=["POST"]))
    app = Starlette(routes=routes)
    app.state.ctx = Context(
        settings=settings, store=Store(), key=generate_signing_key(), idp=IdpClient(settings)
    )
    return app
