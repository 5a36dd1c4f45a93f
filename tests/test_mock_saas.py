"""Tests of the mock downstream SaaS services (`mock_saas`): real servers on loopback.

A test IdP (ID-JAG issuer) and a test AS (access-token issuer) are tiny Starlette apps that
publish a JWK Set; the mock Salesforce trusts the AS, the mock Workday redeems the IdP's
ID-JAGs at its own AS. Servers are module-scoped; each test reads records after a cursor.
"""

from __future__ import annotations

import base64
import functools
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance.oauth.dpop import DPoPKey
from conformance.servers import ServerThread, bind_loopback, url_of
from mock_idp.keys import SigningKey, generate_signing_key, jwks
from mock_saas import (
    CANARY,
    SaasClient,
    SaasSettings,
    TrustedIssuer,
    api_url_of,
    create_app,
    jwks_uri_of,
    resource_of,
    service_kind,
    token_endpoint_of,
)
from mock_saas.__main__ import build_settings, main, parse_args
from tests.conftest import REPO_ROOT, standalone

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"
ID_JAG_TYP = "oauth-id-jag+jwt"
CLIENT = ("mcp-deployment", "mcp-deployment-secret")
OTHER_CLIENT = ("other-agent", "other-agent-secret")
SERVICE_KEY = "salesforce-integration-key-0001"


# --- test issuers: an IdP (OIDC discovery only) and an AS (RFC 8414 metadata) ---


@dataclass
class Issuer:
    """A signer whose JWK Set (the current `keys`) is served at `{url}/jwks`."""

    url: str
    keys: list[SigningKey] = field(default_factory=lambda: [generate_signing_key()])

    def sign(self, claims: dict[str, Any], typ: str, key: SigningKey | None = None) -> str:
        return (key or self.keys[0]).sign(claims, typ=typ)


def issuer_app(issuer: Issuer, well_known: str) -> Starlette:
    async def metadata(request: Request) -> Response:
        return JSONResponse({"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"})

    async def key_set(request: Request) -> Response:
        return JSONResponse(jwks(*issuer.keys))

    return Starlette(
        routes=[Route(f"/.well-known/{well_known}", metadata), Route("/jwks", key_set)]
    )


@dataclass
class Service:
    settings: SaasSettings
    server: ServerThread

    @property
    def url(self) -> str:
        return self.settings.base_url


def _serve_issuer(well_known: str) -> Iterator[Issuer]:
    sock = bind_loopback()
    issuer = Issuer(url_of(sock))
    server = ServerThread(issuer_app(issuer, well_known), sock, well_known).start()
    yield issuer
    server.stop()


@pytest.fixture(scope="module")
def idp() -> Iterator[Issuer]:
    yield from _serve_issuer("openid-configuration")


@pytest.fixture(scope="module")
def trusted_as() -> Iterator[Issuer]:
    yield from _serve_issuer("oauth-authorization-server")


def _serve_service(kind: str, **settings: Any) -> Iterator[Service]:
    sock = bind_loopback()
    config = SaasSettings(kind=kind, base_url=url_of(sock), **settings)  # type: ignore[arg-type]
    server = ServerThread(create_app(config), sock, f"mock-{kind}").start()
    yield Service(config, server)
    server.stop()


@pytest.fixture(scope="module")
def salesforce(trusted_as: Issuer) -> Iterator[Service]:
    """Trusts the test AS (jwks_uri discovered from its RFC 8414 metadata)."""
    yield from _serve_service(
        "salesforce",
        trusted_issuers=(TrustedIssuer(trusted_as.url),),
        service_keys=(SERVICE_KEY,),
    )


@pytest.fixture(scope="module")
def workday(idp: Issuer) -> Iterator[Service]:
    """Redeems the test IdP's ID-JAGs (jwks_uri discovered from OIDC discovery)."""
    yield from _serve_service(
        "workday",
        idp=TrustedIssuer(idp.url),
        clients=(SaasClient(*CLIENT), SaasClient(*OTHER_CLIENT)),
    )


@pytest.fixture(scope="module")
def workday_dpop(idp: Issuer) -> Iterator[Service]:
    """Workday requiring DPoP (RFC 9449): its AS binds tokens, its API wants proofs."""
    yield from _serve_service(
        "workday", idp=TrustedIssuer(idp.url), clients=(SaasClient(*CLIENT),), require_dpop=True
    )


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    # Without keep-alive: a reused loopback connection to uvicorn costs ~40 ms a request
    # here (delayed ACK), a fresh one ~2 ms.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(timeout=5, trust_env=False, limits=limits) as client:
        yield client


# --- helpers ---


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@functools.cache
def _stranger() -> SigningKey:
    return generate_signing_key()


