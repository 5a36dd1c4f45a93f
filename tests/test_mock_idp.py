"""Tests of the bundled mock enterprise IdP (`mock_idp`)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from starlette.testclient import TestClient

from mock_idp import DEFAULT_USERS, IdpClient, IdpSettings, create_app
from tests.conftest import REPO_ROOT, standalone

ISSUER = "http://127.0.0.1:41000"
CLIENT_ID = "reference-as"
CLIENT_SECRET = "reference-as-secret"
REDIRECT_URI = "http://127.0.0.1:41001/idp/callback"
# starlette's TestClient returns httpx2 responses when httpx2 is installed, else httpx ones.
Response = Any


# --- helpers ---


class _FormParser(HTMLParser):
    """Collects every <form> with its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.buttons = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"method": a.get("method"), "action": a.get("action"), "inputs": {}})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"][a.get("name")] = {
                "type": a.get("type"),
                "value": a.get("value"),
            }
        elif tag == "button" and a.get("type") == "submit":
            self.buttons += 1


def parse_forms(html: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(html)
    return parser


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def redirect_params(response: Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize_params(**overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid email profile",
        "state": "state-123",
        "nonce": "nonce-456",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def login(client: TestClient, page: Response, username: str, password: str) -> Response:
    form = parse_forms(page.text).forms[0]
    return client.post(
        form["action"],
        data={
            "request_id": form["inputs"]["request_id"]["value"],
            "username": username,
            "password": password,
        },
    )


def get_code(client: TestClient, **overrides: str | None) -> str:
    page = client.get("/authorize", params=authorize_params(**overrides))
    assert page.status_code == 200
    response = login(client, page, "alice", "alice-password")
    return redirect_params(response)["code"]


def redeem(client: TestClient, code: str, **extra: str) -> Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    data.update(extra)
    return client.post("/token", data=data, headers=basic(CLIENT_ID, CLIENT_SECRET))


@pytest.fixture
def settings() -> IdpSettings:
    return IdpSettings(
        issuer=ISSUER,
        clients=(IdpClient(CLIENT_ID, CLIENT_SECRET, (REDIRECT_URI,)),),
    )


@pytest.fixture
def client(settings: IdpSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url=ISSUER, follow_redirects=False) as c:
        yield c


# --- discovery and keys ---


def test_default_users() -> None:
    assert [(u.username, u.password, u.email) for u in DEFAULT_USERS] == [
        ("alice", "alice-password", "alice@example.com"),
        ("bob", "bob-password", "bob@example.com"),
    ]


def test_settings_reject_trailing_slash_issuer() -> None:
    with pytest.raises(ValueError):
        IdpSettings(issuer=ISSUER + "/")


def test_discovery_document(client: TestClient) -> None:
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert doc["token_endpoint"] == f"{ISSUER}/token"
    assert doc["jwks_uri"] == f"{ISSUER}/jwks"
    assert doc["userinfo_endpoint"] == f"{ISSUER}/userinfo"
    assert doc["response_types_supported"] == ["code"]
    assert doc["subject_types_supported"] == ["public"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "openid" in doc["scopes_supported"]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert "authorization_code" in doc["grant_types_supported"]
    assert doc["code_challenge_methods_supported"] == ["S256"]


def test_jwks_has_public_members_only(client: TestClient) -> None:
    keys = client.get("/jwks").json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "RSA" and key["kid"] and key["alg"] == "RS256"
    assert not {"d", "p", "q", "dp", "dq", "qi", "oth", "k"} & set(key)


# --- the full flow ---


def test_full_login_flow(client: TestClient) -> None:
    verifier = secrets.token_urlsafe(48)
    page = client.get(
        "/authorize",
        params=authorize_params(code_challenge=s256(verifier), code_challenge_method="S256"),
    )
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    parsed = parse_forms(page.text)
    assert len(parsed.forms) == 1 and parsed.buttons == 1
    form = parsed.forms[0]
    assert form["method"] == "post" and form["action"] == f"{ISSUER}/login"
    assert form["inputs"]["request_id"]["type"] == "hidden"
    assert {"request_id", "username", "password"} <= set(form["inputs"])

    response = login(client, page, "alice", "alice-password")
    params = redirect_params(response)
    assert params["state"] == "state-123" and params["iss"] == ISSUER
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("mock_idp_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "path=/" in cookie.lower()

    token = redeem(client, params["code"], code_verifier=verifier)
    assert token.status_code == 200, token.text
    assert token.headers["cache-control"] == "no-store"
    body = token.json()
    assert body["token_type"] == "Bearer" and body["access_token"]
    assert body["expires_in"] > 0
    assert set(body["scope"].split()) == {"openid", "email", "profile"}

    jwk_set = jwt.PyJWKSet.from_dict(client.get("/jwks").json())
    header = jwt.get_unverified_header(body["id_token"])
    assert header["typ"] == "JWT" and header["alg"] == "RS256"
    key = next(k for k in jwk_set.keys if k.key_id == header["kid"])
    claims = jwt.decode(
        body["id_token"], key.key, algorithms=["RS256"], audience=CLIENT_ID, issuer=ISSUER
    )
    assert claims["sub"] == "alice"
    assert claims["email"] == "alice@example.com"
    assert claims["name"]
    assert claims["nonce"] == "nonce-456"
    assert claims["exp"] > claims["iat"]
    assert isinstance(claims["auth_time"], int)

    info = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json()["sub"] == "alice" and info.json()["email"] == "alice@example.com"


def test_client_secret_post(client: TestClient) -> None:
    code = get_code(client)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert response.status_code == 200, response.text
    assert "nonce" in jwt.decode(response.json()["id_token"], options={"verify_signature": False})


def test_sso_cookie_skips_login_form(client: TestClient) -> None:
    get_code(client)
    again = client.get("/authorize", params=authorize_params(state="second"))
    params = redirect_params(again)
    assert params["state"] == "second" and params["code"] and params["iss"] == ISSUER
    assert redeem(client, params["code"]).status_code == 200


def test_prompt_login_shows_form_despite_session(client: TestClient) -> None:
    get_code(client)
    page = client.get("/authorize", params=authorize_params(prompt="login"))
    assert page.status_code == 200 and len(parse_forms(page.text).forms) == 1


def test_wrong_password_shows_form_again(client: TestClient) -> None:
    page = client.get("/authorize", params=authorize_params())
    response = login(client, page, "alice", "not-the-password")
    assert response.status_code == 200
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert "Wrong username or password" in response.text
    assert len(parse_forms(response.text).forms) == 1
    # the same request can still be completed
    assert redirect_params(login(client, response, "bob", "bob-password"))["code"]


def test_unknown_redirect_uri_is_400_without_location(client: TestClient) -> None:
    response = client.get(
        "/authorize", params=authorize_params(redirect_uri="http://127.0.0.1:9/evil")
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "text/html" in response.headers["content-type"]


def test_unknown_client_is_400_without_location(client: TestClient) -> None:
    response = client.get("/authorize", params=authorize_params(client_id="nobody"))
    assert response.status_code == 400 and "location" not in response.headers


def test_scope_without_openid_redirects_error(client: TestClient) -> None:
    response = client.get("/authorize", params=authorize_params(scope="email"))
    params = redirect_params(response)
    assert params["error"] == "invalid_scope" and params["state"] == "state-123"


def test_code_reuse_is_invalid_grant(client: TestClient) -> None:
    code = get_code(client)
    first = redeem(client, code)
    assert first.status_code == 200
    second = redeem(client, code)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    # RFC 6749 4.1.2: tokens issued from a reused code are revoked
    bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert client.get("/userinfo", headers=bearer).status_code == 401


def test_wrong_redirect_uri_at_token_is_invalid_grant(client: TestClient) -> None:
    code = get_code(client)
    response = redeem(client, code, redirect_uri="http://127.0.0.1:41001/other")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_401_invalid_client(client: TestClient) -> None:
    code = get_code(client)
    response = client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        headers=basic(CLIENT_ID, "wrong"),
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].lower().startswith("basic")
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_description"]


def test_pkce_mismatch_is_invalid_grant(client: TestClient) -> None:
    verifier = secrets.token_urlsafe(48)
    code = get_code(client, code_challenge=s256(verifier), code_challenge_method="S256")
    response = redeem(client, code, code_verifier=secrets.token_urlsafe(48))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_pkce_missing_verifier_is_invalid_grant(client: TestClient) -> None:
    verifier = secrets.token_urlsafe(48)
    code = get_code(client, code_challenge=s256(verifier), code_challenge_method="S256")
    response = redeem(client, code)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(client: TestClient, settings: IdpSettings) -> None:
    code = get_code(client)
    store = client.app.state.store  # type: ignore[attr-defined]
    real_clock = store.clock
    store.clock = lambda: real_clock() + settings.code_lifetime + 1
    response = redeem(client, code)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_unsupported_grant_type(client: TestClient) -> None:
    response = client.post(
        "/token", data={"grant_type": "password"}, headers=basic(CLIENT_ID, CLIENT_SECRET)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_missing_grant_type_is_invalid_request(client: TestClient) -> None:
    response = client.post("/token", data={}, headers=basic(CLIENT_ID, CLIENT_SECRET))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


# --- standalone mode ---


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_standalone_serves_discovery() -> None:
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    client = f"{CLIENT_ID}:{CLIENT_SECRET}:{REDIRECT_URI}"
    with standalone(
        "mock_idp", "--host", "127.0.0.1", "--port", str(port), "--client", client
    ) as ready:
        assert issuer in ready
        doc = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=5).json()
        assert doc["issuer"] == issuer
        assert doc["token_endpoint"] == f"{issuer}/token"


def test_standalone_refuses_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mock_idp", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--allow-non-loopback" in result.stderr


def test_prompt_none_without_session_is_login_required(client: TestClient) -> None:
    response = client.get("/authorize", params=authorize_params(prompt="none"))
    params = redirect_params(response)
    assert params["error"] == "login_required" and params["iss"] == ISSUER


def test_public_client_with_pkce() -> None:
    settings = IdpSettings(issuer=ISSUER, clients=(IdpClient("public-app", None, (REDIRECT_URI,)),))
    with TestClient(create_app(settings), base_url=ISSUER, follow_redirects=False) as c:
        no_pkce = c.get("/authorize", params=authorize_params(client_id="public-app"))
        assert redirect_params(no_pkce)["error"] == "invalid_request"
        verifier = secrets.token_urlsafe(48)
        code = get_code(
            c, client_id="public-app", code_challenge=s256(verifier), code_challenge_method="S256"
        )
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": "public-app",
            "code_verifier": verifier,
        }
        response = c.post("/token", data=data)
        assert response.status_code == 200, response.text
