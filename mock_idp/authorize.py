"""The authorization endpoint and the login form handler (RFC 6749 section 4.1,
OIDC Core 1.0 section 3.1.2, RFC 7636, RFC 9207)."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mock_idp.login import error_page, login_page
from mock_idp.settings import IdpClient, IdpSettings, IdpUser
from mock_idp.store import SESSION_LIFETIME, AuthorizationRequest, Session, Store

SESSION_COOKIE = "mock_idp_session"
SCOPES_SUPPORTED: tuple[str, ...] = ("openid", "profile", "email")
# RFC 7636 section 4.2: an S256 challenge is 43 base64url characters.
CHALLENGE_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


class AuthorizeError(Exception):
    """An error returned to the client by redirect (RFC 6749 section 4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


async def request_params(request: Request) -> list[tuple[str, str]]:
    """OIDC Core 3.1.2.1: the request arrives as a GET query or a form-encoded POST."""
    if request.method == "POST":
        form = await request.form()
        return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return list(request.query_params.multi_items())


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """Add parameters to a URI, keeping its existing query (RFC 6749 section 3.1.2)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def authorize_endpoint(request: Request, settings: IdpSettings, store: Store) -> Response:
    """Validate, then either answer from the SSO session or show the login form."""
    items = await request_params(request)
    params = {k: v for k, v in items if v != ""}  # RFC 6749 3.1: empty means omitted
    repeated = {k for k, _ in items if sum(1 for k2, _ in items if k2 == k) > 1}
    client, redirect_uri, problem = _client_and_redirect(settings, params, repeated)
    if problem is not None:
        return error_page(problem)
    assert client is not None and redirect_uri is not None
    state = params.get("state")
    try:
        if repeated:
            raise AuthorizeError("invalid_request", f"repeated: {', '.join(sorted(repeated))}")
        authz = parse_request(client, redirect_uri, params)
        prompt = set(params.get("prompt", "").split())
        session = store.session(request.cookies.get(SESSION_COOKIE))
        if session is not None and "login" not in prompt:
            return issue_code_redirect(settings, store, authz, session)
        if "none" in prompt:
            raise AuthorizeError("login_required", "no IdP session and prompt=none")
    except AuthorizeError as exc:
        return error_redirect(settings, redirect_uri, state, exc)
    request_id = store.add_pending(authz)
    return login_page(settings.url("/login"), request_id, client.client_id)


def _client_and_redirect(
    settings: IdpSettings, params: Mapping[str, str], repeated: set[str]
) -> tuple[IdpClient | None, str | None, str | None]:
    """RFC 6749 4.1.2.1: an unknown client or a redirect_uri that is missing or not an
    exact match (OAuth 2.1 / RFC 9700 section 4.1.3) is told to the user, never redirected."""
    if {"client_id", "redirect_uri"} & repeated:
        return None, None, "client_id and redirect_uri must not be repeated."
    client = settings.client(params.get("client_id", ""))
    if client is None:
        return None, None, "Unknown or missing client_id."
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:  # OIDC Core 3.1.2.1: REQUIRED
        return None, None, "redirect_uri is required."
    if redirect_uri not in client.redirect_uris:
        return None, None, "redirect_uri is not registered for this client."
    return client, redirect_uri, None


def parse_request(
    client: IdpClient, redirect_uri: str, params: Mapping[str, str]
) -> AuthorizationRequest:
    """The rest of RFC 6749 4.1.1 / OIDC Core 3.1.2.1 / RFC 7636 4.3 validation."""
    response_type = params.get("response_type")
    if response_type is None:
        raise AuthorizeError("invalid_request", "response_type is required")
    if response_type != "code":
        raise AuthorizeError("unsupported_response_type", "only response_type=code")
    scope = tuple(dict.fromkeys(params.get("scope", "").split()))
    if "openid" not in scope:
        raise AuthorizeError("invalid_scope", "scope must contain openid")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise AuthorizeError("invalid_request", "code_challenge_method without challenge")
        if client.is_public:
            raise AuthorizeError("invalid_request", "public clients must use PKCE")
    else:
        if method != "S256":  # RFC 7636 4.3: the default would be plain; only S256 here
            raise AuthorizeError("invalid_request", "code_challenge_method must be S256")
        if not CHALLENGE_RE.match(challenge):
            raise AuthorizeError("invalid_request", "malformed code_challenge")
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        # OIDC Core 3.1.2.1: unknown scope values are ignored
        scope=tuple(s for s in scope if s in SCOPES_SUPPORTED),
        state=params.get("state"),
        nonce=params.get("nonce"),
        code_challenge=challenge,
        code_challenge_method=method,
    )


def issue_code_redirect(
    settings: IdpSettings, store: Store, authz: AuthorizationRequest, session: Session
) -> RedirectResponse:
    """RFC 6749 4.1.2: code + state; RFC 9207: iss."""
    code = store.add_code(authz, session.username, session.auth_time, settings.code_lifetime)
    location = with_query(
        authz.redirect_uri, {"code": code, "state": authz.state, "iss": settings.issuer}
    )
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def error_redirect(
    settings: IdpSettings, redirect_uri: str, state: str | None, exc: AuthorizeError
) -> RedirectResponse:
    """RFC 6749 4.1.2.1 error response, with RFC 9207 iss."""
    location = with_query(
        redirect_uri,
        {
            "error": exc.error,
            "error_description": exc.description,
            "state": state,
            "iss": settings.issuer,
        },
    )
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


async def login_endpoint(request: Request, settings: IdpSettings, store: Store) -> Response:
    """POST from the login form: right credentials open an SSO session and complete the
    parked authorization request; wrong ones show the form again."""
    form = await request.form()
    request_id = _form_str(form.get("request_id"))
    authz = store.pending(request_id)
    if authz is None:
        return error_page("This sign-in request is unknown or has expired. Start again.")
    username = _form_str(form.get("username"))
    user = check_credentials(settings, username, _form_str(form.get("password")))
    if user is None:
        return login_page(
            settings.url("/login"),
            request_id,
            authz.client_id,
            error="Wrong username or password.",
            username=username,
        )
    store.drop_pending(request_id)
    session = store.add_session(user.username)
    response = issue_code_redirect(settings, store, authz, session)
    response.headers.append("set-cookie", session_cookie(settings, session.session_id))
    return response


def session_cookie(settings: IdpSettings, session_id: str) -> str:
    """The SSO cookie: HttpOnly, SameSite=Lax, Path=/ (RFC 6265bis section 4.1);
    Secure when the issuer is https. Cookies ignore ports, so the name is IdP-specific."""
    secure = "; Secure" if settings.secure_cookies else ""
    return (
        f"{SESSION_COOKIE}={session_id}; Max-Age={SESSION_LIFETIME}; Path=/; HttpOnly; "
        f"SameSite=Lax{secure}"
    )


def check_credentials(settings: IdpSettings, username: str, password: str) -> IdpUser | None:
    """The matching user, compared in constant time over every user."""
    found: IdpUser | None = None
    for user in settings.users:
        name_ok = hmac.compare_digest(user.username.encode(), username.encode())
        password_ok = hmac.compare_digest(user.password.encode(), password.encode())
        if name_ok and password_ok:
            found = user
    return found


def _form_str(value: object) -> str:
    return value if isinstance(value, str) else ""