def impostor(issuer: Issuer) -> SigningKey:
    """A key that claims the issuer's `kid` but is not the issuer's key."""
    return SigningKey(issuer.keys[0].kid, _stranger().private_key)


def id_jag_claims(idp: Issuer, service: Service, **overrides: Any) -> dict[str, Any]:
    """A valid ID-JAG's claims; an override of None drops the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": idp.url,
        "sub": "alice",
        "aud": service.settings.issuer,
        "client_id": CLIENT[0],
        "jti": secrets.token_urlsafe(12),
        "iat": now,
        "exp": now + 300,
        "resource": service.settings.resource,
        "scope": "workers:read",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def id_jag(idp: Issuer, service: Service, **overrides: Any) -> str:
    return idp.sign(id_jag_claims(idp, service, **overrides), typ=ID_JAG_TYP)


def redeem(
    http: httpx.Client,
    service: Service,
    assertion: str | None,
    client: tuple[str, str] | None = CLIENT,
    dpop: str | None = None,
    **extra: str,
) -> httpx.Response:
    form = {"grant_type": JWT_BEARER, **extra}
    if assertion is not None:
        form["assertion"] = assertion
    headers = basic(*client) if client else {}
    if dpop is not None:
        headers["DPoP"] = dpop
    return http.post(service.settings.token_endpoint, data=form, headers=headers)


def access_token(issuer: Issuer, service: Service, **overrides: Any) -> str:
    """A valid access token of `issuer` for `service`; an override of None drops the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer.url,
        "sub": "alice",
        "aud": service.settings.resource,
        "client_id": "reference-mcp",
        "scope": service.settings.read_scope,
        "jti": secrets.token_urlsafe(12),
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return issuer.sign({k: v for k, v in claims.items() if v is not None}, typ="at+jwt")


def call_api(
    http: httpx.Client, service: Service, token: str | None, scheme: str = "Bearer", **headers: str
) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    return http.get(service.settings.api_url, headers=headers)


def cursor(http: httpx.Client, service: Service) -> int:
    body = http.get(f"{service.url}/_records", params={"limit": 0}).json()
    assert body["records"] == []
    return int(body["last"])


def records_since(http: httpx.Client, service: Service, since: int) -> list[dict[str, Any]]:
    response = http.get(f"{service.url}/_records", params={"since": since})
    assert response.status_code == 200
    return list(response.json()["records"])


def only_record(http: httpx.Client, service: Service, since: int) -> dict[str, Any]:
    records = records_since(http, service, since)
    assert len(records) == 1, records
    return records[0]


def owners(response: httpx.Response) -> set[str]:
    body = response.json()
    if "records" in body:
        return {r["OwnerId"] for r in body["records"]}
    return {w["owner"] for w in body.get("data", [body])}


# --- settings ---


def test_urls_are_the_contracts() -> None:
    base = "http://127.0.0.1:5000"
    assert resource_of("salesforce", base) == f"{base}/services/data"
    assert api_url_of("salesforce", base) == f"{base}/services/data/v60.0/sobjects/Opportunity"
    assert token_endpoint_of("salesforce", base) == f"{base}/services/oauth2/token"
    assert jwks_uri_of("salesforce", base) == f"{base}/services/oauth2/keys"
    assert service_kind("salesforce").read_scope == "api"
    assert service_kind("salesforce").all_scopes == ("api", "full", "web")
    workday = SaasSettings(kind="workday", base_url=base)
    assert workday.resource == f"{base}/ccx/api"
    assert workday.api_url == f"{base}/ccx/api/staffing/v6/acme/workers/me"
    assert workday.token_endpoint == f"{base}/ccx/oauth2/token"
    assert workday.jwks_uri == f"{base}/ccx/oauth2/keys"
    assert workday.read_scope == "workers:read"
    assert workday.all_scopes == ("workers:read", "workers:write")


@pytest.mark.parametrize("base_url", ["http://x/", "http://x/path", "ftp://x", "http://x?q"])
def test_settings_require_an_origin(base_url: str) -> None:
    with pytest.raises(ValueError):
        SaasSettings(kind="salesforce", base_url=base_url)


def test_settings_reject_unknown_kind() -> None:
    with pytest.raises(ValueError):
        SaasSettings(kind="sap", base_url="http://x")  # type: ignore[arg-type]


# --- the service AS: metadata, keys, jwt-bearer grant ---


def test_metadata(http: httpx.Client, workday: Service) -> None:
    """RFC 8414 section 2 metadata naming the jwt-bearer grant and the ID-JAG profile."""
    doc = http.get(f"{workday.url}/.well-known/oauth-authorization-server").json()
    assert doc["issuer"] == workday.url
    assert doc["token_endpoint"] == workday.settings.token_endpoint
    assert doc["jwks_uri"] == workday.settings.jwks_uri
    assert doc["grant_types_supported"] == [JWT_BEARER]
    assert doc["authorization_grant_profiles_supported"] == [ID_JAG_PROFILE]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]


