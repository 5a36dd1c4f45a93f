"""Tests of the reference authorization server (`reference.authorization_server`).

The AS runs in-process behind starlette's TestClient (its issuer URL is never bound); the mock
IdP it federates sign-in to runs as a real uvicorn server on an ephemeral loopback port, so
the AS's outbound OIDC calls are real HTTP. The "browser" follows redirects by hand.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from starlette.testclient import TestClient

from reference.authorization_server import create_app
from reference.settings import BASIC_SCOPE, PRIVILEGED_SCOPE, ReferenceSettings
from tests.reference.conftest import AS_ISSUER

MCP = "http://127.0.0.1:41002/mcp"
RS2 = "http://127.0.0.1:41003/rs2"
CLIENT_CB = "http://127.0.0.1/cb"  # loopback: any port is allowed
# starlette's TestClient may return httpx2 responses; only the common API is used.
Response = Any


# --- fixtures ---


# --- helpers ---


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def fragment(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}


class Deployment:
    """One AS instance plus a scripted browser and client helpers."""

    def __init__(self, idp_issuer: str, defects: tuple[str, ...] = ()) -> None:
        self.settings = ReferenceSettings(
            issuer=AS_ISSUER,
            mcp_url=MCP,
            second_resource=RS2,
            idp_issuer=idp_issuer,
            defects=frozenset(defects),
        )
        self.http = TestClient(
            create_app(self.settings),
            base_url=AS_ISSUER,
            client=("127.0.0.1", 50000),
            follow_redirects=False,
        )
        self.browser = httpx.Client(follow_redirects=False, trust_env=False)
        self.idp_issuer = idp_issuer

    def close(self) -> None:
        self.browser.close()

    # registration
    def register(self, **metadata: Any) -> dict[str, Any]:
        body = {
            "redirect_uris": [CLIENT_CB],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "t",
            **metadata,
        }
        resp = self.http.post("/register", json=body)
        assert resp.status_code in (200, 201), resp.text
        return resp.json()

    # authorization
    def authorize(
        self,
        client: dict[str, Any],
        *extra: tuple[str, str],
        verifier: str = "",
        **params: str | None,
    ) -> Response:
        base: dict[str, str | None] = {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": "http://127.0.0.1:53117/cb",
            "code_challenge": s256(verifier or "v" * 43),
            "code_challenge_method": "S256",
            "state": "st-1",
            "resource": MCP,
        }
        base.update(params)
        items = [(k, v) for k, v in base.items() if v is not None] + list(extra)
        return self.http.get("/authorize", params=items)

    def follow(self, resp: Response) -> str:
        """Follow redirects through the IdP login until they leave the AS and IdP."""
        for _ in range(10):
            assert resp.status_code in (302, 303), (resp.status_code, resp.text)
            location = resp.headers["location"]
            if location.startswith(AS_ISSUER):
                resp = self.http.get(location)
            elif location.startswith(self.idp_issuer):
                resp = self.browser.get(location)
                if resp.status_code == 200:
                    request_id = re.search(r'name="request_id" value="([^"]+)"', resp.text)
                    assert request_id, resp.text
                    resp = self.browser.post(
                        f"{self.idp_issuer}/login",
                        data={
                            "request_id": request_id.group(1),
                            "username": "alice",
                            "password": "alice-password",
                        },
                    )
            else:
                return location
        raise AssertionError("redirect loop")

    def code(self, client: dict[str, Any], verifier: str, **params: str | None) -> str:
        location = self.follow(self.authorize(client, verifier=verifier, **params))
        got = query(location)
        assert "code" in got, location
        return got["code"]

    # token endpoint
    def token(
        self, data: dict[str, str], client: dict[str, Any] | None = None, basic: bool = False
    ) -> Response:
        data = dict(data)
        auth = None
        if client is not None:
            if client.get("client_secret") and basic:
                auth = (client["client_id"], client["client_secret"])
            else:
                data.setdefault("client_id", client["client_id"])
                if client.get("client_secret"):
                    data.setdefault("client_secret", client["client_secret"])
        return self.http.post("/token", data=data, auth=auth)

    def redeem(self, client: dict[str, Any], code: str, verifier: str, **extra: str) -> Response:
        return self.token(
            {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, **extra},
            client,
        )

    def tokens(self, client: dict[str, Any], **params: str | None) -> dict[str, Any]:
        verifier = secrets.token_urlsafe(40)
        resp = self.redeem(client, self.code(client, verifier, **params), verifier)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def introspect(self, token: str) -> dict[str, Any]:
        rs = getattr(self, "_rs", None) or self.register(
            token_endpoint_auth_method=("client_secret_basic")
        )
        self._rs = rs
        resp = self.http.post(
            "/introspect", data={"token": token}, auth=(rs["client_id"], rs["client_secret"])
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def verify(self, access_token: str) -> dict[str, Any]:
        jwks = jwt.PyJWKSet.from_dict(self.http.get("/jwks").json())
        kid = jwt.get_unverified_header(access_token)["kid"]
        key = next(k for k in jwks.keys if k.key_id == kid)
        return jwt.decode(
            access_token, key.key, algorithms=["RS256"], audience=MCP, issuer=AS_ISSUER
        )


@pytest.fixture(scope="module")
def dep(idp_issuer: str) -> Iterator[Deployment]:
    d = Deployment(idp_issuer)
    yield d
    d.close()


@pytest.fixture
def make(idp_issuer: str) -> Iterator[Any]:
    made: list[Deployment] = []

    def factory(*defects: str) -> Deployment:
        made.append(Deployment(idp_issuer, defects))
        return made[-1]

    yield factory
    for d in made:
        d.close()


@pytest.fixture
def public(dep: Deployment) -> dict[str, Any]:
    return dep.register()


# --- metadata and keys ---


def test_metadata(dep: Deployment) -> None:
    resp = dep.http.get("/.well-known/oauth-authorization-server")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    doc = resp.json()
    assert doc["issuer"] == AS_ISSUER
    for name, path in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("registration_endpoint", "/register"),
        ("jwks_uri", "/jwks"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
    ]:
        assert doc[name] == AS_ISSUER + path
    assert doc["response_types_supported"] == ["code"]
    assert doc["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ]
    assert doc["authorization_grant_profiles_supported"] == [
        "urn:ietf:params:oauth:grant-profile:id-jag"
    ]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "none",
        "client_secret_basic",
        "client_secret_post",
    }
    assert dep.http.get("/.well-known/openid-configuration").status_code == 404


def test_jwks_has_no_private_members(dep: Deployment) -> None:
    keys = dep.http.get("/jwks").json()["keys"]
    assert len(keys) == 1 and keys[0]["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])


# --- registration ---


def test_register_public_and_confidential(dep: Deployment) -> None:
    resp = dep.http.post(
        "/register",
        json={
            "redirect_uris": ["http://127.0.0.1:33418/cb"],
            "token_endpoint_auth_method": "none",
            "client_name": "t",
            "unknown_field": 1,
        },
    )
    assert resp.status_code == 201 and "no-store" in resp.headers["cache-control"]
    body = resp.json()
    assert body["client_id"] and "client_secret" not in body and "unknown_field" not in body
    assert body["client_name"] == "t"
    conf = dep.http.post("/register", json={"redirect_uris": ["https://c.example/cb"]}).json()
    assert conf["token_endpoint_auth_method"] == "client_secret_basic"
    assert conf["client_secret"] and conf["client_secret_expires_at"] == 0


@pytest.mark.parametrize(
    "uri", ["http://evil.example/cb", "/cb", "https://c.example/cb#x", "javascript:alert(1)"]
)
def test_register_rejects_bad_redirect_uri(dep: Deployment, uri: str) -> None:
    resp = dep.http.post("/register", json={"redirect_uris": [uri]})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize(
    "meta",
    [
        {"grant_types": ["password"]},
        {"token_endpoint_auth_method": "bogus"},
        {"grant_types": ["authorization_code"], "response_types": ["token"]},
    ],
)
def test_register_rejects_bad_metadata(dep: Deployment, meta: dict[str, Any]) -> None:
    resp = dep.http.post("/register", json={"redirect_uris": [CLIENT_CB], **meta})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_client_metadata"


# --- authorization endpoint ---


def test_unknown_client_and_bad_redirect_are_not_redirected(
    dep: Deployment, public: dict[str, Any]
) -> None:
    resp = dep.authorize({"client_id": "nope"}, redirect_uri="https://attacker.example/cb")
    assert resp.status_code == 400 and "location" not in resp.headers
    assert resp.headers["x-frame-options"] == "DENY"
    resp = dep.authorize(public, redirect_uri="https://attacker.example/cb")
    assert resp.status_code == 400 and "location" not in resp.headers
    resp = dep.authorize(public, ("redirect_uri", "http://127.0.0.1:1/cb"))
    assert resp.status_code == 400 and "location" not in resp.headers


def test_redirect_uri_exact_match(dep: Deployment) -> None:
    client = dep.register(redirect_uris=["https://c.example/cb"])
    for variant in [
        "https://c.example/cb/x",
        "https://c.example/cb/",
        "https://C.example/cb",
        "https://c.example/cb?x=1",
        "https://c.example:444/cb",
        "https://evil.c.example/cb",
        "https://c.example/cb#f",
        "https://c.example/CB",
    ]:
        resp = dep.authorize(client, redirect_uri=variant)
        assert resp.status_code == 400 and "location" not in resp.headers, variant
    resp = dep.authorize(client, redirect_uri="https://c.example/cb")
    assert resp.headers["location"].startswith(dep.idp_issuer)


def test_loopback_any_port(dep: Deployment) -> None:
    client = dep.register(redirect_uris=["http://127.0.0.1/callback"])
    ok = dep.authorize(client, redirect_uri="http://127.0.0.1:53117/callback")
    assert ok.status_code == 302 and ok.headers["location"].startswith(dep.idp_issuer)
    assert dep.authorize(client, redirect_uri="http://127.0.0.1:53117/other").status_code == 400


STATE = "-._~+/= " + "x" * 200


@pytest.mark.parametrize(
    ("params", "extra", "error"),
    [
        ({"response_type": "foo"}, (), "unsupported_response_type"),
        ({"response_type": "token"}, (), "unsupported_response_type"),
        ({"response_type": "code token"}, (), "unsupported_response_type"),
        ({"code_challenge": None, "code_challenge_method": None}, (), "invalid_request"),
        ({"code_challenge_method": "S512"}, (), "invalid_request"),
        ({"code_challenge_method": "plain"}, (), "invalid_request"),
        ({"code_challenge_method": None}, (), "invalid_request"),
        ({}, (("code_challenge", s256("w" * 43)),), "invalid_request"),
        ({"resource": "mcp.example.com"}, (), "invalid_target"),
        ({"resource": MCP + "#frag"}, (), "invalid_target"),
        ({"resource": "https://unknown.example"}, (), "invalid_target"),
        ({}, (("resource", RS2),), "invalid_target"),
        ({"scope": "nonsense"}, (), "invalid_scope"),
    ],
)
def test_authorization_errors_redirect_with_state_and_iss(
    dep: Deployment,
    public: dict[str, Any],
    params: dict[str, str | None],
    extra: tuple[tuple[str, str], ...],
    error: str,
) -> None:
    resp = dep.authorize(public, *extra, state=STATE, **params)
    assert resp.status_code == 302
    location = resp.headers["location"]
    assert location.startswith("http://127.0.0.1:53117/cb?")
    got = query(location)
    assert got["error"] == error and got["state"] == STATE and got["iss"] == AS_ISSUER
    assert "access_token" not in location


# --- the code flow ---


def test_full_code_flow(dep: Deployment, public: dict[str, Any]) -> None:
    verifier = secrets.token_urlsafe(40)
    location = dep.follow(
        dep.authorize(
            public, verifier=verifier, state=STATE, scope=f"{BASIC_SCOPE} {PRIVILEGED_SCOPE} bogus"
        )
    )
    assert location.startswith("http://127.0.0.1:53117/cb?")
    got = query(location)
    assert got["state"] == STATE and got["iss"] == AS_ISSUER and len(got["code"]) >= 43
    resp = dep.redeem(public, got["code"], verifier)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store" and resp.headers["pragma"] == "no-cache"
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"] == f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}" and body["refresh_token"]
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    claims = dep.verify(body["access_token"])
    assert claims["sub"] == "alice" and claims["client_id"] == public["client_id"]
    assert claims["aud"] == MCP and claims["scope"] == body["scope"]
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"] and claims["auth_time"]
    info = dep.introspect(body["access_token"])
    assert info["active"] is True and info["aud"] == MCP and info["sub"] == "alice"


def test_confidential_client_with_basic_and_redirect_uri(dep: Deployment) -> None:
    client = dep.register(
        token_endpoint_auth_method="client_secret_basic",
        redirect_uris=["https://c.example/cb1", "https://c.example/cb2"],
    )
    verifier = secrets.token_urlsafe(40)
    code = dep.code(client, verifier, redirect_uri="https://c.example/cb1")
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    wrong = dep.token({**data, "redirect_uri": "https://c.example/cb2"}, client, basic=True)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    unauth = dep.http.post("/token", data={**data, "client_id": client["client_id"]})
    assert unauth.status_code == 401 and unauth.json()["error"] == "invalid_client"
    ok = dep.token({**data, "redirect_uri": "https://c.example/cb1"}, client, basic=True)
    assert ok.status_code == 200, ok.text


def test_pkce_verification(dep: Deployment, public: dict[str, Any]) -> None:
    verifier = secrets.token_urlsafe(40)
    code = dep.code(public, verifier)
    missing = dep.token({"grant_type": "authorization_code", "code": code}, public)
    assert missing.json()["error"] == "invalid_request"
    wrong = dep.redeem(public, code, secrets.token_urlsafe(40))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    as_plain = dep.redeem(public, code, s256(verifier))
    assert as_plain.json()["error"] == "invalid_grant"
    assert dep.redeem(public, code, verifier).status_code == 200


def test_code_replay_revokes_tokens(dep: Deployment, public: dict[str, Any]) -> None:
    verifier = secrets.token_urlsafe(40)
    code = dep.code(public, verifier)
    first = dep.redeem(public, code, verifier).json()
    bad_replay = dep.redeem(public, code, secrets.token_urlsafe(40))
    assert bad_replay.json()["error"] == "invalid_grant"
    assert dep.introspect(first["access_token"])["active"] is True  # no DoS by bad replays
    replay = dep.redeem(public, code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert dep.introspect(first["access_token"]) == {"active": False}
    refresh = dep.token(
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, public
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_code_bound_to_client_and_resource(dep: Deployment, public: dict[str, Any]) -> None:
    other = dep.register()
    verifier = secrets.token_urlsafe(40)
    code = dep.code(public, verifier)
    assert dep.redeem(other, code, verifier).json()["error"] == "invalid_grant"
    assert dep.redeem(public, code, verifier, resource=RS2).json()["error"] == "invalid_target"
    assert (
        dep.redeem(public, code, verifier, resource=MCP + "#x").json()["error"] == "invalid_target"
    )
    ok = dep.redeem(public, code, verifier, resource=MCP, scope=BASIC_SCOPE)
    assert ok.status_code == 200 and dep.verify(ok.json()["access_token"])["aud"] == MCP


def test_second_resource_audience(dep: Deployment, public: dict[str, Any]) -> None:
    body = dep.tokens(public, resource=RS2)
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == RS2


def test_refresh_rotation_and_family_revocation(dep: Deployment, public: dict[str, Any]) -> None:
    first = dep.tokens(public, scope=f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}")
    rt1 = first["refresh_token"]

    def refresh(rt: str, **extra: str) -> Response:
        return dep.token({"grant_type": "refresh_token", "refresh_token": rt, **extra}, public)

    assert refresh(rt1, scope="mcp:other").json()["error"] == "invalid_scope"
    assert refresh(rt1, resource=RS2).json()["error"] == "invalid_target"
    narrow = refresh(rt1, scope=BASIC_SCOPE)
    assert narrow.status_code == 200 and narrow.headers["cache-control"] == "no-store"
    second = narrow.json()
    assert second["scope"] == BASIC_SCOPE and second["refresh_token"] != rt1
    full = refresh(second["refresh_token"]).json()
    assert full["scope"] == f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}"
    other = dep.register()
    assert (
        dep.token(
            {"grant_type": "refresh_token", "refresh_token": full["refresh_token"]}, other
        ).json()["error"]
        == "invalid_grant"
    )
    assert refresh(rt1).json()["error"] == "invalid_grant"  # replay: the family is revoked
    assert refresh(full["refresh_token"]).json()["error"] == "invalid_grant"
    assert dep.introspect(full["access_token"]) == {"active": False}


def test_token_error_matrix(dep: Deployment, public: dict[str, Any]) -> None:
    conf = dep.register(token_endpoint_auth_method="client_secret_basic")
    cases = [
        (dep.token({}, public), 400, "invalid_request"),
        (dep.token({"grant_type": "foo"}, public), 400, "unsupported_grant_type"),
        (
            dep.token(
                {"grant_type": "authorization_code", "code": "bogus", "code_verifier": "v" * 43},
                public,
            ),
            400,
            "invalid_grant",
        ),
        (dep.token({"grant_type": "client_credentials"}, public), 400, "unauthorized_client"),
        (
            dep.token(
                {"grant_type": "password", "username": "alice", "password": "alice-password"},
                conf,
                basic=True,
            ),
            400,
            "unsupported_grant_type",
        ),
        (
            dep.http.post(
                "/token",
                data={"grant_type": "authorization_code", "code": "x"},
                auth=(conf["client_id"], "wrong"),
            ),
            401,
            "invalid_client",
        ),
        (
            dep.http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": "x",
                    "client_secret": conf["client_secret"],
                },
                auth=(conf["client_id"], conf["client_secret"]),
            ),
            400,
            "invalid_request",
        ),
        (
            dep.http.post(
                "/token",
                content="grant_type=refresh_token&grant_type=refresh_token",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            400,
            "invalid_request",
        ),
    ]
    for resp, status, error in cases:
        assert (resp.status_code, resp.json()["error"]) == (status, error), resp.text
        assert resp.headers["cache-control"] == "no-store"
        if status == 401:
            assert resp.headers["www-authenticate"].startswith("Basic")


def test_introspection_and_revocation(dep: Deployment, public: dict[str, Any]) -> None:
    body = dep.tokens(public)
    assert dep.http.post("/introspect", data={"token": body["access_token"]}).status_code == 401
    assert dep.introspect("random-string") == {"active": False}
    assert dep.introspect(body["refresh_token"])["active"] is True
    other = dep.register()
    revoke = {"token": body["refresh_token"], "client_id": other["client_id"]}
    assert dep.http.post("/revoke", data=revoke).status_code == 200
    assert dep.introspect(body["refresh_token"])["active"] is True
    for _ in range(2):
        resp = dep.http.post("/revoke", data={**revoke, "client_id": public["client_id"]})
        assert resp.status_code == 200
    assert dep.introspect(body["refresh_token"]) == {"active": False}
    assert dep.introspect(body["access_token"]) == {"active": False}
    single = dep.tokens(public)
    dep.http.post(
        "/revoke", data={"token": single["access_token"], "client_id": public["client_id"]}
    )
    assert dep.introspect(single["access_token"]) == {"active": False}
    assert dep.introspect(single["refresh_token"])["active"] is True


def test_test_signer(dep: Deployment) -> None:
    resp = dep.http.post(
        "/_test/sign", json={"claims": {"sub": "x", "exp": 1}, "header": {"typ": "JWT"}}
    )
    token = resp.json()["token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "JWT" and header["alg"] == "RS256" and header["kid"]
    with pytest.raises(jwt.ExpiredSignatureError):
        dep.verify(token)
    default = dep.http.post("/_test/sign", json={"claims": {"sub": "x"}}).json()["token"]
    assert jwt.get_unverified_header(default)["typ"] == "at+jwt"


# --- defect switches change what they say ---


def test_metadata_defects(make: Any) -> None:
    def doc(*defects: str) -> dict[str, Any]:
        return make(*defects).http.get("/.well-known/oauth-authorization-server").json()

    d = make("as-metadata-missing")
    assert d.http.get("/.well-known/oauth-authorization-server").status_code == 404
    assert d.http.get("/jwks").status_code == 200
    assert doc("as-metadata-issuer-mismatch")["issuer"] == AS_ISSUER + "/"
    assert "registration_endpoint" not in doc("as-metadata-registration-hidden")
    assert "authorization_response_iss_parameter_supported" not in doc(
        "as-metadata-iss-flag-missing"
    )
    assert "response_types_supported" not in doc("as-metadata-missing-response-types")
    assert "code_challenge_methods_supported" not in doc("as-metadata-no-pkce-methods")
    assert "jwks_uri" not in doc("as-metadata-no-jwks-uri")
    legacy = doc("as-metadata-legacy-grants")
    assert {"implicit", "password"} <= set(legacy["grant_types_supported"])
    assert "token" in legacy["response_types_supported"]


def test_dcr_defects(make: Any) -> None:
    assert (
        make("dcr-returns-200")
        .http.post("/register", json={"redirect_uris": [CLIENT_CB]})
        .status_code
        == 200
    )
    any_redirect = make("dcr-accepts-any-redirect")
    for uri in ["http://evil.example/cb", "/cb", "javascript:alert(1)"]:
        assert any_redirect.http.post("/register", json={"redirect_uris": [uri]}).status_code == 201
    unsafe = make("dcr-accepts-unsafe-metadata")
    body = unsafe.register(grant_types=["password"], token_endpoint_auth_method="bogus")
    assert body["grant_types"] == ["password"] and body["token_endpoint_auth_method"] == "bogus"


def test_authorization_response_defects(make: Any) -> None:
    no_iss = make("authz-no-iss")
    client = no_iss.register()
    assert "iss" not in query(no_iss.follow(no_iss.authorize(client)))
    assert "iss" not in query(no_iss.authorize(client, response_type="foo").headers["location"])

    as_json = make("authz-error-as-json")
    resp = as_json.authorize(as_json.register(), response_type="foo")
    assert resp.status_code == 400 and resp.json()["error"] == "unsupported_response_type"

    dropped = make("authz-state-dropped-on-error")
    client = dropped.register()
    assert "state" not in query(dropped.authorize(client, response_type="foo").headers["location"])
    assert query(dropped.follow(dropped.authorize(client)))["state"] == "st-1"


def test_redirect_uri_defects(make: Any) -> None:
    prefix = make("authz-redirect-prefix-match")
    client = prefix.register(redirect_uris=["https://c.example/cb"])
    resp = prefix.authorize(client, redirect_uri="https://c.example/cb/x")
    assert resp.headers["location"].startswith(prefix.idp_issuer)

    unregistered = make("authz-redirects-to-unregistered-uri")
    client = unregistered.register(redirect_uris=["https://c.example/cb"])
    resp = unregistered.authorize(client, redirect_uri="https://attacker.example/cb")
    assert resp.headers["location"].startswith("https://attacker.example/cb?error=")
    resp = unregistered.authorize({"client_id": "nope"}, redirect_uri="https://attacker.example/cb")
    assert resp.headers["location"].startswith("https://attacker.example/cb?error=")
    for variant in ["https://evil.c.example/cb", "https://c.example/cb/x"]:
        assert unregistered.authorize(client, redirect_uri=variant).status_code == 400

    strict = make("authz-loopback-port-strict")
    client = strict.register(redirect_uris=["http://127.0.0.1/callback"])
    assert (
        strict.authorize(client, redirect_uri="http://127.0.0.1:53117/callback").status_code == 400
    )
    assert strict.authorize(client, redirect_uri="http://127.0.0.1/callback").status_code == 302


def test_implicit_defect(make: Any) -> None:
    d = make("authz-implicit-enabled")
    client = d.register()
    got = fragment(d.follow(d.authorize(client, response_type="token")))
    assert got["token_type"] == "Bearer" and got["state"] == "st-1"
    assert d.verify(got["access_token"])["sub"] == "alice"


def test_request_validation_defects(make: Any) -> None:
    dup = make("authz-duplicate-params-accepted")
    client = dup.register()
    resp = dup.authorize(client, ("code_challenge", s256("w" * 43)))
    assert resp.headers["location"].startswith(dup.idp_issuer)

    loose = make("authz-resource-not-validated")
    client = loose.register()
    verifier = secrets.token_urlsafe(40)
    code = loose.code(client, verifier, resource="https://unknown.example")
    body = loose.redeem(client, code, verifier).json()
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == (
        "https://unknown.example"
    )

    optional = make("authz-pkce-optional")
    client = optional.register()
    code = optional.code(client, "", code_challenge=None, code_challenge_method=None)
    assert (
        optional.token({"grant_type": "authorization_code", "code": code}, client).status_code
        == 200
    )

    for defect, method in [
        ("authz-unknown-challenge-method", "S512"),
        ("authz-pkce-plain-accepted", "plain"),
    ]:
        d = make(defect)
        client = d.register()
        verifier = secrets.token_urlsafe(40)
        code = d.code(client, "", code_challenge=verifier, code_challenge_method=method)
        assert d.redeem(client, code, verifier).status_code == 200, defect
    plain = make("authz-pkce-plain-accepted")
    resp = plain.authorize(plain.register(), code_challenge_method="S512")
    assert query(resp.headers["location"])["error"] == "invalid_request"


def test_code_redemption_defects(make: Any) -> None:
    d = make("token-pkce-not-verified")
    client = d.register()
    code = d.code(client, "a" * 43)
    assert d.redeem(client, code, "b" * 43).status_code == 200

    d = make("token-code-reusable")
    client = d.register()
    code = d.code(client, "a" * 43)
    first = d.redeem(client, code, "a" * 43).json()
    assert d.redeem(client, code, "a" * 43).status_code == 200
    assert d.introspect(first["access_token"])["active"] is True

    d = make("token-code-reuse-keeps-tokens")
    client = d.register()
    code = d.code(client, "a" * 43)
    first = d.redeem(client, code, "a" * 43).json()
    assert d.redeem(client, code, "a" * 43).json()["error"] == "invalid_grant"
    assert d.introspect(first["access_token"])["active"] is True

    d = make("token-code-not-bound-to-client")
    client, other = d.register(), d.register()
    code = d.code(client, "a" * 43)
    assert d.redeem(other, code, "a" * 43).status_code == 200

    d = make("token-redirect-uri-not-checked")
    client = d.register(redirect_uris=["https://c.example/cb1", "https://c.example/cb2"])
    code = d.code(client, "a" * 43, redirect_uri="https://c.example/cb1")
    assert d.redeem(client, code, "a" * 43, redirect_uri="https://c.example/cb2").status_code == 200

    d = make("token-confidential-client-unauthenticated")
    client = d.register(token_endpoint_auth_method="client_secret_post")
    code = d.code(client, "a" * 43)
    resp = d.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": "a" * 43,
            "client_id": client["client_id"],
        },
    )
    assert resp.status_code == 200

    d = make("token-invalid-target-wrong-code")
    client = d.register()
    code = d.code(client, "a" * 43)
    assert d.redeem(client, code, "a" * 43, resource=RS2).json()["error"] == "invalid_request"


def test_token_response_defects(make: Any) -> None:
    d = make("token-password-grant-enabled")
    client = d.register(token_endpoint_auth_method="client_secret_basic")
    resp = d.token(
        {"grant_type": "password", "username": "bob", "password": "bob-password"},
        client,
        basic=True,
    )
    assert resp.status_code == 200 and d.verify(resp.json()["access_token"])["sub"] == "bob"

    d = make("token-audience-ignores-resource")
    claims = jwt.decode(
        d.tokens(d.register(), resource=RS2)["access_token"], options={"verify_signature": False}
    )
    assert claims["aud"] == MCP

    d = make("token-scope-escalation")
    body = d.tokens(d.register(), scope=f"{BASIC_SCOPE} mcp:everything")
    assert body["scope"] == f"{BASIC_SCOPE} mcp:everything"

    d = make("token-response-missing-token-type")
    assert "token_type" not in d.tokens(d.register())

    d = make("token-response-cacheable")
    client = d.register()
    code = d.code(client, "a" * 43)
    resp = d.redeem(client, code, "a" * 43)
    assert resp.status_code == 200 and "cache-control" not in resp.headers

    d = make("token-error-not-json")
    resp = d.token({"grant_type": "foo"}, d.register())
    assert resp.status_code == 500 and resp.headers["content-type"].startswith("text/plain")


def test_access_token_defects(make: Any) -> None:
    d = make("jwt-typ-plain-jwt")
    assert jwt.get_unverified_header(d.tokens(d.register())["access_token"])["typ"] == "JWT"
    d = make("jwt-missing-client-id")
    assert "client_id" not in d.verify(d.tokens(d.register())["access_token"])
    d = make("at-long-lived")
    body = d.tokens(d.register())
    claims = d.verify(body["access_token"])
    assert body["expires_in"] == 86400 and claims["exp"] - claims["iat"] == 86400
