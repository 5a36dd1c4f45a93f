"""HTML pages: the login form and the error page. Values are always HTML-escaped.

The login form is the contract the suite's headless browser relies on: exactly one
`<form method="post" action="{issuer}/login">` with inputs `request_id` (hidden),
`username` and `password`, and one submit button.
"""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

# Pages must not be framed (clickjacking, RFC 6749 section 10.13) nor cached.
PAGE_HEADERS: dict[str, str] = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}

_STYLE = (
    "body{font-family:sans-serif;max-width:24rem;margin:4rem auto}"
    "label{display:block;margin:.6rem 0}.error{color:#b00020}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def login_page(
    action: str,
    request_id: str,
    client_id: str,
    error: str | None = None,
    username: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    """The sign-in form for one pending authorization request."""
    error_html = f'<p class="error" role="alert">{escape(error)}</p>\n' if error else ""
    body = (
        f"<p>Sign in to continue to <strong>{escape(client_id)}</strong>.</p>\n"
        f"{error_html}"
        f'<form method="post" action="{escape(action)}">\n'
        f'<input type="hidden" name="request_id" value="{escape(request_id)}">\n'
        '<label>Username <input type="text" name="username" autocomplete="username" '
        f'value="{escape(username)}" required></label>\n'
        '<label>Password <input type="password" name="password" '
        'autocomplete="current-password" required></label>\n'
        '<button type="submit">Sign in</button>\n'
        "</form>"
    )
    return HTMLResponse(
        _page("Mock IdP sign-in", body), status_code=status_code, headers=PAGE_HEADERS
    )


def error_page(message: str, status_code: int = 400) -> HTMLResponse:
    """A plain error page, used where redirecting back would be unsafe
    (RFC 6749 section 4.1.2.1: invalid client or redirect URI)."""
    body = f'<p class="error" role="alert">{escape(message)}</p>'
    return HTMLResponse(
        _page("Mock IdP error", body), status_code=status_code, headers=PAGE_HEADERS
    )