def test_jwks_has_public_members_only(http: httpx.Client, salesforce: Service) -> None:
    (key,) = http.get(salesforce.settings.jwks_uri).json()["keys"]
    assert key["kty"] == "RSA" and key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_jwt_bearer_issues_an_access_token(
    http: httpx.Client, idp: Issuer, workday: Service
) -> None:
    """RFC 7523 / ID-JAG: a valid ID-JAG is redeemed for an RS256 at+jwt for the resource."""
    response = redeem(http, workday, id_jag(idp, workday))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "workers:read"
    assert body["expires_in"] == workday.settings.token_lifetime
    assert "refresh_token" not in body
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    key = jwt.PyJWKClient(workday.settings.jwks_uri).get_signing_key(header["kid"])
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=workday.settings.resource)
    assert claims["iss"] == workday.url
    assert claims["sub"] == "alice"
    assert claims["client_id"] == CLIENT[0]
    assert claims["scope"] == "workers:read"
    assert claims["exp"] - claims["iat"] == workday.settings.token_lifetime
    assert claims["jti"]
    # The issued token opens the API.
    api = call_api(http, workday, token)
    assert api.status_code == 200, api.text
    assert api.json()["owner"] == "alice"


def test_jwt_bearer_accepts_client_secret_post(
    http: httpx.Client, idp: Issuer, workday: Service
) -> None:
    form = {
        "grant_type": JWT_BEARER,
        "assertion": id_jag(idp, workday),
        "client_id": CLIENT[0],
        "client_secret": CLIENT[1],
    }
    response = http.post(workday.settings.token_endpoint, data=form)
    assert response.status_code == 200, response.text


def test_jwt_bearer_intersects_scopes(http: httpx.Client, idp: Issuer, workday: Service) -> None:
    """Granted = ID-JAG scopes ∩ requested scopes."""
    assertion = id_jag(idp, workday, scope="workers:read workers:write")
    response = redeem(http, workday, assertion, scope="workers:write openid")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "workers:write"


def _unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, "", algorithm="none", headers={"typ": ID_JAG_TYP})


# Each case changes exactly one thing of a valid ID-JAG redemption.
ID_JAG_REJECTIONS: dict[str, Any] = {
    "typ JWT": lambda idp, wd: idp.sign(id_jag_claims(idp, wd), typ="JWT"),
    "alg none": lambda idp, wd: _unsigned(id_jag_claims(idp, wd)),
    "alg HS256": lambda idp, wd: jwt.encode(
        id_jag_claims(idp, wd),
        "a-shared-secret-long-enough-for-hs256!",
        algorithm="HS256",
        headers={"typ": ID_JAG_TYP, "kid": idp.keys[0].kid},
    ),
    "untrusted issuer": lambda idp, wd: id_jag(idp, wd, iss="http://127.0.0.1:9/other-idp"),
    "bad signature": lambda idp, wd: idp.sign(
        id_jag_claims(idp, wd),
        typ=ID_JAG_TYP,
        key=impostor(idp),
    ),
    "aud another AS": lambda idp, wd: id_jag(idp, wd, aud="http://127.0.0.1:9"),
    "aud with two values": lambda idp, wd: id_jag(idp, wd, aud=[wd.url, "http://127.0.0.1:9"]),
    "client_id of another client": lambda idp, wd: id_jag(idp, wd, client_id=OTHER_CLIENT[0]),
    "expired": lambda idp, wd: id_jag(idp, wd, exp=int(time.time()) - 10),
    "no exp": lambda idp, wd: id_jag(idp, wd, exp=None),
    "iat in the future": lambda idp, wd: id_jag(idp, wd, iat=int(time.time()) + 600),
    "nbf in the future": lambda idp, wd: id_jag(idp, wd, nbf=int(time.time()) + 600),
    "no sub": lambda idp, wd: id_jag(idp, wd, sub=None),
    "no jti": lambda idp, wd: id_jag(idp, wd, jti=None),
    "resource of another service": lambda idp, wd: id_jag(idp, wd, resource="http://x/api"),
    "unknown scope": lambda idp, wd: id_jag(idp, wd, scope="workers:read payroll:admin"),
    "not a JWT": lambda idp, wd: "not-a-jwt",
}


