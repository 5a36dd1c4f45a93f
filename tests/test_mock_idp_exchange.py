"""Tests of ID-JAG issuance by the mock IdP (RFC 8693 token exchange, IdP role of
draft-ietf-oauth-identity-assertion-authz-grant) and of its `idp-*` defect switches.

Each IdP runs as a real uvicorn server on an ephemeral loopback port; subject ID tokens come
from the real login flow, or are minted with the IdP's key for the invalid variants.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from starlette.testclient import TestClient

import mock_idp.app
from conformance.servers import ServerThread, bind_loopback, url_of
from mock_idp import IDP_DEFECTS, IdJagAudience, IdpClient, IdpSettings, create_app
from mock_idp.__main__ import main
from mock_idp.config import parse_config
from mock_idp.keys import SigningKey, generate_signing_key
from reference.defects import DEFECTS
from tests.conftest import standalone

TE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWTB = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AT = "urn:ietf:params:oauth:token-type:access_token"
IDT = "urn:ietf:params:oauth:token-type:id_token"
IDJAG = "urn:ietf:params:oauth:token-type:id-jag"

CLIENT_ID, CLIENT_SECRET = "reference-as", "reference-as-secret"
OTHER_ID, OTHER_SECRET = "other-app", "other-app-secret"
PUBLIC_ID = "public-app"
REDIRECT_URI = "http://127.0.0.1:41001/callback"
# Resource authorization servers: issuer strings only, nothing listens there.
WD = "http://127.0.0.1:41010"
WD_RESOURCE = f"{WD}/ccx/api"
SF = "http://127.0.0.1:41020"
SF_RESOURCE = f"{SF}/services/data"
RAS_CLIENT_ID = "mcp-deployment"  # reference-as's id at WD
AUDIENCES = (
    IdJagAudience(WD, (WD_RESOURCE,), ("workers:read", "workers:write")),
    IdJagAudience(SF, (SF_RESOURCE,), ("api",)),
)
CLIENTS = (
    IdpClient(CLIENT_ID, CLIENT_SECRET, (REDIRECT_URI,), ras_client_ids=((WD, RAS_CLIENT_ID),)),
    IdpClient(OTHER_ID, OTHER_SECRET, (REDIRECT_URI,)),
    IdpClient(PUBLIC_ID, None, (REDIRECT_URI,)),
)
_KEY = generate_signing_key()  # one RSA key for every IdP here: key generation is slow


# --- a running IdP ---


class Idp:
    """One mock IdP served on loopback, and an HTTP client for it."""

    def __init__(self, settings: IdpSettings, server: ServerThread | None = None) -> None:
        self.settings = settings
        self.url = settings.issuer
        self.server = server
        self.http = httpx.Client(
            base_url=self.url,
            follow_redirects=False,
            timeout=5,
            limits=httpx.Limits(max_keepalive_connections=0),  # avoids 40 ms delayed ACKs
        )
        self._id_tokens: dict[tuple[str, str], str] = {}

    def close(self) -> None:
        self.http.close()
        if self.server is not None:
            self.server.stop()

    def token(self, data: dict[str, str], auth: tuple[str, str] | None = None) -> httpx.Response:
        if auth is None:
            return self.http.post("/token", data=data)
        return self.http.post("/token", data=data, auth=auth)

    def id_token(self, client_id: str = CLIENT_ID, user: str = "alice") -> str:
        """An ID token from the real flow: /authorize, the login form, code redemption."""
        key = (client_id, user)
        if key not in self._id_tokens:
            self._id_tokens[key] = login_flow(self.http, client_id, user)
        return self._id_tokens[key]

    def mint(self, key: SigningKey = _KEY, **claims: Any) -> str:
        """An ID token signed like ours (by default with our key), claims overridable."""
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.url,
            "sub": "alice",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
        }
        base.update(claims)
        return key.sign({k: v for k, v in base.items() if v is not None})

    def exchange(
        self,
        subject: str | None = None,
        auth: tuple[str, str] | None = (CLIENT_ID, CLIENT_SECRET),
        **fields: str | None,
    ) -> httpx.Response:
        """The contract's Model 2 step 1 request; a field set to None is left out."""
        return self.exchange_fields(fields, subject, auth)

    def exchange_fields(
        self,
        fields: dict[str, str | None],
        subject: str | None = None,
        auth: tuple[str, str] | None = (CLIENT_ID, CLIENT_SECRET),
    ) -> httpx.Response:
        data: dict[str, str | None] = {
            "grant_type": TE,
            "requested_token_type": IDJAG,
            "subject_token": subject if subject is not None else self.id_token(),
            "subject_token_type": IDT,
            "audience": WD,
            "resource": WD_RESOURCE,
            "scope": "workers:read",
        }
        data.update(fields)
        return self.token({k: v for k, v in data.items() if v is not None}, auth)

    def id_jag(self, **fields: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(header, verified claims) of the ID-JAG a successful exchange returns."""
        response = self.exchange_fields(fields)
        assert response.status_code == 200, response.text
        return verify(self, response.json()["access_token"])


def verify(idp: Idp, token: str, audience: str | None = None) -> tuple[dict, dict]:
    """Check the signature against the key the IdP publishes at its discovered jwks_uri."""
    jwks_uri = idp.http.get("/.well-known/openid-configuration").json()["jwks_uri"]
    assert jwks_uri == f"{idp.url}/jwks"
    header = jwt.get_unverified_header(token)
    keys = jwt.PyJWKSet.from_dict(idp.http.get(jwks_uri).json())
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        issuer=idp.url,
        options={"verify_aud": audience is not None},
        audience=audience,
    )
    return header, claims


def login_flow(browser: httpx.Client, client_id: str, user: str) -> str:
    """Sign `user` in for `client_id` with a fresh cookie jar and redeem the code."""
    browser.cookies.clear()
    page = browser.get(
        "/authorize",
        params={
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": "openid",
        },
    )
    match = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert page.status_code == 200 and match, page.text
    done = browser.post(
        "/login",
        data={"request_id": match.group(1), "username": user, "password": f"{user}-password"},
    )
    browser.cookies.clear()
    assert done.status_code == 303, done.text
    code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
    secret = {CLIENT_ID: CLIENT_SECRET, OTHER_ID: OTHER_SECRET}[client_id]
    tokens = browser.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(client_id, secret),
    )
    assert tokens.status_code == 200, tokens.text
    return str(tokens.json()["id_token"])


def start_idp(*defects: str, **overrides: Any) -> Idp:
    sock = bind_loopback()
    options: dict[str, Any] = {"clients": CLIENTS, "audiences": AUDIENCES, "test_signer": True}
    options.update(overrides)
    settings = IdpSettings(issuer=url_of(sock), defects=frozenset(defects), **options)
    return Idp(settings, ServerThread(create_app(settings), sock, "mock-idp").start())


@pytest.fixture(scope="module", autouse=True)
def _one_signing_key() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mock_idp.app, "generate_signing_key", lambda: _KEY)
        yield


@pytest.fixture(scope="module")
def make(_one_signing_key: None) -> Iterator[Callable[..., Idp]]:
    """An IdP with these defects (and settings overrides), started once per module and
    shared by the tests asking for the same one; all are stopped together at the end."""
    started: dict[tuple[Any, ...], Idp] = {}

    def factory(*defects: str, **overrides: Any) -> Idp:
        key = (frozenset(defects), tuple(sorted(overrides.items())))
        if key not in started:
            started[key] = start_idp(*defects, **overrides)
        return started[key]

    yield factory
    stopping = [threading.Thread(target=server.close) for server in started.values()]
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join()


@pytest.fixture
def idp(make: Callable[..., Idp]) -> Idp:
    """The IdP without defects."""
    return make()


def assert_error(response: httpx.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"
    assert "access_token" not in response.json()


# --- the happy path ---


def test_exchange_issues_an_id_jag(idp: Idp) -> None:
    response = idp.exchange()
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in", "scope"}
    assert body["issued_token_type"] == IDJAG
    assert body["token_type"] == "N_A"
    assert body["expires_in"] == 300
    assert body["scope"] == "workers:read"

    header, claims = verify(idp, body["access_token"], audience=WD)
    assert header == {"alg": "RS256", "typ": "oauth-id-jag+jwt", "kid": _KEY.kid}
    subject = jwt.decode(idp.id_token(), options={"verify_signature": False})
    assert set(claims) == {
        "iss",
        "sub",
        "aud",
        "client_id",
        "jti",
        "iat",
        "exp",
        "resource",
        "scope",
        "auth_time",
    }
    assert claims["iss"] == idp.url
    assert claims["sub"] == "alice"
    assert claims["aud"] == WD
    assert claims["client_id"] == RAS_CLIENT_ID
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert abs(claims["iat"] - time.time()) < 30
    assert claims["exp"] == claims["iat"] + 300
    assert claims["resource"] == WD_RESOURCE
    assert claims["scope"] == "workers:read"
    assert claims["auth_time"] == subject["auth_time"]


def test_each_id_jag_has_a_fresh_jti(idp: Idp) -> None:
    first, second = idp.id_jag()[1], idp.id_jag()[1]
    assert first["jti"] != second["jti"]


def test_client_secret_post_and_other_user(idp: Idp) -> None:
    response = idp.exchange(
        subject=idp.id_token(user="bob"),
        auth=None,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    assert response.status_code == 200, response.text
    assert verify(idp, response.json()["access_token"])[1]["sub"] == "bob"


def test_scope_is_narrowed_to_policy(idp: Idp) -> None:
    response = idp.exchange(scope="workers:read workers:admin api")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "workers:read"
    assert verify(idp, response.json()["access_token"])[1]["scope"] == "workers:read"


def test_no_scope_or_resource_requested(idp: Idp) -> None:
    response = idp.exchange(scope=None, resource=None)
    assert response.status_code == 200, response.text
    assert "scope" not in response.json()
    claims = verify(idp, response.json()["access_token"])[1]
    assert "scope" not in claims and "resource" not in claims


def test_client_id_mapping(idp: Idp) -> None:
    # mapped for WD; no mapping for SF: the IdP-side id; another client: its own id
    assert idp.id_jag()[1]["client_id"] == RAS_CLIENT_ID
    sf = idp.id_jag(audience=SF, resource=SF_RESOURCE, scope="api")[1]
    assert sf["client_id"] == CLIENT_ID and sf["aud"] == SF
    other = idp.exchange(subject=idp.id_token(OTHER_ID), auth=(OTHER_ID, OTHER_SECRET))
    assert verify(idp, other.json()["access_token"])[1]["client_id"] == OTHER_ID


def test_metadata_advertises_id_jag_issuance(idp: Idp) -> None:
    doc = idp.http.get("/.well-known/openid-configuration").json()
    assert doc["identity_chaining_requested_token_types_supported"] == [IDJAG]
    assert doc["grant_types_supported"] == ["authorization_code", TE]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]


# --- rejections ---


def test_client_must_authenticate_with_a_secret(idp: Idp) -> None:
    assert_error(idp.exchange(auth=None), "invalid_client", 401)
    assert_error(idp.exchange(auth=None, client_id=CLIENT_ID), "invalid_client", 401)
    assert_error(idp.exchange(auth=(CLIENT_ID, "wrong")), "invalid_client", 401)
    public = idp.exchange(auth=None, client_id=PUBLIC_ID, subject=idp.mint(aud=PUBLIC_ID))
    assert_error(public, "invalid_client", 401)


@pytest.mark.parametrize(
    "fields",
    [
        {"requested_token_type": None},
        {"requested_token_type": AT},
        {"subject_token": ""},  # an empty parameter counts as omitted
        {"subject_token_type": None},
        {"subject_token_type": AT},
        {"audience": None},
    ],
    ids=["rtt-missing", "rtt-access-token", "subject-missing", "stt-missing", "stt-at", "aud"],
)
def test_malformed_requests_are_invalid_request(idp: Idp, fields: dict[str, str | None]) -> None:
    assert_error(idp.exchange_fields(fields), "invalid_request")


def test_repeated_resource_is_invalid_request(idp: Idp) -> None:
    data = [
        ("grant_type", TE),
        ("requested_token_type", IDJAG),
        ("subject_token", idp.id_token()),
        ("subject_token_type", IDT),
        ("audience", WD),
        ("resource", WD_RESOURCE),
        ("resource", WD_RESOURCE),
    ]
    response = idp.http.post(
        "/token",
        content=urlencode(data),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert_error(response, "invalid_request")


def test_subject_must_be_a_valid_id_token_from_this_idp(idp: Idp) -> None:
    now = int(time.time())
    head, payload, signature = idp.id_token().split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    bad = {
        "expired": idp.mint(iat=now - 600, exp=now - 300),
        "forged": idp.mint(key=generate_signing_key()),
        "tampered": f"{head}.{payload}.{flipped}",
        "other-issuer": idp.mint(iss="http://127.0.0.1:9"),
        "no-exp": idp.mint(exp=None),
        "not-a-jwt": "not-a-jwt",
        "an-id-jag": idp.exchange().json()["access_token"],
    }
    for name, token in bad.items():
        response = idp.exchange(subject=token)
        assert response.status_code == 400, name
        assert_error(response, "invalid_grant")
    assert idp.exchange(subject=idp.mint()).status_code == 200  # the minting itself is fine


def test_subject_must_be_issued_to_the_requesting_client(idp: Idp) -> None:
    assert_error(idp.exchange(subject=idp.id_token(OTHER_ID)), "invalid_grant")
    assert_error(idp.exchange(subject=idp.mint(aud=[OTHER_ID, "x"])), "invalid_grant")
    assert idp.exchange(subject=idp.mint(aud=[OTHER_ID, CLIENT_ID])).status_code == 200


def test_unknown_audience_and_unpaired_resource_are_invalid_target(idp: Idp) -> None:
    assert_error(idp.exchange(audience="http://127.0.0.1:9"), "invalid_target")
    assert_error(idp.exchange(audience=WD, resource=SF_RESOURCE), "invalid_target")
    assert_error(idp.exchange(audience=SF, resource=WD_RESOURCE, scope="api"), "invalid_target")


def test_no_allowed_scope_is_invalid_scope(idp: Idp) -> None:
    assert_error(idp.exchange(scope="api workers:admin"), "invalid_scope")


def test_idp_never_redeems_its_own_id_jag(idp: Idp) -> None:
    id_jag = idp.exchange().json()["access_token"]
    response = idp.token({"grant_type": JWTB, "assertion": id_jag}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert_error(response, "unsupported_grant_type")
    assert (
        JWTB
        not in idp.http.get("/.well-known/openid-configuration").json()["grant_types_supported"]
    )


def test_settings_validate() -> None:
    with pytest.raises(ValueError):
        IdpSettings(issuer=WD, audiences=(IdJagAudience(SF), IdJagAudience(SF)))
    with pytest.raises(ValueError):
        IdpSettings(issuer=WD, id_jag_lifetime=0)
    with pytest.raises(ValueError):
        IdpClient("c", "s", (), ras_client_ids=((WD, "a"), (WD, "b")))
    lenient = IdpSettings(issuer=WD, defects={"idp-self-redeem"})  # type: ignore[arg-type]
    assert lenient.defects == frozenset({"idp-self-redeem"})
    assert IdpClient("c", "s", ()).ras_client_id(WD) == "c"


# --- the test signer ---


def test_test_signer(idp: Idp) -> None:
    claims = {"iss": idp.url, "sub": "alice", "aud": "elsewhere", "exp": 1, "custom": [1]}
    response = idp.http.post("/_test/sign", json={"claims": claims})
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": _KEY.kid}
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(idp, token)
    public_key = _KEY.private_key.public_key()
    unchecked = jwt.decode(
        token, public_key, ["RS256"], options={"verify_exp": False, "verify_aud": False}
    )
    assert unchecked == claims

    header = {"typ": "oauth-id-jag+jwt", "kid": None, "x-extra": "1"}
    typed = idp.http.post("/_test/sign", json={"claims": claims, "header": header})
    assert jwt.get_unverified_header(typed.json()["token"]) == {
        "alg": "RS256",
        "typ": "oauth-id-jag+jwt",
        "x-extra": "1",
    }
    untyped = idp.http.post("/_test/sign", json={"claims": claims, "header": {"typ": None}})
    assert "typ" not in jwt.get_unverified_header(untyped.json()["token"])
    same_alg = idp.http.post("/_test/sign", json={"claims": {}, "header": {"alg": "RS256"}})
    assert same_alg.status_code == 200

    bad: list[dict[str, Any]] = [{"claims": {}, "header": {"alg": "HS256"}}, {"claims": []}, {}]
    for body in bad:
        assert idp.http.post("/_test/sign", json=body).status_code == 400
    assert idp.http.post("/_test/sign", content=b"{not json").status_code == 400


def test_test_signer_absent_when_disabled(make: Callable[..., Idp]) -> None:
    off = make(test_signer=False)
    assert off.http.post("/_test/sign", json={"claims": {}}).status_code in (404, 405)


def test_test_signer_refuses_non_loopback_callers() -> None:
    settings = IdpSettings(issuer=WD, test_signer=True)
    with TestClient(create_app(settings), base_url=WD) as client:  # caller host "testclient"
        assert client.post("/_test/sign", json={"claims": {}}).status_code == 403


# --- defect switches: each changes exactly what it says ---


def _happy(idp: Idp) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(response body, ID-JAG header, ID-JAG claims) of the standard exchange, with the
    per-token values (token, jti, times) taken out."""
    body = idp.exchange().json()
    header, claims = verify(idp, body.pop("access_token"))
    claims.pop("jti")
    lifetime = claims.pop("exp") - claims.pop("iat")
    claims.pop("auth_time")
    claims["lifetime"] = lifetime
    return body, header, claims


def test_defect_names_match_the_catalogue() -> None:
    assert {name for name in DEFECTS if name.startswith("idp-")} == IDP_DEFECTS


@pytest.mark.parametrize(
    ("defect", "changes"),
    [
        ("idp-wrong-issued-token-type", {"token_type": "Bearer", "issued_token_type": AT}),
        ("idp-idjag-typ-jwt", {"typ": "JWT"}),
        ("idp-idjag-client-id-unmapped", {"client_id": CLIENT_ID}),
        ("idp-resource-dropped", {"resource": None}),
        ("idp-idjag-long-lived", {"lifetime": 86400, "expires_in": 86400}),
        ("idp-metadata-silent", {}),
        ("idp-subject-not-validated", {}),
        ("idp-subject-audience-unchecked", {}),
        ("idp-audience-not-required", {}),
        ("idp-scope-not-narrowed", {}),
        ("idp-exchange-without-client-auth", {}),
        ("idp-self-redeem", {}),
    ],
)
def test_defect_changes_only_its_part_of_the_standard_exchange(
    idp: Idp, make: Callable[..., Idp], defect: str, changes: dict[str, Any]
) -> None:
    clean_body, clean_header, clean_claims = _happy(idp)
    body, header, claims = _happy(make(defect))
    clean_claims["iss"] = claims["iss"]  # another server, another issuer
    merged = {**clean_body, **clean_header, **clean_claims}
    for name, value in changes.items():
        if value is None:
            merged.pop(name)
        else:
            merged[name] = value
    assert {**body, **header, **claims} == merged


def test_defect_metadata_silent(make: Callable[..., Idp]) -> None:
    silent = make("idp-metadata-silent")
    doc = silent.http.get("/.well-known/openid-configuration").json()
    assert "identity_chaining_requested_token_types_supported" not in doc
    assert doc["grant_types_supported"] == ["authorization_code"]
    assert silent.exchange().status_code == 200


def test_defect_subject_not_validated(make: Callable[..., Idp]) -> None:
    lax = make("idp-subject-not-validated")
    now = int(time.time())
    for token in (
        lax.mint(iat=now - 600, exp=now - 300),
        lax.mint(key=generate_signing_key()),
        lax.mint(iss="http://127.0.0.1:9"),
    ):
        assert lax.exchange(subject=token).status_code == 200
    assert_error(lax.exchange(subject=lax.mint(aud=OTHER_ID)), "invalid_grant")
    assert_error(lax.exchange(subject="not-a-jwt"), "invalid_grant")


def test_defect_subject_audience_unchecked(make: Callable[..., Idp]) -> None:
    lax = make("idp-subject-audience-unchecked")
    response = lax.exchange(subject=lax.id_token(OTHER_ID))
    assert response.status_code == 200, response.text
    assert verify(lax, response.json()["access_token"])[1]["client_id"] == RAS_CLIENT_ID
    now = int(time.time())
    assert_error(lax.exchange(subject=lax.mint(iat=now - 600, exp=now - 300)), "invalid_grant")
    assert_error(lax.exchange(subject=lax.mint(key=generate_signing_key())), "invalid_grant")


def test_defect_audience_not_required(make: Callable[..., Idp]) -> None:
    lax = make("idp-audience-not-required")
    assert lax.id_jag(audience=None)[1]["aud"] == WD
    unknown = "http://127.0.0.1:9/as"
    claims = lax.id_jag(audience=unknown, resource="http://127.0.0.1:9/api", scope="anything")[1]
    assert claims["aud"] == unknown and claims["resource"] == "http://127.0.0.1:9/api"
    assert lax.id_jag(audience=WD, resource=SF_RESOURCE)[1]["resource"] == SF_RESOURCE
    # scope policy of a known audience still applies
    assert_error(lax.exchange(scope="api"), "invalid_scope")


def test_defect_scope_not_narrowed(make: Callable[..., Idp]) -> None:
    lax = make("idp-scope-not-narrowed")
    response = lax.exchange(scope="workers:read workers:admin api")
    assert response.json()["scope"] == "workers:read workers:admin api"
    claims = verify(lax, response.json()["access_token"])[1]
    assert claims["scope"] == "workers:read workers:admin api"
    assert_error(lax.exchange(audience="http://127.0.0.1:9"), "invalid_target")


def test_defect_exchange_without_client_auth(make: Callable[..., Idp]) -> None:
    lax = make("idp-exchange-without-client-auth")
    response = lax.exchange(auth=None, client_id=CLIENT_ID)
    assert response.status_code == 200, response.text
    assert verify(lax, response.json()["access_token"])[1]["client_id"] == RAS_CLIENT_ID
    assert_error(lax.exchange(auth=None), "invalid_client", 401)
    assert_error(lax.exchange(auth=(CLIENT_ID, "wrong")), "invalid_client", 401)
    code_grant = lax.token({"grant_type": "authorization_code", "client_id": CLIENT_ID})
    assert_error(code_grant, "invalid_client", 401)


def test_defect_self_redeem(make: Callable[..., Idp]) -> None:
    lax = make("idp-self-redeem")
    id_jag = lax.exchange().json()["access_token"]
    response = lax.token({"grant_type": JWTB, "assertion": id_jag}, auth=(OTHER_ID, OTHER_SECRET))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "workers:read"
    assert body["access_token"].count(".") == 0  # opaque
    info = lax.http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200 and info.json()["sub"] == "alice"
    auth = (CLIENT_ID, CLIENT_SECRET)
    id_token = {"grant_type": JWTB, "assertion": lax.id_token()}
    assert_error(lax.token(id_token, auth), "invalid_grant")
    assert_error(lax.token({"grant_type": JWTB}, auth), "invalid_request")
    doc = lax.http.get("/.well-known/openid-configuration").json()
    assert JWTB not in doc["grant_types_supported"]


# --- standalone: --config ---


CONFIG = """
id_jag_lifetime = 120
defects = ["idp-idjag-typ-jwt", "not-a-defect"]

[[clients]]
client_id = "reference-as"
client_secret = "reference-as-secret"
redirect_uris = ["{redirect}"]
[clients.ras_client_ids]
"{wd}" = "mcp-deployment"

[[audiences]]
issuer = "{wd}"
resources = ["{wd_resource}"]
scopes = ["workers:read"]
"""


def test_standalone_with_config(tmp_path: Path) -> None:
    config = tmp_path / "idp.toml"
    config.write_text(CONFIG.format(redirect=REDIRECT_URI, wd=WD, wd_resource=WD_RESOURCE))
    args = ["--port", "0", "--config", str(config), "--test-signer"]
    args += ["--client", f"{OTHER_ID}:{OTHER_SECRET}:{REDIRECT_URI}"]
    with standalone("mock_idp", *args) as ready:
        issuer = ready.split("issuer=", 1)[1]
        remote = Idp(IdpSettings(issuer=issuer))
        try:
            header, claims = remote.id_jag()
            assert header["typ"] == "JWT"  # the defect from the file
            assert claims["client_id"] == RAS_CLIENT_ID
            assert claims["exp"] - claims["iat"] == 120
            assert remote.id_token(OTHER_ID)  # the --client client is registered too
            signed = remote.http.post("/_test/sign", json={"claims": {"sub": "x"}})
            assert signed.status_code == 200
        finally:
            remote.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id_jag_lifetime = [", "invalid TOML"),
        ("colour = 'blue'", "unknown key(s): colour"),
        ("[[clients]]\nclient_id = 'a'\nredirect_uris = 'x'", "redirect_uris must be an array"),
        ("[[audiences]]\nresources = []", "issuer is required"),
        ("test_signer = 'yes'", "test_signer must be true or false"),
        ("id_jag_lifetime = 0", "lifetimes must be positive"),
        ("[[clients]]\nclient_id = 'other-app'\nclient_secret = 's'", "both in --config and"),
    ],
)
def test_config_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    config = tmp_path / "idp.toml"
    config.write_text(text)
    argv = ["--port", "0", "--config", str(config), "--client", f"{OTHER_ID}:s:{REDIRECT_URI}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_parse_config_defaults_and_public_clients() -> None:
    config = parse_config(
        {
            "users": [{"username": "carol", "password": "pw"}],
            "clients": [{"client_id": "spa", "redirect_uris": [REDIRECT_URI]}],
            "audiences": [{"issuer": WD}],
        }
    )
    assert config.users is not None and config.users[0].email == "carol@example.com"
    assert config.users[0].name == "carol"
    assert config.clients == (IdpClient("spa", None, (REDIRECT_URI,)),)
    assert config.audiences == (IdJagAudience(WD, (), ()),)
    assert config.issuer is None and config.id_jag_lifetime is None
    assert not config.test_signer and config.defects == frozenset()
