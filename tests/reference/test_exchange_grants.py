"""Tests of the reference AS's second-hop grants: RFC 8693 token exchange (the MCP server
trades a user's token for a downstream one) and the RFC 7523 jwt-bearer grant for ID-JAGs.

The AS runs in-process behind starlette's TestClient; the mock IdP it trusts runs as a real
uvicorn server, so discovery and JWKS fetches are real HTTP. Test ID-JAGs are signed here
with the IdP app's own key (`app.state.signing_key`), independent of the IdP's exchange.
Each negative test changes one thing of a good request.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from mock_idp.keys import SigningKey as IdpSigningKey
from mock_idp.keys import generate_signing_key as generate_idp_key
from reference.authorization_server import create_app
from reference.authorization_server.context import Context
from reference.authorization_server.tokens import issue_for_grant
from reference.settings import (
    BASIC_SCOPE,
    ID_JAG,
    PRIVILEGED_SCOPE,
    TOKEN_EXCHANGE,
    DownstreamService,
    ReferenceSettings,
)
from reference.upstream import UpstreamIdentities
from tests.reference.conftest import AS_ISSUER, Idp

MCP = "http://127.0.0.1:41002/mcp"
RS2 = "http://127.0.0.1:41003/rs2"
SF = "http://127.0.0.1:41010"
WD = "http://127.0.0.1:41020"
SF_RESOURCE = f"{SF}/services/data"
WD_RESOURCE = f"{WD}/ccx/api"

TE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWTB = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AT = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
IDT = "urn:ietf:params:oauth:token-type:id_token"
IDJAG = "urn:ietf:params:oauth:token-type:id-jag"
PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"
IDJAG_TYP = "oauth-id-jag+jwt"

MCP_CLIENT = ("reference-mcp", "reference-mcp-secret")
RAS_CLIENT = ("ras-client", "ras-secret")
OTHER_RAS_CLIENT = ("other-client", "other-secret")

SALESFORCE = DownstreamService(
    name="salesforce",
    tool="salesforce-connector",
    action="get_opportunities",
    model=TOKEN_EXCHANGE,
    base_url=SF,
    resource=SF_RESOURCE,
    api_url=f"{SF}/services/data/v60.0/sobjects/Opportunity",
    token_endpoint=f"{SF}/services/oauth2/token",
    scopes=("api",),
    all_scopes=("api", "full", "web"),
    client_id="",
    client_secret="",
    static_key="sf-static",
)
WORKDAY = DownstreamService(
    name="workday",
    tool="workday-connector",
    action="get_worker",
    model=ID_JAG,
    base_url=WD,
    resource=WD_RESOURCE,
    api_url=f"{WD}/ccx/api/staffing/v6/acme/workers/me",
    token_endpoint=f"{WD}/ccx/oauth2/token",
    scopes=("workers:read",),
    all_scopes=("workers:read", "workers:write"),
    client_id="mcp-deployment",
    client_secret="mcp-deployment-secret",
    static_key="wd-static",
)

Response = Any  # starlette's TestClient may return httpx2 responses


# --- fixtures ---


@pytest.fixture(scope="module")
def rogue_key() -> IdpSigningKey:
    """A key no party trusts (signs foreign and tampered tokens)."""
    return generate_idp_key()


class Deployment:
    """One AS instance with the second hop configured, plus request helpers."""

    def __init__(self, idp: Idp, defects: tuple[str, ...] = (), **settings: Any) -> None:
        self.idp = idp
        self.upstream = UpstreamIdentities()
        self.settings = ReferenceSettings(
            issuer=AS_ISSUER,
            mcp_url=MCP,
            second_resource=RS2,
            idp_issuer=idp.issuer,
            defects=frozenset(defects),
            idjag_clients=(RAS_CLIENT, OTHER_RAS_CLIENT),
            downstream=(SALESFORCE, WORKDAY),
            **settings,
        )
        self.app = create_app(self.settings, self.upstream)
        self.http = TestClient(
            self.app, base_url=AS_ISSUER, client=("127.0.0.1", 50000), follow_redirects=False
        )

    @property
    def ctx(self) -> Context:
        ctx: Context = self.app.state.ctx
        return ctx

    def metadata(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.http.get("/.well-known/oauth-authorization-server").json()
        return doc

    def token(self, data: dict[str, str], auth: tuple[str, str] | None) -> Response:
        if auth is None:
            return self.http.post("/token", data=data)
        return self.http.post("/token", data=data, auth=auth)

    def verify(self, token: str, audience: str | list[str]) -> dict[str, Any]:
        """Claims of an access token of this AS, checked with its published JWKS."""
        jwks = jwt.PyJWKSet.from_dict(self.http.get("/jwks").json())
        kid = jwt.get_unverified_header(token)["kid"]
        key = next(k for k in jwks.keys if k.key_id == kid)
        claims: dict[str, Any] = jwt.decode(
            token, key.key, algorithms=["RS256"], audience=audience, issuer=AS_ISSUER
        )
        return claims

    def introspect(self, token: str) -> dict[str, Any]:
        resp = self.http.post("/introspect", data={"token": token}, auth=RAS_CLIENT)
        assert resp.status_code == 200, resp.text
        info: dict[str, Any] = resp.json()
        return info

    # --- token exchange ---

    def user_token(
        self, user: str = "alice", resource: str = MCP, client_id: str = "mcp-client"
    ) -> str:
        """An access token for `user`, minted as the code grant mints them (with a grant)."""
        grant = self.ctx.store.new_grant(
            client_id=client_id, user=user, scope=[BASIC_SCOPE], resource=resource, auth_time=1
        )
        return issue_for_grant(
            self.ctx, grant, scope=[BASIC_SCOPE], with_refresh_token=False
        ).access_token

    def signed(self, claims: dict[str, Any], **header: Any) -> str:
        """A JWT signed with the AS key by the test signer (any claims, any typ)."""
        resp = self.http.post("/_test/sign", json={"claims": claims, "header": header})
        token: str = resp.json()["token"]
        return token

    def exchange(
        self,
        subject: str | None,
        auth: tuple[str, str] | None = MCP_CLIENT,
        **params: str | None,
    ) -> Response:
        data: dict[str, str | None] = {
            "grant_type": TE,
            "subject_token": subject,
            "subject_token_type": AT,
            "resource": SF_RESOURCE,
            "scope": "api",
        }
        data.update(params)
        return self.token({k: v for k, v in data.items() if v is not None}, auth)

    # --- jwt-bearer ---

    def idjag_claims(self, **overrides: Any) -> dict[str, Any]:
        """Good ID-JAG claims (contract, model 2); a None override removes the claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.idp.issuer,
            "sub": "alice",
            "aud": AS_ISSUER,
            "client_id": RAS_CLIENT[0],
            "jti": secrets.token_urlsafe(12),
            "iat": now,
            "exp": now + 300,
            "resource": MCP,
            "scope": BASIC_SCOPE,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def idjag(self, typ: str = IDJAG_TYP, **overrides: Any) -> str:
        """An ID-JAG signed with the IdP's own key."""
        return self.idp.key.sign(self.idjag_claims(**overrides), typ=typ)

    def redeem(
        self, assertion: str | None, auth: tuple[str, str] | None = RAS_CLIENT, **params: str
    ) -> Response:
        data = {"grant_type": JWTB, **params}
        if assertion is not None:
            data["assertion"] = assertion
        return self.token(data, auth)