# What the error_description must name, per case: proof the intended check fired.
ID_JAG_REASONS = {
    "typ JWT": "typ",
    "alg none": "alg 'none'",
    "alg HS256": "alg 'HS256'",
    "untrusted issuer": "not trusted",
    "bad signature": "signature",
    "aud another AS": "not addressed to this AS",
    "aud with two values": "not addressed to this AS",
    "client_id of another client": "another client",
    "expired": "expired",
    "no exp": "no exp",
    "iat in the future": "iat is in the future",
    "nbf in the future": "nbf is in the future",
    "no sub": "no sub",
    "no jti": "no jti",
    "resource of another service": "resource",
    "unknown scope": "unknown scope",
    "not a JWT": "not a JWT",
}


@pytest.mark.parametrize("case", list(ID_JAG_REJECTIONS))
def test_jwt_bearer_rejects_bad_assertion(
    http: httpx.Client, idp: Issuer, workday: Service, case: str
) -> None:
    response = redeem(http, workday, ID_JAG_REJECTIONS[case](idp, workday))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_grant"
    assert ID_JAG_REASONS[case] in body["error_description"]
    assert "access_token" not in body


def test_jwt_bearer_rejects_replayed_jti(http: httpx.Client, idp: Issuer, workday: Service) -> None:
    assertion = id_jag(idp, workday)
    assert redeem(http, workday, assertion).status_code == 200
    replay = redeem(http, workday, assertion)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert "jti" in replay.json()["error_description"]


