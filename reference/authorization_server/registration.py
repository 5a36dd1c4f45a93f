"""RFC 7591 dynamic client registration (open registration, no initial access token)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reference.authorization_server.client_auth import SUPPORTED_AUTH_METHODS
from reference.authorization_server.context import Context, context
from reference.authorization_server.errors import NO_STORE, OAuthError
from reference.authorization_server.jwt_bearer import GRANT_TYPE as JWT_BEARER
from reference.authorization_server.store import Client, random_token
from reference.authorization_server.token_exchange import GRANT_TYPE as TOKEN_EXCHANGE
from reference.settings import ReferenceSettings

SUPPORTED_GRANT_TYPES = ("authorization_code", "refresh_token")
SUPPORTED_RESPONSE_TYPES = ("code",)
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
APPLICATION_TYPES = ("native", "web")  # OpenID Connect Dynamic Client Registration 1.0 §2
# Client metadata this AS records and echoes (RFC 7591 §2); anything else is ignored.
ECHOED_FIELDS = (
    "client_name",
    "client_uri",
    "logo_uri",
    "scope",
    "contacts",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
)
# Every member this AS understands; RFC 7591 §2 says to ignore the rest (under
# `dcr-rejects-unknown-metadata`, any other member is refused).
UNDERSTOOD_FIELDS = (
    "redirect_uris",
    "grant_types",
    "response_types",
    "token_endpoint_auth_method",
    "dpop_bound_access_tokens",
    "application_type",
    *ECHOED_FIELDS,
)


def redirect_uri_problem(uri: Any) -> str | None:
    """Why a redirect URI is unacceptable, or None.

    OAuth 2.1 §2.3: absolute, no fragment; §1.5 / MCP-1125 §11.3: https, or http on a loopback
    address (RFC 8252 §7.3).
    """
    if not isinstance(uri, str) or not uri:
        return "redirect URIs must be non-empty strings"
    if "#" in uri:
        return f"{uri!r} has a fragment"
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return f"{uri!r} is not a valid URI"
    if not parts.scheme:
        return f"{uri!r} is not an absolute URI"
    if parts.scheme not in ("https", "http") or not host:
        return f"{uri!r} is neither https nor a loopback http URI"
    if parts.username is not None or parts.password is not None:
        return f"{uri!r} carries credentials"
    if "*" in host:
        # RFC 9700 §2.1, §4.1.1: redirect URIs are matched exactly; a wildcard host can only
        # be meant as a pattern.
        return f"{uri!r} has a wildcard host"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return None
    return f"{uri!r} is neither https nor a loopback http URI"


def _is_loopback(uri: str) -> bool:
    return urlsplit(uri).hostname in LOOPBACK_HOSTS


def _redirect_uris(ctx: Context, body: dict[str, Any]) -> list[str]:
    uris = body.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        raise OAuthError("invalid_redirect_uri", "redirect_uris is required (a non-empty array)")
    if ctx.defect("dcr-accepts-any-redirect"):
        return [str(u) for u in uris]
    for uri in uris:
        problem = redirect_uri_problem(uri)
        if problem:
            raise OAuthError("invalid_redirect_uri", problem)
    return list(uris)


def _string_list(body: dict[str, Any], name: str, default: list[str]) -> list[str]:
    value = body.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise OAuthError("invalid_client_metadata", f"{name} must be a non-empty array of strings")
    return list(dict.fromkeys(value))


def _grant_types(ctx: Context, body: dict[str, Any]) -> list[str]:
    """RFC 7591 §2 `grant_types`; only the grants this AS supports are allowed (§3.2.2).

    When omitted, this AS registers both supported grants (RFC 7591 §3.2.1 lets the server
    substitute values; it echoes what it registered).
    """
    grant_types = _string_list(body, "grant_types", list(SUPPORTED_GRANT_TYPES))
    unsafe_ok = ctx.defect("dcr-accepts-unsafe-metadata")
    bad = [
        g
        for g in grant_types
        if g not in SUPPORTED_GRANT_TYPES and not (unsafe_ok and g == "password")
    ]
    if bad:
        raise OAuthError("invalid_client_metadata", f"unsupported grant_types: {bad}")
    return grant_types


def _response_types(body: dict[str, Any]) -> list[str]:
    """RFC 7591 §2 `response_types`: only `code` (OAuth 2.1 §10.1 removed `token`)."""
    response_types = _string_list(body, "response_types", ["code"])
    bad = [r for r in response_types if r not in SUPPORTED_RESPONSE_TYPES]
    if bad:
        raise OAuthError("invalid_client_metadata", f"unsupported response_types: {bad}")
    return response_types


def _auth_method(ctx: Context, body: dict[str, Any]) -> str:
    """RFC 7591 §2 `token_endpoint_auth_method`; default `client_secret_basic`."""
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if not isinstance(method, str):
        raise OAuthError("invalid_client_metadata", "token_endpoint_auth_method must be a string")
    if method not in SUPPORTED_AUTH_METHODS and not ctx.defect("dcr-accepts-unsafe-metadata"):
        raise OAuthError(
            "invalid_client_metadata", f"unsupported token_endpoint_auth_method {method!r}"
        )
    return method


def _dpop_metadata(body: dict[str, Any]) -> dict[str, Any]:
    """RFC 9449 §5.2 `dpop_bound_access_tokens`: a boolean (default false), recorded and
    echoed; when true, the token endpoint refuses this client's requests without a proof."""
    if "dpop_bound_access_tokens" not in body:
        return {}
    value = body["dpop_bound_access_tokens"]
    if not isinstance(value, bool):
        raise OAuthError("invalid_client_metadata", "dpop_bound_access_tokens must be a boolean")
    return {"dpop_bound_access_tokens": value}


