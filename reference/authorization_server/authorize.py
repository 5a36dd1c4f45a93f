"""The authorization endpoint: OAuth 2.1 §4.1.1-4.1.2.1, RFC 7636 (PKCE), RFC 9207 (`iss`),
RFC 8707 (`resource`).

Validation order:
1. repeated `client_id` / `redirect_uri` -> error page (nothing to redirect to safely);
2. unknown client or unregistered redirect URI -> error page, never a redirect (§4.1.2.1);
3. every other problem -> error redirect to the client with `state` and `iss`;
4. a valid request -> the user signs in at the enterprise IdP (see `federation`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from reference.authorization_server import client_metadata_documents, federation
from reference.authorization_server.context import Context, context
from reference.authorization_server.errors import error_page
from reference.authorization_server.params import (
    Params,
    collect,
    is_absolute_uri_without_fragment,
    is_pkce_value,
    is_s256_challenge,
    split_scope,
)
from reference.authorization_server.redirects import (
    AuthorizationError,
    add_iss,
    error_redirect,
    redirect,
    with_params,
)
from reference.authorization_server.registration import LOOPBACK_HOSTS
from reference.authorization_server.store import Client, ValidatedRequest
from reference.settings import BASIC_SCOPE, SCOPES_SUPPORTED

_JKT = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of 32 bytes, unpadded
_LOOPBACK_URI = re.compile(r"^http://(\[[^\]/]*\]|[^/?#:@\[\]]*)(:[0-9]*)?([/?].*)?$", re.S)


# --- redirect URI matching (OAuth 2.1 §2.3.1, RFC 8252 §7.3) ---


def _loopback_parts(uri: str) -> tuple[str, str] | None:
    """(host, path and query) of an http URI on a loopback host, its port left out; else None."""
    m = _LOOPBACK_URI.match(uri)
    if m is None or m.group(1).strip("[]").lower() not in LOOPBACK_HOSTS:
        return None
    return m.group(1), m.group(3) or ""


def _normalised(uri: str) -> tuple[str, str, int | None, str, str] | None:
    """For `authz-redirect-normalised-match` only: `uri` as a URL parser sees it (scheme and
    host lower-cased, userinfo and fragment dropped)."""
    try:
        parts = urlsplit(uri)
        return (parts.scheme, parts.hostname or "", parts.port, parts.path, parts.query)
    except ValueError:
        return None


def redirect_uri_matches(ctx: Context, registered: str, requested: str) -> bool:
    """Exact string comparison, except that a loopback URI may use any port.

    OAuth 2.1 §4.1.1 / §2.3.1: exact match (RFC 3986 §6.2.1 simple string comparison, so no
    case folding and no normalisation); RFC 8252 §7.3: the AS MUST allow any port for loopback
    IP redirect URIs, and only the port (`localhost` and 127.0.0.1 stay different hosts).
    """
    if requested == registered:
        return True
    reg, req = _loopback_parts(registered), _loopback_parts(requested)
    if reg is not None and req is not None:
        if reg == req and not ctx.defect("authz-loopback-port-strict"):
            return True
        if reg[1] == req[1] and ctx.defect("authz-loopback-host-confusion"):
            return True
    if ctx.defect("authz-redirect-normalised-match"):
        normalised = _normalised(requested)
        if normalised is not None and normalised == _normalised(registered):
            return True
    return ctx.defect("authz-redirect-prefix-match") and requested.startswith(registered)


def resolve_redirect_uri(ctx: Context, client: Client, requested: str | None) -> str | None:
    """The redirect URI to use, or None if the request names none usable.

    OAuth 2.1 §4.1.1, §2.3.2: `redirect_uri` is optional only when exactly one URI is
    registered (under `authz-missing-params-defaulted` the first registered URI is used).
    """
    if requested is None:
        defaulted = len(client.redirect_uris) == 1 or ctx.defect("authz-missing-params-defaulted")
        return client.redirect_uris[0] if defaulted and client.redirect_uris else None
    if any(redirect_uri_matches(ctx, reg, requested) for reg in client.redirect_uris):
        return requested
    return None


# --- refusing unsafe redirects (OAuth 2.1 §4.1.2.1) ---


def _host(uri: str) -> str | None:
    try:
        return urlsplit(uri).hostname
    except ValueError:
        return None


def _unrelated_to_client(client: Client | None, uri: str) -> bool:
    """True if `uri` is absolute and on a host unrelated to the client's registered URIs."""
    host = _host(uri)
    if host is None or not is_absolute_uri_without_fragment(uri):
        return False
    if client is None:
        return True
    for registered in client.redirect_uris:
        reg_host = _host(registered)
        if reg_host and (host == reg_host or host.endswith("." + reg_host)):
            return False
    return True