def test_jwt_bearer_empty_scope_intersection_is_invalid_scope(
    http: httpx.Client, idp: Issuer, workday: Service
) -> None:
    response = redeem(http, workday, id_jag(idp, workday), scope="workers:write")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("client", "error", "status"),
    [
        (None, "invalid_client", 401),
        ((CLIENT[0], "wrong-secret"), "invalid_client", 401),
        (("unknown-client", "secret"), "invalid_client", 401),
    ],
)
def test_jwt_bearer_requires_client_authentication(
    http: httpx.Client,
    idp: Issuer,
    workday: Service,
    client: tuple[str, str] | None,
    error: str,
    status: int,
) -> None:
    response = redeem(http, workday, id_jag(idp, workday), client=client)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_jwt_bearer_requires_assertion(http: httpx.Client, workday: Service) -> None:
    response = redeem(http, workday, None)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_other_grants_are_unsupported(http: httpx.Client, workday: Service) -> None:
    response = http.post(
        workday.settings.token_endpoint,
        data={"grant_type": "client_credentials"},
        headers=basic(*CLIENT),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_idp_key_rotation_is_picked_up(http: httpx.Client, idp: Issuer, workday: Service) -> None:
    """An unknown `kid` makes the service fetch the IdP's JWK Set once more."""
    assert redeem(http, workday, id_jag(idp, workday)).status_code == 200  # keys cached
    new_key = generate_signing_key()
    idp.keys.append(new_key)
    try:
        assertion = idp.sign(id_jag_claims(idp, workday), typ=ID_JAG_TYP, key=new_key)
        assert redeem(http, workday, assertion).status_code == 200
    finally:
        idp.keys.remove(new_key)


# --- the API ---


def test_api_accepts_token_of_trusted_as(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service
) -> None:
    response = call_api(http, salesforce, access_token(trusted_as, salesforce))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["done"] is True
    assert body["totalSize"] == len(body["records"]) >= 2
    for record in body["records"]:
        assert record["attributes"]["type"] == "Opportunity"
        assert record["attributes"]["url"].endswith(record["Id"])
        assert record["Id"].startswith("006") and len(record["Id"]) == 18
        assert record["OwnerId"] == "alice"
        assert {"Name", "StageName", "Amount"} <= set(record)


def test_api_accepts_audience_array_containing_resource(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service
) -> None:
    token = access_token(trusted_as, salesforce, aud=[salesforce.settings.resource, "urn:x"])
    assert call_api(http, salesforce, token).status_code == 200


API_REJECTIONS: dict[str, Any] = {
    "wrong aud": lambda iss, sf: access_token(iss, sf, aud="http://127.0.0.1:9/mcp"),
    "no aud": lambda iss, sf: access_token(iss, sf, aud=None),
    "expired": lambda iss, sf: access_token(iss, sf, exp=int(time.time()) - 5),
    "untrusted issuer": lambda iss, sf: access_token(iss, sf, iss="http://127.0.0.1:9"),
    "bad signature": lambda iss, sf: iss.sign(
        jwt.decode(access_token(iss, sf), options={"verify_signature": False}),
        typ="at+jwt",
        key=impostor(iss),
    ),
    "opaque": lambda iss, sf: "opaque-token-value",
    "unknown static key": lambda iss, sf: "salesforce-integration-key-0002",
}


API_REASONS = {
    "wrong aud": "audience",
    "no aud": "no aud",
    "expired": "expired",
    "untrusted issuer": "not trusted",
    "bad signature": "signature",
    "opaque": "neither a JWT nor a known API key",
    "unknown static key": "neither a JWT nor a known API key",
}


@pytest.mark.parametrize("case", list(API_REJECTIONS))
def test_api_rejects_bad_token_with_401(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service, case: str
) -> None:
    response = call_api(http, salesforce, API_REJECTIONS[case](trusted_as, salesforce))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["error"] == "invalid_token"
    assert API_REASONS[case] in response.json()["error_description"]


def test_api_without_token_is_401(http: httpx.Client, salesforce: Service) -> None:
    response = call_api(http, salesforce, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_api_requires_read_scope(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service
) -> None:
    response = call_api(http, salesforce, access_token(trusted_as, salesforce, scope="web"))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_api_rejects_token_of_trusted_as_at_service_that_does_not_trust_it(
    http: httpx.Client, trusted_as: Issuer, workday: Service
) -> None:
    token = access_token(trusted_as, workday)
    assert call_api(http, workday, token).status_code == 401


def test_data_is_per_user_and_deterministic(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service
) -> None:
    def ids(sub: str) -> set[str]:
        response = call_api(http, salesforce, access_token(trusted_as, salesforce, sub=sub))
        assert owners(response) == {sub}
        return {r["Id"] for r in response.json()["records"]}

    alice, bob = ids("alice"), ids("bob")
    assert alice and bob and not alice & bob
    assert ids("alice") == alice
    assert ids("vendor-test-user@example.com")  # any sub has data


def test_workday_worker_is_the_users(http: httpx.Client, idp: Issuer, workday: Service) -> None:
    def worker(sub: str) -> dict[str, Any]:
        token = redeem(http, workday, id_jag(idp, workday, sub=sub)).json()["access_token"]
        response = call_api(http, workday, token)
        assert response.status_code == 200, response.text
        return dict(response.json())

    alice, bob = worker("alice"), worker("bob")
    assert alice["owner"] == "alice" and bob["owner"] == "bob"
    assert alice["id"] != bob["id"]
    assert {"descriptor", "primaryWorkEmail", "businessTitle"} <= set(alice)


def test_static_key_sees_every_users_data(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service
) -> None:
    """A shared integration-user key visibly leaks other users' data."""
    call_api(http, salesforce, access_token(trusted_as, salesforce, sub="carol"))
    response = call_api(http, salesforce, SERVICE_KEY)
    assert response.status_code == 200
    assert {"alice", "bob", "carol"} <= owners(response)


def test_dpop_scheme_is_accepted_and_recorded(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service
) -> None:
    since = cursor(http, salesforce)
    token = access_token(trusted_as, salesforce)
    response = call_api(http, salesforce, token, scheme="DPoP", DPoP="proof.jwt.value")
    assert response.status_code == 200
    record = only_record(http, salesforce, since)
    assert record["authorization_scheme"] == "DPoP"
    assert record["dpop"] == "proof.jwt.value"
    assert record["token"] == token


# --- records ---


def test_records_accepted_api_request(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service
) -> None:
    since = cursor(http, salesforce)
    token = access_token(trusted_as, salesforce, sub="bob")
    body = call_api(http, salesforce, token).json()
    record = only_record(http, salesforce, since)
    assert record["seq"] == since + 1
    assert isinstance(record["time"], float)
    assert record["kind"] == "api"
    assert record["method"] == "GET"
    assert record["path"] == "/services/data/v60.0/sobjects/Opportunity"
    assert record["caller"].startswith("127.0.0.1:")
    assert record["authorization_scheme"] == "Bearer"
    assert record["token"] == token
    assert record["token_kind"] == "jwt"
    assert record["header"]["typ"] == "at+jwt"
    assert record["claims"]["sub"] == "bob"
    assert record["dpop"] is None
    assert record["accepted"] is True
    assert record["status"] == 200
    assert record["user"] == "bob"
    assert record["scopes"] == ["api"]
    assert record["returned"] == [{"id": r["Id"], "owner": "bob"} for r in body["records"]]


def test_records_rejected_api_request(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service
) -> None:
    since = cursor(http, salesforce)
    token = access_token(trusted_as, salesforce, aud="http://127.0.0.1:9/mcp")
    http.get(f"{salesforce.settings.api_url}?q=1", headers={"Authorization": f"Bearer {token}"})
    record = only_record(http, salesforce, since)
    assert record["query"] == "q=1"
    assert record["token"] == token
    assert record["claims"]["aud"] == "http://127.0.0.1:9/mcp"
    assert record["accepted"] is False
    assert record["status"] == 401
    assert "audience" in record["reason"]
    assert record["user"] is None
    assert record["returned"] == []


def test_records_static_and_opaque_credentials(http: httpx.Client, salesforce: Service) -> None:
    since = cursor(http, salesforce)
    call_api(http, salesforce, SERVICE_KEY)
    call_api(http, salesforce, "opaque-value")
    static, opaque = records_since(http, salesforce, since)
    assert static["token_kind"] == "static"
    assert static["user"] == "integration"
    assert static["header"] is None and static["claims"] is None
    assert {item["owner"] for item in static["returned"]} >= {"alice", "bob"}
    assert opaque["token_kind"] == "opaque" and opaque["accepted"] is False


def test_records_token_requests(http: httpx.Client, idp: Issuer, workday: Service) -> None:
    since = cursor(http, workday)
    assertion = id_jag(idp, workday, sub="bob")
    issued = redeem(http, workday, assertion).json()["access_token"]
    redeem(http, workday, assertion)  # replay: rejected, recorded too
    good, replay = records_since(http, workday, since)
    assert good["kind"] == "token"
    assert good["path"] == "/ccx/oauth2/token"
    assert good["grant_type"] == JWT_BEARER
    assert good["client_id"] == CLIENT[0]
    assert good["assertion"] == assertion == good["token"]
    assert good["assertion_header"]["typ"] == ID_JAG_TYP
    assert good["assertion_claims"]["sub"] == "bob"
    assert good["accepted"] is True and good["status"] == 200
    assert good["user"] == "bob"
    assert good["scopes"] == ["workers:read"]
    assert good["issued_jti"] == jwt.decode(issued, options={"verify_signature": False})["jti"]
    assert replay["accepted"] is False and replay["status"] == 400
    assert "jti" in replay["reason"]
    assert replay["issued_jti"] is None


def test_records_since_and_limit(http: httpx.Client, salesforce: Service) -> None:
    since = cursor(http, salesforce)
    for _ in range(3):
        call_api(http, salesforce, None)
    page = http.get(f"{salesforce.url}/_records", params={"since": since, "limit": 2}).json()
    assert [r["seq"] for r in page["records"]] == [since + 1, since + 2]
    assert page["last"] == since + 3
    rest = records_since(http, salesforce, since + 2)
    assert [r["seq"] for r in rest] == [since + 3]
    assert http.get(f"{salesforce.url}/_records", params={"since": "x"}).status_code == 400


# --- faults ---


@pytest.fixture
def fault_switch(http: httpx.Client, salesforce: Service) -> Iterator[str]:
    url = f"{salesforce.url}/_faults"
    yield url
    http.post(url, json={"mode": "none"})


def test_fault_server_error(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service, fault_switch: str
) -> None:
    assert http.post(fault_switch, json={"mode": "server_error"}).json() == {"mode": "server_error"}
    assert http.get(fault_switch).json() == {"mode": "server_error"}
    since = cursor(http, salesforce)
    token = access_token(trusted_as, salesforce)
    response = call_api(http, salesforce, token)
    assert response.status_code == 500
    assert CANARY in response.text and "File " in response.text
    record = only_record(http, salesforce, since)
    assert record["status"] == 500 and record["token"] == token
    assert record["accepted"] is False
    # Faults apply to API routes only: the token endpoint still answers for itself.
    token_response = http.post(salesforce.settings.token_endpoint, data={"grant_type": JWT_BEARER})
    assert token_response.status_code == 401


def test_fault_unavailable(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service, fault_switch: str
) -> None:
    http.post(fault_switch, json={"mode": "unavailable"})
    response = call_api(http, salesforce, access_token(trusted_as, salesforce))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    http.post(fault_switch, json={"mode": "none"})
    assert call_api(http, salesforce, access_token(trusted_as, salesforce)).status_code == 200


def test_fault_mode_must_be_known(http: httpx.Client, fault_switch: str) -> None:
    assert http.post(fault_switch, json={"mode": "explode"}).status_code == 400
    assert http.post(fault_switch, content=b"not json").status_code == 400
    assert http.get(fault_switch).json() == {"mode": "none"}


def test_fault_expire_tokens_is_one_shot(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service, fault_switch: str
) -> None:
    """Every token seen so far expires; tokens obtained afterwards work."""
    seen = access_token(trusted_as, salesforce, sub="dave")
    assert call_api(http, salesforce, seen).status_code == 200
    reply = http.post(fault_switch, json={"expire_tokens": True})
    assert reply.status_code == 200 and reply.json()["expired"] >= 1
    assert reply.json()["mode"] == "none"
    since = cursor(http, salesforce)
    response = call_api(http, salesforce, seen)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="the access token expired"'
    )
    record = only_record(http, salesforce, since)
    assert record["fault"] == "expired" and record["user"] == "dave"
    assert record["accepted"] is False and record["token"] == seen
    assert call_api(http, salesforce, access_token(trusted_as, salesforce)).status_code == 200
    assert call_api(http, salesforce, SERVICE_KEY).status_code == 200  # keys do not expire
    assert call_api(http, salesforce, seen).status_code == 401  # and stays expired


def test_fault_reject_tokens_until_cleared(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service, fault_switch: str
) -> None:
    token = access_token(trusted_as, salesforce)
    assert http.post(fault_switch, json={"mode": "reject_tokens"}).json() == {
        "mode": "reject_tokens"
    }
    since = cursor(http, salesforce)
    for credential in (token, access_token(trusted_as, salesforce), SERVICE_KEY):
        response = call_api(http, salesforce, credential)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    records = records_since(http, salesforce, since)
    assert [r["fault"] for r in records] == ["reject_tokens"] * 3
    assert records[0]["user"] == "alice"
    http.post(fault_switch, json={"mode": "none"})
    assert call_api(http, salesforce, token).status_code == 200


def test_fault_switch_validates_expire_tokens(http: httpx.Client, fault_switch: str) -> None:
    assert http.post(fault_switch, json={"expire_tokens": "yes"}).status_code == 400
    assert http.post(fault_switch, json=[]).status_code == 400
    assert http.post(fault_switch, json={}).json() == {"mode": "none"}


# --- DPoP (RFC 9449) ---


def bound_token(
    http: httpx.Client, idp: Issuer, service: Service, key: DPoPKey, sub: str = "alice"
) -> str:
    proof = key.proof("POST", service.settings.token_endpoint)
    response = redeem(http, service, id_jag(idp, service, sub=sub), dpop=proof)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    return str(response.json()["access_token"])


def test_dpop_metadata(http: httpx.Client, workday_dpop: Service) -> None:
    doc = http.get(f"{workday_dpop.url}/.well-known/oauth-authorization-server").json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "RS256", "PS256"]


