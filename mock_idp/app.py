"""`create_app`: the Starlette application of one mock IdP."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mock_idp.authorize import SCOPES_SUPPORTED, authorize_endpoint, login_endpoint
from mock_idp.grant import ID_JAG_TYPE, TOKEN_EXCHANGE
from mock_idp.keys import ALGORITHM, SigningKey, generate_signing_key, jwks
from mock_idp.settings import IdpSettings
from mock_idp.signer import sign_endpoint
from mock_idp.store import Store
from mock_idp.token import GRANT_HANDLERS, NO_STORE, token_endpoint


def discovery_document(settings: IdpSettings) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 section 3 provider metadata, plus ID-JAG issuance:
    draft-ietf-oauth-identity-assertion-authz-grant "Authorization Server (IdP) Metadata"
    (`identity_chaining_requested_token_types_supported`, from
    draft-ietf-oauth-identity-chaining)."""
    auth_methods = ["client_secret_basic", "client_secret_post"]
    if any(c.is_public for c in settings.clients):
        auth_methods.append("none")
    silent = settings.has_defect("idp-metadata-silent")
    grant_types = [g for g in GRANT_HANDLERS if not (silent and g == TOKEN_EXCHANGE)]
    document: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": settings.url("/authorize"),
        "token_endpoint": settings.url("/token"),
        "userinfo_endpoint": settings.url("/userinfo"),
        "jwks_uri": settings.url("/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "email",
            "email_verified",
            "name",
        ],
        "token_endpoint_auth_methods_supported": auth_methods,
        "grant_types_supported": grant_types,
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": True,  # RFC 9207 section 3
    }
    if not silent:
        document["identity_chaining_requested_token_types_supported"] = [ID_JAG_TYPE]
    return document


def userinfo_response(request: Request, settings: IdpSettings, store: Store) -> Response:
    """OIDC Core 1.0 section 5.3; bearer token in the header only (RFC 6750 2.1)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    record = store.access_token(token.strip()) if scheme.lower() == "bearer" else None
    if record is None:
        challenge = 'Bearer error="invalid_token"' if scheme.lower() == "bearer" else "Bearer"
        return JSONResponse(
            {"error": "invalid_token", "error_description": "missing or unknown access token"},
            status_code=401,
            headers={"WWW-Authenticate": challenge, **NO_STORE},
        )
    user = settings.user(record.username)
    body: dict[str, Any] = {"sub": record.username}
    if user is not None:
        body.update(email=user.email, email_verified=True, name=user.name)
    return JSONResponse(body, headers=NO_STORE)


def create_app(settings: IdpSettings) -> Starlette:
    """A fresh IdP: new signing key, empty store. Routes are relative to the issuer;
    `POST /_test/sign` (`mock_idp.signer`) exists only when `settings.test_signer` is true.

    `app.state.settings`, `app.state.store` and `app.state.signing_key` are exposed for tests.
    """
    store = Store()
    signing_key: SigningKey = generate_signing_key()
    document = discovery_document(settings)
    key_set = jwks(signing_key)

    async def discovery(request: Request) -> Response:
        return JSONResponse(document)

    async def jwks_route(request: Request) -> Response:
        return JSONResponse(key_set)

    async def authorize(request: Request) -> Response:
        return await authorize_endpoint(request, settings, store)

    async def login(request: Request) -> Response:
        return await login_endpoint(request, settings, store)

    async def token(request: Request) -> Response:
        return await token_endpoint(request, settings, store, signing_key)

    async def userinfo(request: Request) -> Response:
        return userinfo_response(request, settings, store)

    async def sign(request: Request) -> Response:
        return await sign_endpoint(request, signing_key)

    routes = [
        Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route("/jwks", jwks_route, methods=["GET"]),
        Route("/authorize", authorize, methods=["GET", "POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/token", token, methods=["POST"]),
        Route("/userinfo", userinfo, methods=["GET", "POST"]),
    ]
    if settings.test_signer:
        routes.append(Route("/_test/sign", sign, methods=["POST"]))
    app = Starlette(routes=routes)
    app.state.settings = settings
    app.state.store = store
    app.state.signing_key = signing_key
    return app