def refuse_without_redirect(
    ctx: Context, client: Client | None, requested: str | None, reason: str, state: str | None
) -> Response:
    """OAuth 2.1 §4.1.2.1: with an invalid client or redirect URI the AS MUST NOT redirect.

    The `authz-redirects-to-unregistered-uri` defect redirects the error to the unregistered
    URI when it is on a host unrelated to the client (so that near-miss variants of a
    registered URI, judged by AUTHZ-REDIRECT-EXACT-MATCH, are still refused).
    """
    if (
        ctx.defect("authz-redirects-to-unregistered-uri")
        and requested is not None
        and _unrelated_to_client(client, requested)
    ):
        err = AuthorizationError("invalid_request", reason)
        params = {"error": err.error, "error_description": err.description}
        if state is not None:
            params["state"] = state
        return redirect(with_params(requested, add_iss(ctx, params)))
    return error_page("Invalid authorization request", reason)


# --- request validation (step 3) ---


def _check_response_type(ctx: Context, client: Client, response_type: str | None) -> str:
    """OAuth 2.1 §4.1.1 (`code` only, a missing one is an error) and §10.1 (no implicit
    grant). Under `authz-missing-params-defaulted` a missing response_type means `code`."""
    if response_type is None and ctx.defect("authz-missing-params-defaulted"):
        response_type = "code"
    if response_type is None:
        raise AuthorizationError("invalid_request", "response_type is required")
    if response_type == "token" and ctx.defect("authz-implicit-enabled"):
        return response_type
    if response_type != "code":
        raise AuthorizationError(
            "unsupported_response_type", f"response_type {response_type!r} is not supported"
        )
    if "authorization_code" not in client.grant_types:
        raise AuthorizationError(
            "unauthorized_client", "the client is not registered for authorization_code"
        )
    return response_type


def _check_pkce(ctx: Context, client: Client, params: Params) -> tuple[str | None, str | None]:
    """OAuth 2.1 §4.1.1 and RFC 7636 §4.3: a `code_challenge` with method S256 is required,
    from every client (which also closes the PKCE downgrade path, RFC 9700 §4.8.2).

    An omitted method means `plain` (RFC 7636 §4.3), which this AS refuses like any method
    other than S256 (RFC 7636 §4.4.1: `invalid_request`). The challenge must fit the grammar
    (OAuth 2.1 Appendix A.18), and an S256 one must be a SHA-256 value (RFC 7636 §4.2).
    """
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if challenge is None:
        exempt = ctx.defect("authz-pkce-optional") or (
            client.confidential and ctx.defect("token-pkce-downgrade")
        )
        if exempt and method is None:
            return None, None
        raise AuthorizationError("invalid_request", "code_challenge is required (PKCE)")
    unchecked = ctx.defect("authz-pkce-challenge-unchecked")
    if method == "S256":
        if not (is_s256_challenge(challenge) or unchecked):
            raise AuthorizationError(
                "invalid_request", "an S256 code_challenge is 43 base64url characters"
            )
        return challenge, method
    if not (is_pkce_value(challenge) or unchecked):
        raise AuthorizationError("invalid_request", "code_challenge is malformed")
    if method == "plain" and ctx.defect("authz-pkce-plain-accepted"):
        return challenge, method
    if method not in (None, "plain") and ctx.defect("authz-unknown-challenge-method"):
        return challenge, "plain"
    raise AuthorizationError(
        "invalid_request", f"code_challenge_method must be S256 (got {method or 'none'})"
    )


def check_resource(ctx: Context, values: list[str]) -> str | None:
    """RFC 8707 §2: one absolute URI without fragment, naming a resource this AS serves.

    `invalid_target` otherwise. More than one resource is refused too (this AS issues
    single-audience tokens).
    """
    if not values:
        return None
    if len(values) > 1:
        raise AuthorizationError("invalid_target", "only one resource may be requested")
    resource = values[0]
    if ctx.defect("authz-resource-not-validated"):
        return resource
    if not is_absolute_uri_without_fragment(resource):
        raise AuthorizationError(
            "invalid_target", "resource must be an absolute URI without a fragment"
        )
    if resource not in ctx.resources:
        raise AuthorizationError("invalid_target", f"unknown resource {resource!r}")
    return resource


