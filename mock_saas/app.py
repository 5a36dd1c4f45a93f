"""`create_app`: the Starlette application of one mock SaaS service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mock_idp.keys import jwks
from mock_saas.api import api_endpoint
from mock_saas.faults import faults_endpoint
from mock_saas.records import records_endpoint
from mock_saas.settings import SaasSettings
from mock_saas.state import ServiceState
from mock_saas.token import metadata, token_endpoint


def create_app(settings: SaasSettings) -> Starlette:
    """A fresh service: new signing key, no records, no faults. Routes are absolute paths
    under `settings.base_url` (an origin).

    `app.state.service` (the `ServiceState`) is exposed for tests.
    """
    state = ServiceState(settings)
    document = metadata(settings)
    key_set = jwks(state.signing_key)

    async def metadata_route(request: Request) -> Response:
        return JSONResponse(document)

    async def jwks_route(request: Request) -> Response:
        return JSONResponse(key_set)

    async def token(request: Request) -> Response:
        return await token_endpoint(request, state)

    async def api(request: Request) -> Response:
        return await api_endpoint(request, state)

    async def records(request: Request) -> Response:
        return await records_endpoint(request, state.records)

    async def faults(request: Request) -> Response:
        return await faults_endpoint(request, state.faults)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await state.aclose()  # the HTTP client that fetched trusted issuers' keys

    service = settings.service
    app = Starlette(
        routes=[
            Route("/.well-known/oauth-authorization-server", metadata_route, methods=["GET"]),
            Route(service.jwks_path, jwks_route, methods=["GET"]),
            Route(service.token_path, token, methods=["POST"]),
            Route(service.api_path, api, methods=["GET"]),
            Route("/_records", records, methods=["GET"]),
            Route("/_faults", faults, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = state
    return app