def _application_type(
    ctx: Context, body: dict[str, Any], redirect_uris: list[str]
) -> dict[str, Any]:
    """OIDC Dynamic Client Registration 1.0 §2 `application_type`, recorded and echoed when
    sent (MCP 2026-07-28 clients send it): a `native` client registers loopback http redirect
    URIs (private-use schemes are refused here anyway, MCP 2025-11-25 "Communication
    Security"), a `web` client https URIs on a non-loopback host; the AS "MUST verify that all
    the registered redirect_uris conform". When omitted nothing is constrained: RFC 7591 has
    no such member (under `dcr-application-type-not-enforced`, it is recorded only)."""
    if "application_type" not in body:
        return {}
    value = body["application_type"]
    if value not in APPLICATION_TYPES:
        raise OAuthError("invalid_client_metadata", f"unknown application_type {value!r}")
    if not ctx.defect("dcr-application-type-not-enforced"):
        for uri in redirect_uris:
            native_style = _is_loopback(uri) and urlsplit(uri).scheme == "http"
            if value == "native" and not native_style:
                raise OAuthError("invalid_redirect_uri", f"a native client cannot register {uri!r}")
            if value == "web" and _is_loopback(uri):
                raise OAuthError("invalid_redirect_uri", f"a web client cannot register {uri!r}")
    return {"application_type": value}


def register_client(ctx: Context, body: Any) -> Client:
    """Validate client metadata (RFC 7591 §2, §3.2.2) and record the client."""
    if not isinstance(body, dict):
        raise OAuthError("invalid_client_metadata", "the request body must be a JSON object")
    unknown = sorted(k for k in body if k not in UNDERSTOOD_FIELDS)
    if unknown and ctx.defect("dcr-rejects-unknown-metadata"):
        raise OAuthError("invalid_client_metadata", f"unknown client metadata: {unknown}")
    redirect_uris = _redirect_uris(ctx, body)
    grant_types = _grant_types(ctx, body)
    response_types = _response_types(body)
    method = _auth_method(ctx, body)
    extra = (
        {k: body[k] for k in ECHOED_FIELDS if k in body}
        | _dpop_metadata(body)
        | _application_type(ctx, body, redirect_uris)
    )
    client = Client(
        client_id=random_token(16),
        redirect_uris=redirect_uris,
        token_endpoint_auth_method=method,
        grant_types=grant_types,
        response_types=response_types,
        metadata=extra,
        client_secret=random_token(32) if method != "none" else None,
    )
    ctx.store.clients[client.client_id] = client
    return client


def registration_response_body(client: Client) -> dict[str, Any]:
    """RFC 7591 §3.2.1: client_id, the registered metadata, and any secret with its expiry."""
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": client.issued_at,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "grant_types": client.grant_types,
        "response_types": client.response_types,
        **client.metadata,
    }
    if client.client_secret is not None:
        body["client_secret"] = client.client_secret
        body["client_secret_expires_at"] = 0
    return body


def deployment_clients(settings: ReferenceSettings) -> list[Client]:
    """Confidential clients registered out of band (RFC 6749 §2): the deployment's MCP server,
    which exchanges the tokens addressed to it (RFC 8693), and the clients that redeem
    ID-JAGs here (RFC 7523). None of them has a redirect URI."""

    def confidential(client_id: str, secret: str, grant: str, **extra: Any) -> Client:
        return Client(
            client_id=client_id,
            redirect_uris=[],
            token_endpoint_auth_method="client_secret_basic",
            grant_types=[grant],
            response_types=[],
            metadata={},
            client_secret=secret,
            **extra,
        )

    clients = [
        confidential(
            settings.mcp_client_id,
            settings.mcp_client_secret,
            TOKEN_EXCHANGE,
            resource=settings.mcp_url,
        )
    ]
    clients += [confidential(cid, secret, JWT_BEARER) for cid, secret in settings.idjag_clients]
    return clients


async def registration_endpoint(request: Request) -> Response:
    """POST /register (RFC 7591 §3): 201 with the registered metadata, 400 on bad metadata."""
    ctx = context(request)
    try:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client_metadata", "the body is not JSON") from exc
        client = register_client(ctx, body)
    except OAuthError as err:
        return JSONResponse(
            {"error": err.error, "error_description": err.description},
            status_code=err.status,
            headers=NO_STORE,
        )
    status = 200 if ctx.defect("dcr-returns-200") else 201
    return JSONResponse(registration_response_body(client), status_code=status, headers=NO_STORE)
