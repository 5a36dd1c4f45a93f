"""Authorization responses delivered by redirect (OAuth 2.1 §4.1.2, §4.1.2.1; RFC 9207)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.responses import JSONResponse, Response

from reference.authorization_server.context import Context
from reference.authorization_server.errors import NO_STORE


class AuthorizationError(Exception):
    """An error reported to the client by redirect (OAuth 2.1 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


def with_params(uri: str, params: dict[str, str], *, fragment: bool = False) -> str:
    """Add parameters to the query (or fragment) of `uri`, keeping any existing query.

    OAuth 2.1 §4.1.2: the redirect URI's own query component MUST be retained. Values are
    percent-encoded (space as %20) so `state` decodes to exactly what the client sent.
    """
    base = uri.split("#", 1)[0]
    encoded = urlencode(params, quote_via=quote)
    if fragment:
        return f"{base}#{encoded}"
    if "?" not in base:
        return f"{base}?{encoded}"
    return f"{base}{'' if base.endswith(('?', '&')) else '&'}{encoded}"


def add_iss(ctx: Context, params: dict[str, str]) -> dict[str, str]:
    """RFC 9207 §2: `iss` in every authorization response (unless `authz-no-iss`), identical to
    the issuer identifier (§2.3; under `authz-iss-trailing-slash`, with a slash appended)."""
    if not ctx.defect("authz-no-iss"):
        slash = "/" if ctx.defect("authz-iss-trailing-slash") else ""
        params["iss"] = ctx.issuer + slash
    return params


def redirect(location: str, status: int = 302) -> Response:
    """A redirect whose Location is sent exactly as built (no re-quoting)."""
    return Response(status_code=status, headers={"Location": location, **NO_STORE})


def error_redirect(
    ctx: Context,
    redirect_uri: str,
    err: AuthorizationError,
    state: str | None,
    status: int = 302,
) -> Response:
    """OAuth 2.1 §4.1.2.1: error, error_description, state (exactly as received), iss."""
    if ctx.defect("authz-error-as-json"):
        return JSONResponse(
            {"error": err.error, "error_description": err.description},
            status_code=400,
            headers=NO_STORE,
        )
    params = {"error": err.error, "error_description": err.description}
    if state is not None and not ctx.defect("authz-state-dropped-on-error"):
        params["state"] = state
    return redirect(with_params(redirect_uri, add_iss(ctx, params)), status)