def test_dpop_token_is_bound_to_the_proof_key(
    http: httpx.Client, idp: Issuer, workday_dpop: Service
) -> None:
    """§5 / §6.1: the token carries cnf.jkt of the proof key; the request is recorded."""
    key = DPoPKey()
    since = cursor(http, workday_dpop)
    token = bound_token(http, idp, workday_dpop, key)
    assert jwt.decode(token, options={"verify_signature": False})["cnf"] == {"jkt": key.jkt}
    record = only_record(http, workday_dpop, since)
    assert record["dpop_required"] is True and record["dpop_verdict"] == "valid"
    assert record["dpop_header"]["jwk"] == key.jwk
    assert record["dpop_claims"]["htm"] == "POST"
    assert record["issued_jkt"] == key.jkt


@pytest.mark.parametrize("case", ["no proof", "proof for another URL", "proof with typ JWT"])
def test_dpop_token_request_needs_a_valid_proof(
    http: httpx.Client, idp: Issuer, workday_dpop: Service, case: str
) -> None:
    key, endpoint = DPoPKey(), workday_dpop.settings.token_endpoint
    proof = {
        "no proof": None,
        "proof for another URL": key.proof("POST", f"{workday_dpop.url}/elsewhere"),
        "proof with typ JWT": key.proof("POST", endpoint, typ="JWT"),
    }[case]
    response = redeem(http, workday_dpop, id_jag(idp, workday_dpop), dpop=proof)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"