@pytest.fixture(scope="module")
def dep(idp: Idp) -> Deployment:
    return Deployment(idp)


@pytest.fixture
def make(idp: Idp) -> Any:
    def factory(*defects: str, **settings: Any) -> Deployment:
        return Deployment(idp, defects, **settings)

    return factory


def error_of(resp: Response) -> tuple[int, str]:
    assert resp.headers["cache-control"] == "no-store", resp.headers
    return resp.status_code, resp.json()["error"]


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def tampered(token: str, **changes: Any) -> str:
    """The token with payload members changed and the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


def subject_claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a good user access token of this AS, for the test signer."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": AS_ISSUER,
        "sub": "alice",
        "aud": MCP,
        "client_id": "mcp-client",
        "scope": BASIC_SCOPE,
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(12),
    }
    claims.update(overrides)
    return claims


# --- setup: metadata, pre-registered clients, upstream identities ---


def test_metadata_advertises_second_hop_grants(dep: Deployment) -> None:
    doc = dep.metadata()
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token", TE, JWTB]
    assert doc["authorization_grant_profiles_supported"] == [PROFILE]
    assert dep.idp.issuer not in json.dumps(doc)  # ID-JAG §8.4: no trusted-issuer list


def test_deployment_clients_are_preregistered(dep: Deployment) -> None:
    mcp = dep.ctx.store.clients["reference-mcp"]
    assert mcp.client_secret == "reference-mcp-secret" and mcp.confidential
    assert mcp.grant_types == [TE] and mcp.resource == MCP and mcp.redirect_uris == []
    assert mcp.token_endpoint_auth_method == "client_secret_basic"
    for client_id, secret in (RAS_CLIENT, OTHER_RAS_CLIENT):
        client = dep.ctx.store.clients[client_id]
        assert client.client_secret == secret and client.grant_types == [JWTB]
        assert client.redirect_uris == [] and client.resource is None


def test_create_app_without_upstream(idp: Idp) -> None:
    settings = ReferenceSettings(
        issuer=AS_ISSUER, mcp_url=MCP, second_resource=RS2, idp_issuer=idp.issuer
    )
    ctx: Context = create_app(settings).state.ctx
    assert isinstance(ctx.upstream, UpstreamIdentities)
    assert set(ctx.store.clients) == {"reference-mcp"}


def _sign_in(dep: Deployment, username: str, password: str) -> None:
    """Register a public client and run the code flow through the IdP login form."""
    client = dep.http.post(
        "/register",
        json={"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
    ).json()
    resp = dep.http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": "http://127.0.0.1:5000/cb",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "resource": MCP,
        },
    )
    with httpx.Client(follow_redirects=False, trust_env=False) as browser:
        login = browser.get(resp.headers["location"])
        request_id = re.search(r'name="request_id" value="([^"]+)"', login.text)
        assert request_id, login.text
        back = browser.post(
            f"{dep.idp.issuer}/login",
            data={"request_id": request_id.group(1), "username": username, "password": password},
        )
    done = dep.http.get(back.headers["location"])
    assert "code" in parse_qs(urlsplit(done.headers["location"]).query), done.headers


def test_sign_in_remembers_the_idp_id_token(dep: Deployment) -> None:
    assert dep.upstream.id_token("bob") is None
    _sign_in(dep, "bob", "bob-password")
    id_token = dep.upstream.id_token("bob")
    assert id_token is not None
    claims = claims_of(id_token)
    assert claims["iss"] == dep.idp.issuer and claims["sub"] == "bob"
    assert claims["aud"] == "reference-as"


# --- RFC 8693 token exchange: success ---


def test_exchange_issues_a_downstream_token(dep: Deployment) -> None:
    subject = dep.user_token()
    resp = dep.exchange(subject)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in", "scope"}
    assert body["issued_token_type"] == AT and body["token_type"] == "Bearer"
    assert body["scope"] == "api" and 0 < body["expires_in"] <= 300
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt" and header["kid"]
    claims = dep.verify(body["access_token"], SF_RESOURCE)
    assert claims["aud"] == SF_RESOURCE and claims["sub"] == "alice"
    assert claims["client_id"] == "reference-mcp" and claims["scope"] == "api"
    assert claims["act"] == {"sub": "reference-mcp"} and claims["jti"]
    assert claims["iat"] <= claims["exp"] <= claims_of(subject)["exp"]
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    info = dep.introspect(body["access_token"])
    assert info["active"] is True and info["aud"] == SF_RESOURCE and info["sub"] == "alice"


@pytest.mark.parametrize(
    "params",
    [
        {"resource": None, "audience": "salesforce"},
        {"resource": None, "audience": SF_RESOURCE},
        {"audience": "salesforce"},
        {"scope": None},
        {"scope": "full web"},
        {"requested_token_type": AT},
        {"subject_token_type": JWT_TYPE},
    ],
)
def test_exchange_variants_accepted(dep: Deployment, params: dict[str, Any]) -> None:
    resp = dep.exchange(dep.user_token(), **params)
    assert resp.status_code == 200, resp.text
    assert claims_of(resp.json()["access_token"])["aud"] == SF_RESOURCE
    assert resp.json()["scope"] == (params.get("scope", "api") or "api")


def test_exchange_echoes_requested_jwt_type(dep: Deployment) -> None:
    body = dep.exchange(dep.user_token(), requested_token_type=JWT_TYPE).json()
    assert body["issued_token_type"] == JWT_TYPE and body["token_type"] == "Bearer"


def test_media_type_form_of_at_jwt_is_accepted(dep: Deployment) -> None:
    subject = dep.signed(subject_claims(), typ="application/at+jwt")
    assert dep.exchange(subject).status_code == 200


def test_exchanged_token_never_outlives_its_subject(dep: Deployment) -> None:
    subject = dep.signed(subject_claims(exp=int(time.time()) + 30))
    body = dep.exchange(subject).json()
    assert claims_of(body["access_token"])["exp"] == claims_of(subject)["exp"]
    assert body["expires_in"] <= 30


def test_actor_token_names_the_actor(dep: Deployment) -> None:
    actor = dep.signed(subject_claims(sub="svc-agent", client_id="agent-client", aud=RS2))
    resp = dep.exchange(dep.user_token(), actor_token=actor, actor_token_type=AT)
    assert resp.status_code == 200, resp.text
    claims = claims_of(resp.json()["access_token"])
    assert claims["act"] == {"sub": "svc-agent", "client_id": "agent-client"}
    assert claims["sub"] == "alice"
    expired_actor = dep.signed(subject_claims(exp=int(time.time()) - 10))
    bad = dep.exchange(dep.user_token(), actor_token=expired_actor, actor_token_type=AT)
    assert error_of(bad) == (400, "invalid_request")


def test_revoking_the_user_grant_revokes_exchanged_tokens(dep: Deployment) -> None:
    subject = dep.user_token()
    exchanged = dep.exchange(subject).json()["access_token"]
    record = dep.ctx.store.access_tokens[claims_of(subject)["jti"]]
    assert record.grant_id is not None
    dep.ctx.store.revoke_grant(record.grant_id)
    assert dep.introspect(exchanged) == {"active": False}


# --- RFC 8693 token exchange: refusals ---


def test_exchange_requires_an_authenticated_confidential_client(dep: Deployment) -> None:
    subject = dep.user_token()
    public = dep.http.post(
        "/register",
        json={"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
    ).json()
    confidential = dep.http.post("/register", json={"redirect_uris": ["http://127.0.0.1/cb"]})
    conf = confidential.json()
    cases = [
        (dep.exchange(subject, auth=None, client_id="reference-mcp"), (401, "invalid_client")),
        (dep.exchange(subject, auth=("reference-mcp", "wrong")), (401, "invalid_client")),
        (dep.exchange(subject, auth=None, client_id=public["client_id"]), (401, "invalid_client")),
        (dep.exchange(subject, auth=None), (401, "invalid_client")),
        (
            dep.exchange(subject, auth=(conf["client_id"], conf["client_secret"])),
            (400, "unauthorized_client"),
        ),
        (dep.exchange(subject, auth=RAS_CLIENT), (400, "unauthorized_client")),
    ]
    for resp, expected in cases:
        assert error_of(resp) == expected, resp.text


@pytest.mark.parametrize(
    "params",
    [
        {"subject_token_type": None},
        {"subject_token_type": IDT},
        {"subject_token_type": IDJAG},
        {"actor_token": "x"},
        {"actor_token_type": AT},
        {"actor_token": "x", "actor_token_type": IDT},
        {"requested_token_type": IDJAG},
        {"requested_token_type": IDT},
        {"resource": None},
    ],
)
def test_malformed_exchange_is_invalid_request(dep: Deployment, params: dict[str, Any]) -> None:
    assert error_of(dep.exchange(dep.user_token(), **params)) == (400, "invalid_request")


def test_missing_subject_token_is_invalid_request(dep: Deployment) -> None:
    assert error_of(dep.exchange(None)) == (400, "invalid_request")


@pytest.mark.parametrize(
    "params",
    [
        {"resource": "https://not-served.example/api"},
        {"resource": None, "audience": "unknown-aud"},
        {"resource": WD_RESOURCE},  # served, but through the ID-JAG model
        {"resource": None, "audience": "workday"},
        {"audience": "workday"},  # resource and audience name different services
        {"resource": MCP},
    ],
)
def test_unknown_target_is_invalid_target(dep: Deployment, params: dict[str, Any]) -> None:
    assert error_of(dep.exchange(dep.user_token(), **params)) == (400, "invalid_target")


def test_repeated_resource_is_invalid_target(dep: Deployment) -> None:
    data = [
        ("grant_type", TE),
        ("subject_token", dep.user_token()),
        ("subject_token_type", AT),
        ("resource", SF_RESOURCE),
        ("resource", SF_RESOURCE),
    ]
    resp = dep.http.post(
        "/token",
        content="&".join(f"{k}={v}" for k, v in data),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=MCP_CLIENT,
    )
    assert error_of(resp) == (400, "invalid_target")


@pytest.mark.parametrize("scope", ["api admin", "mcp:tools"])
def test_scope_beyond_policy_is_invalid_scope(dep: Deployment, scope: str) -> None:
    assert error_of(dep.exchange(dep.user_token(), scope=scope)) == (400, "invalid_scope")


def test_invalid_subject_tokens_are_refused(dep: Deployment, rogue_key: IdpSigningKey) -> None:
    now = int(time.time())
    revoked = dep.user_token()
    dep.ctx.store.access_tokens[claims_of(revoked)["jti"]].revoked = True
    id_token = dep.idp.key.sign(
        {"iss": dep.idp.issuer, "sub": "alice", "aud": "reference-as", "iat": now, "exp": now + 60}
    )
    subjects = {
        "expired": dep.signed(subject_claims(iat=now - 600, exp=now - 300)),
        "foreign key": rogue_key.sign(subject_claims(), typ="at+jwt"),
        "tampered": tampered(dep.user_token(), scope="mcp:tools mcp:admin"),
        "revoked": revoked,
        "random": secrets.token_urlsafe(32),
        "id token": id_token,
        "typed JWT": dep.signed(subject_claims(), typ="JWT"),
        "other issuer": dep.signed(subject_claims(iss="https://other.example")),
        "no sub": dep.signed({k: v for k, v in subject_claims().items() if k != "sub"}),
    }
    for name, subject in subjects.items():
        assert error_of(dep.exchange(subject)) == (400, "invalid_request"), name


def test_subject_must_be_addressed_to_the_mcp_server(dep: Deployment) -> None:
    for_rs2 = dep.user_token(resource=RS2)
    assert error_of(dep.exchange(for_rs2)) == (400, "invalid_request")
    both = dep.signed(subject_claims(aud=[MCP, RS2]))
    assert dep.exchange(both).status_code == 200


def test_first_hop_defects_leave_exchange_responses_alone(make: Any) -> None:
    d = make("token-response-cacheable", "token-response-missing-token-type", "jwt-typ-plain-jwt")
    resp = d.exchange(d.user_token())  # the subject is typed JWT under jwt-typ-plain-jwt
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store" and resp.json()["token_type"] == "Bearer"
    assert jwt.get_unverified_header(resp.json()["access_token"])["typ"] == "at+jwt"


# --- RFC 8693 token exchange: defect switches ---


def test_tx_grant_unsupported(make: Any) -> None:
    d = make("tx-grant-unsupported")
    assert error_of(d.exchange(d.user_token())) == (400, "unsupported_grant_type")
    grants = d.metadata()["grant_types_supported"]
    assert TE not in grants and JWTB in grants


def test_tx_grant_not_advertised(make: Any) -> None:
    d = make("tx-grant-not-advertised")
    assert TE not in d.metadata()["grant_types_supported"]
    assert d.exchange(d.user_token()).status_code == 200


def test_tx_subject_token_type_optional(make: Any) -> None:
    d = make("tx-subject-token-type-optional")
    assert d.exchange(d.user_token(), subject_token_type=None).status_code == 200
    assert error_of(d.exchange(None, subject_token_type=None)) == (400, "invalid_request")
    assert error_of(d.exchange(d.user_token(), subject_token_type=IDT)) == (400, "invalid_request")


def test_tx_unknown_subject_token_type_accepted(make: Any) -> None:
    d = make("tx-unknown-subject-token-type-accepted")
    assert d.exchange(d.user_token(), subject_token_type=IDT).status_code == 200
    assert error_of(d.exchange(d.user_token(), subject_token_type=None)) == (
        400,
        "invalid_request",
    )


def test_tx_subject_token_not_validated(make: Any, rogue_key: IdpSigningKey) -> None:
    d = make("tx-subject-token-not-validated")
    now = int(time.time())
    for subject in (
        rogue_key.sign(subject_claims(), typ="at+jwt"),
        d.signed(subject_claims(iat=now - 600, exp=now - 300)),
        d.signed(subject_claims(iss="https://other.example"), typ="JWT"),
    ):
        resp = d.exchange(subject)
        assert resp.status_code == 200, resp.text
        assert claims_of(resp.json()["access_token"])["exp"] > now
    assert error_of(d.exchange(d.user_token(resource=RS2))) == (400, "invalid_request")


def test_tx_subject_audience_ignored(make: Any) -> None:
    d = make("tx-subject-audience-ignored")
    assert d.exchange(d.user_token(resource=RS2)).status_code == 200
    assert error_of(d.exchange("not-a-token")) == (400, "invalid_request")


def test_tx_actor_pairing_unchecked(make: Any) -> None:
    d = make("tx-actor-pairing-unchecked")
    assert d.exchange(d.user_token(), actor_token_type=AT).status_code == 200
    actor = d.signed(subject_claims(sub="svc-agent"))
    resp = d.exchange(d.user_token(), actor_token=actor)
    assert resp.status_code == 200 and claims_of(resp.json()["access_token"])["act"]["sub"] == (
        "svc-agent"
    )


def test_tx_invalid_target_wrong_code(make: Any) -> None:
    d = make("tx-invalid-target-wrong-code")
    resp = d.exchange(d.user_token(), resource="https://not-served.example/api")
    assert error_of(resp) == (400, "invalid_request")
    assert error_of(d.exchange(d.user_token(), resource=None, audience="unknown-aud")) == (
        400,
        "invalid_request",
    )


def test_tx_response_missing_issued_token_type(make: Any) -> None:
    d = make("tx-response-missing-issued-token-type")
    body = d.exchange(d.user_token()).json()
    assert "issued_token_type" not in body and body["token_type"] == "Bearer"


def test_tx_token_audience_includes_mcp(make: Any) -> None:
    d = make("tx-token-audience-includes-mcp")
    token = d.exchange(d.user_token()).json()["access_token"]
    assert claims_of(token)["aud"] == [SF_RESOURCE, MCP]
    assert d.introspect(token)["aud"] == [SF_RESOURCE, MCP]


def test_tx_service_identity_sub(make: Any) -> None:
    d = make("tx-service-identity-sub")
    claims = claims_of(d.exchange(d.user_token()).json()["access_token"])
    assert claims["sub"] == "reference-mcp" and claims["act"] == {"sub": "reference-mcp"}


def test_tx_scope_escalation(make: Any) -> None:
    d = make("tx-scope-escalation")
    body = d.exchange(d.user_token(), scope="api admin").json()
    assert body["scope"] == "api admin" and claims_of(body["access_token"])["scope"] == "api admin"


def test_tx_long_lived_token(make: Any) -> None:
    d = make("tx-long-lived-token")
    subject = d.user_token()
    body = d.exchange(subject).json()
    claims = claims_of(body["access_token"])
    assert body["expires_in"] == 86400 and claims["exp"] - claims["iat"] == 86400
    assert claims["exp"] > claims_of(subject)["exp"]


# --- RFC 7523 jwt-bearer grant (ID-JAG): success ---


def test_idjag_is_redeemed_for_an_access_token(dep: Deployment) -> None:
    resp = dep.redeem(dep.idjag(auth_time=1234))
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "resource"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"] == BASIC_SCOPE and body["resource"] == MCP
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    claims = dep.verify(body["access_token"], MCP)
    assert claims["sub"] == "alice" and claims["client_id"] == RAS_CLIENT[0]
    assert claims["scope"] == BASIC_SCOPE and claims["auth_time"] == 1234 and claims["jti"]
    assert dep.introspect(body["access_token"])["active"] is True


@pytest.mark.parametrize(
    ("overrides", "audience"),
    [
        ({"resource": None}, MCP),
        ({"resource": RS2}, RS2),
        ({"resource": [MCP]}, MCP),
        ({"aud": [AS_ISSUER]}, MCP),
        ({"iat": None}, MCP),
        ({"iat": int(time.time()) + 30}, MCP),  # within the clock skew
        ({"exp": int(time.time()) + 30}, MCP),
        ({"nbf": int(time.time()) - 5}, MCP),
    ],
)
def test_idjag_variants_accepted(dep: Deployment, overrides: dict[str, Any], audience: str) -> None:
    resp = dep.redeem(dep.idjag(**overrides))
    assert resp.status_code == 200, resp.text
    assert claims_of(resp.json()["access_token"])["aud"] == audience
    assert ("resource" in resp.json()) == (overrides.get("resource", MCP) is not None)


@pytest.mark.parametrize(
    ("idjag_scope", "requested", "granted"),
    [
        (f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}", None, f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}"),
        (f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}", f"{PRIVILEGED_SCOPE} bogus", PRIVILEGED_SCOPE),
        (BASIC_SCOPE, f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}", BASIC_SCOPE),
    ],
)
def test_idjag_scope_is_intersected(
    dep: Deployment, idjag_scope: str, requested: str | None, granted: str
) -> None:
    params: dict[str, Any] = {"scope": requested} if requested else {}
    resp = dep.redeem(dep.idjag(scope=idjag_scope), **params)
    assert resp.status_code == 200, resp.text
    assert resp.json()["scope"] == granted
    assert claims_of(resp.json()["access_token"])["scope"] == granted


def test_unknown_kid_refetches_the_idp_jwks(dep: Deployment, rogue_key: IdpSigningKey) -> None:
    assert dep.redeem(dep.idjag()).status_code == 200  # discovery and JWKS now cached
    dep.ctx.idp._jwks = jwt.PyJWKSet.from_dict({"keys": [rogue_key.public_jwk()]})  # stale
    assert dep.redeem(dep.idjag()).status_code == 200


# --- RFC 7523 jwt-bearer grant (ID-JAG): refusals ---


def test_idjag_requires_an_authenticated_confidential_client(dep: Deployment) -> None:
    public = dep.http.post(
        "/register",
        json={"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
    ).json()
    cases = [
        (dep.redeem(dep.idjag(), auth=None, client_id=RAS_CLIENT[0]), (401, "invalid_client")),
        (dep.redeem(dep.idjag(), auth=(RAS_CLIENT[0], "wrong")), (401, "invalid_client")),
        (dep.redeem(dep.idjag(), auth=None), (401, "invalid_client")),
        (
            dep.redeem(
                dep.idjag(client_id=public["client_id"]), auth=None, client_id=public["client_id"]
            ),
            (401, "invalid_client"),
        ),
        (
            dep.redeem(dep.idjag(client_id="reference-mcp"), auth=MCP_CLIENT),
            (400, "unauthorized_client"),
        ),
        (dep.redeem(None), (400, "invalid_request")),
    ]
    for resp, expected in cases:
        assert error_of(resp) == expected, resp.text
    assert "www-authenticate" in cases[0][0].headers


def test_idjag_bound_to_the_authenticated_client(dep: Deployment) -> None:
    assertion = dep.idjag()
    assert error_of(dep.redeem(assertion, auth=OTHER_RAS_CLIENT)) == (400, "invalid_grant")
    assert dep.redeem(assertion).status_code == 200  # the failed attempt did not burn it


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "https://other-as.example"},
        {"aud": [AS_ISSUER, "https://other-as.example"]},
        {"aud": f"{AS_ISSUER}/token"},
        {"aud": None},
        {"client_id": None},
        {"exp": int(time.time()) - 120},
        {"exp": int(time.time()) - 1},
        {"exp": None},
        {"iat": int(time.time()) + 600},
        {"nbf": int(time.time()) + 600},
        {"sub": None},
        {"jti": None},
        {"resource": "https://not-ours.example/mcp"},
        {"resource": [MCP, RS2]},
        {"scope": f"{BASIC_SCOPE} zz-unknown"},
    ],
)
def test_bad_idjag_claims_are_invalid_grant(dep: Deployment, overrides: dict[str, Any]) -> None:
    assert error_of(dep.redeem(dep.idjag(**overrides))) == (400, "invalid_grant")


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "", "id-jag+jwt"])
def test_idjag_typ_is_required(dep: Deployment, typ: str) -> None:
    assertion = dep.idjag(typ=typ)
    assert jwt.get_unverified_header(assertion).get("typ", "") == typ
    assert error_of(dep.redeem(assertion)) == (400, "invalid_grant")


def test_idjag_signature_and_issuer_are_verified(dep: Deployment, rogue_key: IdpSigningKey) -> None:
    claims = dep.idjag_claims()
    header = {"typ": IDJAG_TYP, "kid": dep.idp.key.kid}
    bad = {
        "tampered": tampered(dep.idjag(), scope=f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}"),
        "untrusted issuer": rogue_key.sign(
            dep.idjag_claims(iss="https://rogue-idp.example"), typ=IDJAG_TYP
        ),
        "unknown key": rogue_key.sign(claims, typ=IDJAG_TYP),
        "other issuer, IdP key": dep.idjag(iss="https://rogue-idp.example"),
        "alg none": jwt.encode(claims, "", algorithm="none", headers=header),
        "alg HS256": jwt.encode(claims, "s" * 32, algorithm="HS256", headers=header),
        "ES256 for an RSA key": jwt.encode(
            claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers=header
        ),
        "not a JWT": "not-a-jwt",
    }
    for name, assertion in bad.items():
        assert error_of(dep.redeem(assertion)) == (400, "invalid_grant"), name


def test_idjag_no_scope_left_is_invalid_scope(dep: Deployment) -> None:
    resp = dep.redeem(dep.idjag(scope=BASIC_SCOPE), scope=PRIVILEGED_SCOPE)
    assert error_of(resp) == (400, "invalid_scope")
    assert error_of(dep.redeem(dep.idjag(scope=None))) == (400, "invalid_scope")


def test_idjag_replay_is_refused(dep: Deployment) -> None:
    assertion = dep.idjag()
    assert dep.redeem(assertion).status_code == 200
    assert error_of(dep.redeem(assertion)) == (400, "invalid_grant")
    assert dep.redeem(dep.idjag()).status_code == 200  # a fresh jti is fine


# --- RFC 7523 jwt-bearer grant (ID-JAG): defect switches ---


def test_ras_profile_not_advertised(make: Any) -> None:
    d = make("ras-profile-not-advertised")
    doc = d.metadata()
    assert "authorization_grant_profiles_supported" not in doc
    assert JWTB in doc["grant_types_supported"]
    assert d.redeem(d.idjag()).status_code == 200


def test_ras_response_cacheable(make: Any) -> None:
    d = make("ras-response-cacheable")
    resp = d.redeem(d.idjag())
    assert resp.status_code == 200 and "cache-control" not in resp.headers
    assert error_of(d.redeem(None)) == (400, "invalid_request")  # errors stay no-store
    assert d.exchange(d.user_token()).headers["cache-control"] == "no-store"


def test_ras_refresh_token_issued(make: Any) -> None:
    d = make("ras-refresh-token-issued")
    body = d.redeem(d.idjag()).json()
    assert body["refresh_token"] and body["token_type"] == "Bearer"


def test_ras_typ_unchecked(make: Any) -> None:
    d = make("ras-typ-unchecked")
    for typ in ("JWT", "at+jwt", ""):
        assert d.redeem(d.idjag(typ=typ)).status_code == 200, typ
    assert error_of(d.redeem(d.idjag(typ="JWT", aud="https://other-as.example"))) == (
        400,
        "invalid_grant",
    )


def test_ras_signature_unchecked(make: Any, rogue_key: IdpSigningKey) -> None:
    d = make("ras-signature-unchecked")
    claims = d.idjag_claims()
    for assertion in (
        tampered(d.idjag(), scope=f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}"),
        rogue_key.sign(d.idjag_claims(iss="https://rogue-idp.example"), typ=IDJAG_TYP),
        jwt.encode(claims, "", algorithm="none", headers={"typ": IDJAG_TYP}),
    ):
        assert d.redeem(assertion).status_code == 200
    assert error_of(d.redeem(d.idjag(typ="JWT"))) == (400, "invalid_grant")


def test_ras_aud_unchecked(make: Any) -> None:
    d = make("ras-aud-unchecked")
    assert d.redeem(d.idjag(aud="https://other-as.example")).status_code == 200
    assert d.redeem(d.idjag(aud=[AS_ISSUER, "https://other.example"])).status_code == 200
    assert error_of(d.redeem(d.idjag(client_id="someone"))) == (400, "invalid_grant")


def test_ras_client_id_unbound(make: Any) -> None:
    d = make("ras-client-id-unbound")
    resp = d.redeem(d.idjag(), auth=OTHER_RAS_CLIENT)
    assert resp.status_code == 200
    assert claims_of(resp.json()["access_token"])["client_id"] == OTHER_RAS_CLIENT[0]
    assert error_of(d.redeem(d.idjag(), auth=None, client_id=RAS_CLIENT[0])) == (
        401,
        "invalid_client",
    )


def test_ras_expiry_unchecked(make: Any) -> None:
    d = make("ras-expiry-unchecked")
    now = int(time.time())
    for overrides in ({"exp": now - 120}, {"exp": None}, {"iat": now + 600}, {"nbf": now + 600}):
        assert d.redeem(d.idjag(**overrides)).status_code == 200, overrides
    assert error_of(d.redeem(d.idjag(jti=None))) == (400, "invalid_grant")


def test_ras_jti_replay_accepted(make: Any) -> None:
    d = make("ras-jti-replay-accepted")
    assertion = d.idjag()
    first = d.redeem(assertion).json()["access_token"]
    second = d.redeem(assertion)
    assert second.status_code == 200 and second.json()["access_token"] != first


def test_ras_scope_not_intersected(make: Any) -> None:
    d = make("ras-scope-not-intersected")
    resp = d.redeem(d.idjag(scope=BASIC_SCOPE), scope=f"{PRIVILEGED_SCOPE} bogus")
    assert resp.status_code == 200 and resp.json()["scope"] == PRIVILEGED_SCOPE
    unrequested = d.redeem(d.idjag(scope=BASIC_SCOPE)).json()
    assert unrequested["scope"] == BASIC_SCOPE
    assert error_of(d.redeem(d.idjag(scope="zz-unknown"))) == (400, "invalid_grant")
