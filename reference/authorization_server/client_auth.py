"""Client authentication at the token, introspection and revocation endpoints.

OAuth 2.1 §2.4: `client_secret_basic` (HTTP Basic with form-encoded id and secret) and
`client_secret_post`; public clients (`none`) identify themselves with `client_id` only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from urllib.parse import unquote_plus

from starlette.requests import Request

from reference.authorization_server.context import Context
from reference.authorization_server.errors import OAuthError
from reference.authorization_server.params import Params
from reference.authorization_server.store import Client

SUPPORTED_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


@dataclass
class PresentedCredentials:
    """What a request offered to identify or authenticate its client."""

    client_id: str | None
    secret: str | None
    method: str  # "client_secret_basic", "client_secret_post" or "none"


def _basic_credentials(header: str) -> tuple[str, str]:
    """Decode `Authorization: Basic` (RFC 7617), each part form-decoded (OAuth 2.1 §2.4.1)."""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from exc
    if ":" not in decoded:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    user, _, password = decoded.partition(":")
    return unquote_plus(user), unquote_plus(password)


def presented_credentials(request: Request, form: Params) -> PresentedCredentials:
    """Collect the client credentials of a request.

    OAuth 2.1 §2.4: a client MUST NOT use more than one authentication method per request
    (§3.2.4 `invalid_request`).
    """
    header = request.headers.get("authorization", "")
    body_id, body_secret = form.get("client_id"), form.get("client_secret")
    if header[:6].lower() == "basic ":
        if body_secret is not None:
            raise OAuthError("invalid_request", "more than one client authentication method")
        client_id, secret = _basic_credentials(header)
        if body_id is not None and body_id != client_id:
            raise OAuthError("invalid_request", "client_id does not match the Basic credentials")
        return PresentedCredentials(client_id, secret, "client_secret_basic")
    if body_secret is not None:
        return PresentedCredentials(body_id, body_secret, "client_secret_post")
    return PresentedCredentials(body_id, None, "none")


def verify_secret(ctx: Context, creds: PresentedCredentials) -> Client:
    """Authenticate a client that presented a secret (OAuth 2.1 §2.4.1, §3.2.2: "authenticate
    the client if client authentication is included").

    A public client holds no secret, so a secret it presents fails (under
    `token-public-client-secret-ignored`, the secret goes unchecked). The secret must come by
    the method the client registered (RFC 7591 §2 `token_endpoint_auth_method`; OAuth 2.1
    §3.2.4: an unsupported method is `invalid_client`), unless `token-auth-method-not-enforced`.
    """
    client = ctx.store.clients.get(creds.client_id or "")
    if (
        client is not None
        and client.client_secret is None
        and ctx.defect("token-public-client-secret-ignored")
    ):
        return client
    if (
        client is None
        or client.client_secret is None
        or not hmac.compare_digest(client.client_secret, creds.secret or "")
    ):
        raise OAuthError("invalid_client", "client authentication failed", 401)
    if creds.method != client.token_endpoint_auth_method and not ctx.defect(
        "token-auth-method-not-enforced"
    ):
        raise OAuthError(
            "invalid_client",
            f"this client authenticates with {client.token_endpoint_auth_method}",
            401,
        )
    return client


def identify_client(
    ctx: Context, creds: PresentedCredentials, *, allow_unauthenticated: bool = False
) -> Client:
    """The client a request speaks for.

    A request with a secret is authenticated. Without one, the client must be a public client
    (OAuth 2.1 §3.2.1: confidential clients MUST authenticate), unless
    `allow_unauthenticated` is set by a defect.
    """
    if creds.secret is not None:
        return verify_secret(ctx, creds)
    if creds.client_id is None:
        raise OAuthError("invalid_client", "client authentication or client_id is required", 401)
    client = ctx.store.clients.get(creds.client_id)
    if client is None:
        raise OAuthError("invalid_client", "unknown client", 401)
    if client.confidential and not allow_unauthenticated:
        raise OAuthError("invalid_client", "this client must authenticate", 401)
    return client


def known_client(ctx: Context, creds: PresentedCredentials) -> Client | None:
    """The client named by the request, without authenticating it (for error selection)."""
    return ctx.store.clients.get(creds.client_id or "")