def grant_scope(ctx: Context, requested: str | None) -> list[str]:
    """The scope to grant: known requested scopes, default BASIC_SCOPE.

    OAuth 2.1 §1.4.1 / §3.2.3: the AS may grant a narrower scope than requested and says so
    in the token response. Unknown scopes are dropped (kept under `token-scope-escalation`).
    """
    if requested is None:
        return [BASIC_SCOPE]
    scopes = split_scope(requested)
    if not ctx.defect("token-scope-escalation"):
        scopes = [s for s in scopes if s in SCOPES_SUPPORTED]
    if not scopes:
        raise AuthorizationError("invalid_scope", "none of the requested scopes is available")
    return scopes


def _check_dpop_jkt(value: str | None) -> str | None:
    """RFC 9449 §10: `dpop_jkt` is the base64url SHA-256 JWK thumbprint (RFC 7638) of the key
    the code is to be bound to."""
    if value is not None and not _JKT.match(value):
        raise AuthorizationError("invalid_request", "dpop_jkt is not a SHA-256 JWK thumbprint")
    return value


def validate_request(
    ctx: Context, client: Client, redirect_uri: str, params: Params, repeated: list[str]
) -> ValidatedRequest:
    """Step 3: checks whose failures are redirected to the client."""
    if repeated:
        raise AuthorizationError(
            "invalid_request", f"repeated parameter(s): {', '.join(sorted(repeated))}"
        )
    response_type = _check_response_type(ctx, client, params.get("response_type"))
    challenge, method = (
        (None, None) if response_type == "token" else _check_pkce(ctx, client, params)
    )
    resource = check_resource(ctx, params.all("resource"))
    scope = grant_scope(ctx, params.get("scope"))
    return ValidatedRequest(
        client,
        redirect_uri,
        response_type,
        params.get("state"),
        challenge,
        method,
        resource,
        scope,
        dpop_jkt=_check_dpop_jkt(params.get("dpop_jkt")),
    )


def _errors_found_first(
    ctx: Context, client: Client, requested: str | None, params: Params, repeated: list[str]
) -> Response | None:
    """Only under `authz-validates-params-before-redirect-uri`: the request's other errors are
    checked before its redirect URI and sent to it unchecked (RFC 9700 §4.11.2)."""
    if requested is None or not ctx.defect("authz-validates-params-before-redirect-uri"):
        return None
    try:
        validate_request(ctx, client, requested, params, repeated)
    except AuthorizationError as err:
        return error_redirect(ctx, requested, err, params.get("state"))
    return None


async def authorize_endpoint(request: Request) -> Response:
    """GET /authorize (OAuth 2.1 §4.1.1)."""
    ctx = context(request)
    ctx.store.prune()
    params = collect(request.query_params.multi_items())
    repeated = (
        []
        if ctx.defect("authz-duplicate-params-accepted")
        else params.repeated(allowed=("resource",))
    )  # RFC 8707 §2 lets `resource` repeat; judged in check_resource
    state = params.get("state")
    # (1) OAuth 2.1 §3.1: repeated parameters; without one client/redirect there is no safe
    # place to report the error to.
    if "client_id" in repeated or "redirect_uri" in repeated:
        return error_page(
            "Invalid authorization request", "client_id and redirect_uri must not be repeated"
        )
    # (2) OAuth 2.1 §4.1.2.1: never redirect for an unknown client or unregistered URI.
    requested_uri = params.get("redirect_uri")
    client, problem = await client_metadata_documents.find_client(
        request, ctx, params.get("client_id"), requested_uri
    )
    if client is None:
        return refuse_without_redirect(ctx, None, requested_uri, problem, state)
    redirect_uri = resolve_redirect_uri(ctx, client, requested_uri)
    if redirect_uri is None:
        return _errors_found_first(ctx, client, requested_uri, params, repeated) or (
            refuse_without_redirect(
                ctx, client, requested_uri, "redirect_uri is missing or not registered", state
            )
        )
    # (3) errors from here on go back to the client.
    try:
        validated = validate_request(ctx, client, redirect_uri, params, repeated)
    except AuthorizationError as err:
        return error_redirect(ctx, redirect_uri, err, state)
    # (4) the user signs in at the enterprise IdP.
    return await federation.start_login(ctx, validated)
