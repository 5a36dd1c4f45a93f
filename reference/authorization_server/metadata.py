"""RFC 8414 authorization server metadata and the JWK Set endpoint."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reference.authorization_server import dpop
from reference.authorization_server.client_auth import SUPPORTED_AUTH_METHODS
from reference.authorization_server.context import Context, context
from reference.authorization_server.jwt_bearer import GRANT_TYPE as JWT_BEARER
from reference.authorization_server.jwt_bearer import ID_JAG_PROFILE
from reference.authorization_server.keys import jwks
from reference.authorization_server.token_exchange import GRANT_TYPE as TOKEN_EXCHANGE
from reference.settings import SCOPES_SUPPORTED

WELL_KNOWN_PATH = "/.well-known/oauth-authorization-server"


def build_metadata(ctx: Context) -> dict[str, Any]:
    """The metadata document (RFC 8414 §2), with the `as-metadata-*` defects applied."""
    issuer = ctx.issuer + "/" if ctx.defect("as-metadata-issuer-mismatch") else ctx.issuer
    grant_types = ["authorization_code", "refresh_token"]
    response_types = ["code"]
    if ctx.defect("as-metadata-legacy-grants"):
        grant_types += ["implicit", "password"]
        response_types += ["token"]
    if not ctx.defect("tx-grant-unsupported") and not ctx.defect("tx-grant-not-advertised"):
        grant_types.append(TOKEN_EXCHANGE)
    grant_types.append(JWT_BEARER)
    doc: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": ctx.url("/authorize"),
        "token_endpoint": ctx.url("/token"),
        "registration_endpoint": ctx.url("/register"),
        "jwks_uri": ctx.url("/jwks"),
        "introspection_endpoint": ctx.url("/introspect"),
        "revocation_endpoint": ctx.url("/revoke"),
        "response_types_supported": response_types,
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(SUPPORTED_AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "revocation_endpoint_auth_methods_supported": list(SUPPORTED_AUTH_METHODS),
        "scopes_supported": list(SCOPES_SUPPORTED),
        # RFC 9207 §3: the `iss` authorization response parameter is always sent.
        "authorization_response_iss_parameter_supported": True,
        # ID-JAG §7.2: the profile this AS processes as a resource AS (and no trusted-issuer
        # list, §8.4).
        "authorization_grant_profiles_supported": [ID_JAG_PROFILE],
        # RFC 9449 §5.1: DPoP proofs are accepted at the token endpoint with these algorithms.
        "dpop_signing_alg_values_supported": dpop.signing_algorithms(ctx),
    }
    # draft-ietf-oauth-client-id-metadata-document-01 §5: URL client_ids are resolved from
    # their metadata documents.
    if not ctx.defect("cimd-unsupported") and not ctx.defect("cimd-not-advertised"):
        doc["client_id_metadata_document_supported"] = True
    if ctx.defect("ras-profile-not-advertised"):
        del doc["authorization_grant_profiles_supported"]
    if ctx.defect("as-dpop-unsupported"):
        del doc["dpop_signing_alg_values_supported"]
    if ctx.defect("as-metadata-registration-hidden"):
        del doc["registration_endpoint"]
    if ctx.defect("as-metadata-iss-flag-missing"):
        del doc["authorization_response_iss_parameter_supported"]
    if ctx.defect("as-metadata-missing-response-types"):
        del doc["response_types_supported"]
    if ctx.defect("as-metadata-no-pkce-methods"):
        del doc["code_challenge_methods_supported"]
    if ctx.defect("as-metadata-no-jwks-uri"):
        del doc["jwks_uri"]
    return doc


async def metadata_endpoint(request: Request) -> Response:
    """GET /.well-known/oauth-authorization-server (RFC 8414 §3; issuer has no path)."""
    ctx = context(request)
    if ctx.defect("as-metadata-missing"):
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse(build_metadata(ctx))


async def jwks_endpoint(request: Request) -> Response:
    """GET /jwks: public keys only (RFC 8414 §2 `jwks_uri`). Served under every defect."""
    return JSONResponse(jwks(context(request).key), headers={"Cache-Control": "max-age=60"})