def test_dpop_api_accepts_a_proof_for_the_request(
    http: httpx.Client, idp: Issuer, workday_dpop: Service
) -> None:
    key = DPoPKey()
    token = bound_token(http, idp, workday_dpop, key, sub="bob")
    api = workday_dpop.settings.api_url
    since = cursor(http, workday_dpop)
    proof = key.proof("GET", api, access_token=token)
    response = call_api(http, workday_dpop, token, scheme="DPoP", DPoP=proof)
    assert response.status_code == 200, response.text
    assert response.json()["owner"] == "bob"
    # A reused proof is recorded as such, not refused (RFC 9449 §11.1: caches are optional).
    assert call_api(http, workday_dpop, token, scheme="DPoP", DPoP=proof).status_code == 200
    first, again = records_since(http, workday_dpop, since)
    assert first["dpop_verdict"] == "valid" and first["dpop_jti_reused"] is False
    assert first["dpop_claims"]["ath"] and first["authorization_scheme"] == "DPoP"
    assert again["dpop_jti_reused"] is True and again["accepted"] is True


def test_dpop_api_refusals(http: httpx.Client, idp: Issuer, workday_dpop: Service) -> None:
    """§7.1: the DPoP scheme, a proof for this request by the token's key, or 401."""
    key, other = DPoPKey(), DPoPKey()
    token = bound_token(http, idp, workday_dpop, key)
    api = workday_dpop.settings.api_url
    good = key.proof("GET", api, access_token=token)
    cases = {
        "bearer scheme": ("Bearer", good, "invalid_token"),
        "no proof": ("DPoP", None, "invalid_dpop_proof"),
        "another key": ("DPoP", other.proof("GET", api, access_token=token), "invalid_dpop_proof"),
        "wrong ath": ("DPoP", key.proof("GET", api, access_token="x"), "invalid_dpop_proof"),
        "wrong htm": ("DPoP", key.proof("POST", api, access_token=token), "invalid_dpop_proof"),
    }
    for case, (scheme, proof, error) in cases.items():
        headers = {"DPoP": proof} if proof else {}
        response = call_api(http, workday_dpop, token, scheme=scheme, **headers)
        assert response.status_code == 401, case
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith(f'DPoP error="{error}"'), (case, challenge)
        assert 'algs="ES256 RS256 PS256"' in challenge


