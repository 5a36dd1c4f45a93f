"""Error types and error responses of the reference authorization server."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# OAuth 2.1 §7.10: pages shown to the user must not be framed by other origins.
ANTI_FRAMING = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


class OAuthError(Exception):
    """An OAuth error response: `error` code, description and HTTP status (OAuth 2.1 §3.2.4)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class InternalServerError(Exception):
    """Raised where the deliberately broken `token-error-not-json` path would crash."""


def oauth_error_response(err: OAuthError, realm: str) -> JSONResponse:
    """JSON error body with `Cache-Control: no-store` (OAuth 2.1 §3.2.4).

    A 401 carries a `WWW-Authenticate: Basic` challenge, as required when client
    authentication fails (OAuth 2.1 §3.2.4 `invalid_client`; RFC 7235 §3.1).
    """
    headers = dict(NO_STORE)
    if err.status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
    return JSONResponse(
        {"error": err.error, "error_description": err.description},
        status_code=err.status,
        headers=headers,
    )


def plain_server_error() -> PlainTextResponse:
    """A bare 500 text response (only for the `token-error-not-json` defect)."""
    return PlainTextResponse("Internal Server Error", status_code=500)


def error_page(title: str, message: str, status: int = 400) -> Response:
    """An HTML error page shown to the user instead of a redirect (OAuth 2.1 §4.1.2.1)."""
    body = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={**ANTI_FRAMING, **NO_STORE})