def test_dpop_service_refuses_unbound_tokens(http: httpx.Client, trusted_as: Issuer) -> None:
    """With `require_dpop`, even a trusted issuer's token must be DPoP-bound."""
    serving = _serve_service(
        "salesforce", trusted_issuers=(TrustedIssuer(trusted_as.url),), require_dpop=True
    )
    service = next(serving)
    try:
        token = access_token(trusted_as, service)
        proof = DPoPKey().proof("GET", service.settings.api_url, access_token=token)
        since = cursor(http, service)
        for scheme in ("Bearer", "DPoP"):
            response = call_api(http, service, token, scheme=scheme, DPoP=proof)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("DPoP ")
        bearer, dpop = records_since(http, service, since)
        assert "DPoP scheme" in bearer["reason"]
        assert "not DPoP-bound" in dpop["reason"]
    finally:
        next(serving, None)  # stops the server


def test_dpop_expiry_challenge_uses_the_dpop_scheme(
    http: httpx.Client, idp: Issuer, workday_dpop: Service
) -> None:
    key = DPoPKey()
    token = bound_token(http, idp, workday_dpop, key)
    api = workday_dpop.settings.api_url
    assert http.post(f"{workday_dpop.url}/_faults", json={"expire_tokens": True}).is_success
    proof = key.proof("GET", api, access_token=token)
    response = call_api(http, workday_dpop, token, scheme="DPoP", DPoP=proof)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'DPoP error="invalid_token", error_description="the access token expired", '
        'algs="ES256 RS256 PS256"'
    )


def test_proofs_are_recorded_at_bearer_services(
    http: httpx.Client, trusted_as: Issuer, salesforce: Service
) -> None:
    """A proof reaching a Bearer service is decoded and judged in the record, not enforced."""
    key = DPoPKey()
    since = cursor(http, salesforce)
    token = access_token(trusted_as, salesforce)
    proof = key.proof("POST", "http://127.0.0.1:9/mcp", access_token=token)
    assert call_api(http, salesforce, token, DPoP=proof).status_code == 200
    record = only_record(http, salesforce, since)
    assert record["dpop_required"] is False
    assert record["dpop_claims"]["htu"] == "http://127.0.0.1:9/mcp"
    assert record["dpop_verdict"].startswith("htm")


def test_cli_require_dpop_flag() -> None:
    args = parse_args(["--service", "workday", "--require-dpop"])
    assert build_settings(args, "http://127.0.0.1:5000").require_dpop is True
    plain = parse_args(["--service", "salesforce"])
    assert build_settings(plain, "http://127.0.0.1:5000").require_dpop is False


# --- standalone mode ---


def test_standalone_serves_metadata(idp: Issuer) -> None:
    args = ["--service", "workday", "--host", "127.0.0.1", "--port", "0"]
    args += ["--idp", f"{idp.url}={idp.url}/jwks", "--client", ":".join(CLIENT)]
    with standalone("mock_saas", *args) as ready:
        prefix = "mock_saas ready: service=workday base_url="
        assert ready.startswith(prefix)
        base_url = ready[len(prefix) :].strip()
        doc = httpx.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=5).json()
        assert doc["issuer"] == base_url
        assert doc["token_endpoint"] == f"{base_url}/ccx/oauth2/token"


@pytest.mark.parametrize(
    "args",
    [
        ["--service", "sap"],
        ["--service", "salesforce", "--host", "0.0.0.0"],
        ["--service", "salesforce", "--client", "no-secret"],
        ["--service", "salesforce", "--trust-issuer", "not-a-url"],
        ["--service", "salesforce", "--base-url", "http://127.0.0.1:1/path"],
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("mock_saas: error: ")


def test_standalone_refuses_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mock_saas", "--service", "workday", "--host", "0.0.0.0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--allow-non-loopback" in result.stderr
