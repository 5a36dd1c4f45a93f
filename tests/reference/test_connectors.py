"""The reference MCP server's second hop, against fake AS, IdP and SaaS apps on loopback.

The fakes speak the wire format of the second-hop contract (RFC 8693 token exchange at the
AS, ID-JAG issuance at the IdP, jwt-bearer redemption and a bearer API at each service),
keep every request they receive, and can be told to fail.
"""

from __future__ import annotations

import base64
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from conformance.oauth.dpop import ProofError, verify_proof
from conformance.servers import ServerThread, bind_loopback, url_of
from reference.mcp_server import create_app
from reference.mcp_server.downstream_tokens import DownstreamToken, TokenCache, usable_until
from reference.settings import (
    BASIC_SCOPE,
    ID_JAG,
    TOKEN_EXCHANGE,
    DownstreamService,
    ReferenceSettings,
)
from reference.upstream import UpstreamIdentities

TE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWTB = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AT = "urn:ietf:params:oauth:token-type:access_token"
IDT = "urn:ietf:params:oauth:token-type:id_token"
IDJAG = "urn:ietf:params:oauth:token-type:id-jag"
CANARY = "MOCK-SAAS-INTERNAL-DETAIL"
AUDIT_TOKEN = "audit-secret-for-tests"
PROTOCOL = "2025-11-25"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL,
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
SF_TOOL, SF_ACTION = "salesforce-connector", "get_opportunities"
WD_TOOL, WD_ACTION = "workday-connector", "get_worker"


NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


# --- fakes ---------------------------------------------------------------------------------


def basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    user, _, password = base64.b64decode(value).decode().partition(":")
    return unquote_plus(user), unquote_plus(password)


class Signer:
    """An RSA key with its JWKS, as every fake issuer has."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwks = {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        return jwt.encode(
            claims, self.key, algorithm="RS256", headers={"typ": typ, "kid": self.kid}
        )

    def verify(self, token: str) -> dict[str, Any]:
        return jwt.decode(
            token, self.key.public_key(), algorithms=["RS256"], options={"verify_aud": False}
        )


def oauth_error(code: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": f"fake {code}"}, status_code=status)


@dataclass
class Fake:
    """A fake server: its requests (`log`) and what it should do next."""

    url: str = ""
    log: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "none"
    server: ServerThread | None = None

    def start(self, routes: list[Route], name: str) -> None:
        sock = bind_loopback()
        self.url = url_of(sock)
        self.server = ServerThread(Starlette(routes=routes), sock, name).start()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [entry for entry in self.log if entry["kind"] == kind]


class FakeAS(Fake):
    """The reference AS: JWKS for inbound tokens, RFC 8693 token exchange at /token."""

    def __init__(self) -> None:
        super().__init__()
        self.signer = Signer("as-key")
        self.expires_in = 300
        self.start(
            [Route("/jwks", self._jwks), Route("/token", self._token, methods=["POST"])], "as"
        )

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse(self.signer.jwks)

    def mint(self, audience: str, sub: str, client_id: str = "client-1") -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": sub,
            "aud": audience,
            "client_id": client_id,
            "scope": BASIC_SCOPE,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        return self.signer.sign(claims, "at+jwt")

    async def _token(self, request: Request) -> Response:
        form = dict(await request.form())
        entry = {"kind": "token", "form": form, "client": basic_credentials(request)}
        self.log.append(entry)
        if basic_credentials(request) != ("reference-mcp", "reference-mcp-secret"):
            return oauth_error("invalid_client", 401)
        if self.mode == "refuse":
            return oauth_error("invalid_target")
        if form.get("grant_type") != TE or form.get("subject_token_type") != AT:
            return oauth_error("invalid_request")
        subject = self.signer.verify(str(form["subject_token"]))
        now = int(time.time())
        scope = str(form.get("scope", "api"))
        claims = {
            "iss": self.url,
            "sub": subject["sub"],
            "aud": form["resource"],
            "client_id": "reference-mcp",
            "scope": scope,
            "iat": now,
            "exp": now + self.expires_in,
            "jti": uuid.uuid4().hex,
            "act": {"sub": "reference-mcp"},
        }
        entry["issued"] = self.signer.sign(claims, "at+jwt")
        return JSONResponse(
            {
                "access_token": entry["issued"],
                "issued_token_type": AT,
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "scope": scope,
            },
            headers={"Cache-Control": "no-store"},
        )


class FakeIdP(Fake):
    """The enterprise IdP: OIDC discovery, JWKS, ID-JAG issuance (RFC 8693) at /token."""

    def __init__(self) -> None:
        super().__init__()
        self.signer = Signer("idp-key")
        self.start(
            [
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/token", self._token, methods=["POST"]),
            ],
            "idp",
        )

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse(self.signer.jwks)

    def id_token(self, sub: str) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "sub": sub, "aud": "reference-as", "iat": now, "exp": now + 600}
        return self.signer.sign(claims, "JWT")

    def id_jag(self, sub: str, audience: str, resource: str, scope: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": sub,
            "aud": audience,
            "client_id": "mcp-deployment",
            "resource": resource,
            "scope": scope,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        return self.signer.sign(claims, "oauth-id-jag+jwt")

    async def _token(self, request: Request) -> Response:
        form = dict(await request.form())
        self.log.append({"kind": "token", "form": form, "client": basic_credentials(request)})
        if basic_credentials(request) != ("reference-as", "reference-as-secret"):
            return oauth_error("invalid_client", 401)
        if (
            form.get("grant_type") != TE
            or form.get("requested_token_type") != IDJAG
            or form.get("subject_token_type") != IDT
        ):
            return oauth_error("invalid_request")
        subject = self.signer.verify(str(form["subject_token"]))
        scope = str(form.get("scope", ""))
        assertion = self.id_jag(subject["sub"], str(form["audience"]), str(form["resource"]), scope)
        return JSONResponse(
            {
                "access_token": assertion,
                "issued_token_type": IDJAG,
                "token_type": "N_A",
                "expires_in": 300,
                "scope": scope,
            },
            headers={"Cache-Control": "no-store"},
        )


class FakeService(Fake):
    """A SaaS service: its own AS (jwt-bearer at `token_path`) and a per-user bearer API."""

    STATIC_KEY = "static-integration-key"

    def __init__(self, name: str, api_path: str, token_path: str, idp: FakeIdP) -> None:
        super().__init__()
        self.name = name
        self.idp = idp
        self.refuse = 0  # how many of the next API requests get 401 invalid_token
        self.signer = Signer(f"{name}-key")
        self.start(
            [
                Route(api_path, self._api),
                Route(token_path, self._token, methods=["POST"]),
            ],
            name,
        )
        self.api_url = self.url + api_path
        self.token_endpoint = self.url + token_path
        self.resource = f"{self.url}/api"

    async def _token(self, request: Request) -> Response:
        """RFC 7523 jwt-bearer with an ID-JAG addressed to this service's AS."""
        form = dict(await request.form())
        proof = request.headers.get("dpop")
        entry = {
            "kind": "token",
            "form": form,
            "client": basic_credentials(request),
            "dpop": proof,
        }
        self.log.append(entry)
        if basic_credentials(request) != ("mcp-deployment", "mcp-deployment-secret"):
            return oauth_error("invalid_client", 401)
        if form.get("grant_type") != JWTB:
            return oauth_error("unsupported_grant_type")
        bound: dict[str, Any] = {}
        if proof is not None:  # RFC 9449 §5: bind the token to the proof's key
            try:
                verified = verify_proof(proof, method="POST", url=self.token_endpoint)
            except ProofError:
                return oauth_error("invalid_dpop_proof")
            bound = {"cnf": {"jkt": verified.jkt}}
        claims = self.idp.signer.verify(str(form["assertion"]))
        entry["assertion_claims"] = claims
        if claims["aud"] != self.url:
            return oauth_error("invalid_grant")
        now = int(time.time())
        token = self.signer.sign(
            {
                "iss": self.url,
                "sub": claims["sub"],
                "aud": claims["resource"],
                "client_id": "mcp-deployment",
                "scope": claims["scope"],
                "iat": now,
                "exp": now + 300,
                "jti": uuid.uuid4().hex,
                **bound,
            },
            "at+jwt",
        )
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "DPoP" if bound else "Bearer",
                "expires_in": 300,
                "scope": claims["scope"],
            },
            headers={"Cache-Control": "no-store"},
        )

    async def _api(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        claims = (
            None
            if token == self.STATIC_KEY
            else jwt.decode(token, options={"verify_signature": False})
        )
        proof = request.headers.get("dpop")
        entry = {"kind": "api", "scheme": scheme, "token": token, "claims": claims, "dpop": proof}
        self.log.append(entry)
        if self.refuse > 0:
            self.refuse -= 1
            return oauth_error("invalid_token", 401)
        if self.mode == "server_error":
            trace = "Traceback (most recent call last):\n  File app.py, line 1"
            return PlainTextResponse(f"{CANARY}\n{trace}", status_code=500)
        if self.mode == "unavailable":
            return PlainTextResponse(CANARY, status_code=503, headers={"Retry-After": "1"})
        if self.mode == "unauthorized":
            return oauth_error("invalid_token", 401)
        owner = "integration" if claims is None else claims["sub"]
        return JSONResponse({"records": [{"id": f"{self.name}-1", "owner": owner}]})


@dataclass
class World:
    authorization_server: FakeAS
    idp: FakeIdP
    salesforce: FakeService
    workday: FakeService
    closed_port_url: str
    upstream: UpstreamIdentities

    def reset(self) -> None:
        for fake in (self.authorization_server, self.idp, self.salesforce, self.workday):
            fake.mode = "none"
            fake.log.clear()
        self.authorization_server.expires_in = 300
        self.salesforce.refuse = self.workday.refuse = 0

    def sign_in(self, sub: str) -> str:
        """A fresh user with an enterprise ID token on record (as after a federated login)."""
        self.upstream.remember(sub, self.idp.id_token(sub), time.time() + 600)
        return sub


def new_user(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    idp = FakeIdP()
    fakes: list[Fake] = [
        FakeAS(),
        idp,
        FakeService("salesforce", "/services/data/opportunities", "/services/oauth2/token", idp),
        FakeService("workday", "/ccx/api/workers/me", "/ccx/oauth2/token", idp),
    ]
    closed = bind_loopback()
    closed_url = url_of(closed)
    closed.close()  # nothing listens there any more: connection refused
    assert isinstance(fakes[0], FakeAS) and isinstance(fakes[2], FakeService)
    assert isinstance(fakes[3], FakeService)
    yield World(fakes[0], idp, fakes[2], fakes[3], closed_url, UpstreamIdentities())
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda fake: fake.server.stop() if fake.server else None, fakes))


@pytest.fixture(autouse=True)
def clean_world(world: World) -> Iterator[None]:
    world.reset()
    yield
    world.reset()


def service_config(
    fake: FakeService, tool: str, action: str, model: str, dpop: bool = False
) -> DownstreamService:
    scopes = ("api",) if model == TOKEN_EXCHANGE else ("workers:read",)
    extra = ("full", "web") if model == TOKEN_EXCHANGE else ("workers:write",)
    return DownstreamService(
        name=fake.name,
        tool=tool,
        action=action,
        model=model,
        base_url=fake.url,
        resource=fake.resource,
        api_url=fake.api_url,
        token_endpoint=fake.token_endpoint,
        scopes=scopes,
        all_scopes=scopes + extra,
        client_id="mcp-deployment",
        client_secret="mcp-deployment-secret",
        static_key=FakeService.STATIC_KEY,
        dpop=dpop,
    )


@dataclass
class Mcp:
    settings: ReferenceSettings
    server: ServerThread
    world: World

    @property
    def url(self) -> str:
        return self.settings.mcp_url

    def token(self, sub: str, client_id: str = "client-1") -> str:
        return self.world.authorization_server.mint(self.url, sub, client_id)

    def audit(self, since: int = 0) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.server.url}/_audit",
            params={"since": since},
            headers={"Authorization": f"Bearer {AUDIT_TOKEN}"},
            trust_env=False,
        )
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events


@pytest.fixture(scope="module")
def mcp_factory(world: World) -> Iterator[Callable[..., Mcp]]:
    started: dict[tuple[frozenset[str], bool], Mcp] = {}
    ghost = DownstreamService(
        name="ghost",
        tool="ghost-connector",
        action="read",
        model=TOKEN_EXCHANGE,
        base_url=world.closed_port_url,
        resource=f"{world.closed_port_url}/api",
        api_url=f"{world.closed_port_url}/api/data",
        token_endpoint=f"{world.closed_port_url}/token",
        scopes=("api",),
        all_scopes=("api",),
        client_id="mcp-deployment",
        client_secret="mcp-deployment-secret",
        static_key=FakeService.STATIC_KEY,
    )

    def make(*defects: str, dpop: bool = False) -> Mcp:
        """A reference MCP server with `defects` on; `dpop`: Workday requires DPoP."""
        key = (frozenset(defects), dpop)
        if key not in started:
            sock = bind_loopback()
            settings = ReferenceSettings(
                issuer=world.authorization_server.url,
                mcp_url=f"{url_of(sock)}/mcp",
                second_resource="http://127.0.0.1:1/other",
                idp_issuer=world.idp.url,
                defects=frozenset(defects),
                audit_token=AUDIT_TOKEN,
                downstream=(
                    service_config(world.salesforce, SF_TOOL, SF_ACTION, TOKEN_EXCHANGE),
                    service_config(world.workday, WD_TOOL, WD_ACTION, ID_JAG, dpop=dpop),
                    ghost,
                ),
            )
            app = create_app(settings, world.upstream)
            started[key] = Mcp(settings, ServerThread(app, sock, "mcp").start(), world)
        return started[key]

    yield make
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda mcp: mcp.server.stop(), started.values()))


@pytest.fixture(scope="module")
def mcp(mcp_factory: Callable[..., Mcp]) -> Mcp:
    return mcp_factory()


@pytest.fixture()
def http() -> Iterator[httpx.Client]:
    transport = httpx.HTTPTransport(socket_options=NO_DELAY)
    with httpx.Client(timeout=10, trust_env=False, transport=transport) as client:
        yield client


# --- MCP client helpers --------------------------------------------------------------------


def post(
    http: httpx.Client, mcp: Mcp, body: dict[str, Any], token: str, session: str | None = None
) -> httpx.Response:
    headers = {**ACCEPT, "Authorization": f"Bearer {token}"}
    if session is not None:
        headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": PROTOCOL}
    return http.post(mcp.url, json=body, headers=headers)


def open_session(http: httpx.Client, mcp: Mcp, token: str) -> str:
    response = post(http, mcp, INITIALIZE, token)
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert post(http, mcp, initialized, token, session).status_code == 202
    return session


def call(
    http: httpx.Client,
    mcp: Mcp,
    token: str,
    tool: str,
    action: str,
    session: str | None = None,
) -> httpx.Response:
    session = session or open_session(http, mcp, token)
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {"action": action}},
    }
    return post(http, mcp, body, token, session)


def tool_result(response: httpx.Response) -> tuple[bool, str]:
    """(isError, text) of a tools/call answered over HTTP 200."""
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    return bool(result.get("isError")), result["content"][0]["text"]


def fetch_data(http: httpx.Client, mcp: Mcp, sub: str, tool: str, action: str) -> Any:
    is_error, text = tool_result(call(http, mcp, mcp.token(sub), tool, action))
    assert not is_error, text
    return httpx.Response(200, text=text).json()


# --- the conformant server -----------------------------------------------------------------


def test_connector_tools_are_listed(http: httpx.Client, mcp: Mcp) -> None:
    token = mcp.token("alice")
    session = open_session(http, mcp, token)
    listed = post(http, mcp, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, token, session)
    tools = {tool["name"]: tool for tool in listed.json()["result"]["tools"]}
    assert {SF_TOOL, WD_TOOL, "ghost-connector", "echo"} <= set(tools)
    assert tools[SF_TOOL]["inputSchema"]["required"] == ["action"]


def test_token_exchange_model(http: httpx.Client, mcp: Mcp, world: World) -> None:
    user = new_user("alice")
    inbound = mcp.token(user)
    is_error, text = tool_result(call(http, mcp, inbound, SF_TOOL, SF_ACTION))
    assert not is_error, text
    result = httpx.Response(200, text=text).json()
    assert result["data"] == {"records": [{"id": "salesforce-1", "owner": user}]}
    assert result["service"] == "salesforce" and result["user"] == user

    (exchange,) = world.authorization_server.of_kind("token")
    assert exchange["client"] == ("reference-mcp", "reference-mcp-secret")
    assert exchange["form"] == {
        "grant_type": TE,
        "subject_token": inbound,
        "subject_token_type": AT,
        "resource": world.salesforce.resource,
        "scope": "api",
    }
    (api_call,) = world.salesforce.of_kind("api")
    assert api_call["scheme"] == "Bearer"
    assert api_call["token"] != inbound  # MCP security best practices: no passthrough
    assert api_call["claims"]["aud"] == world.salesforce.resource
    assert api_call["claims"]["sub"] == user

    events = [e for e in mcp.audit() if e["user"] == user]
    assert [(e["event"], e["outcome"]) for e in events] == [
        ("token_exchange", "success"),
        ("downstream_call", "success"),
    ]
    for event in events:
        assert event["client_id"] == "client-1"
        assert event["service"] == "salesforce"
        assert event["scopes"] == ["api"]
        assert event["time"].endswith("Z")
        assert inbound not in event["detail"] and api_call["token"] not in event["detail"]


def test_id_jag_model(http: httpx.Client, mcp: Mcp, world: World) -> None:
    user = world.sign_in(new_user("bob"))
    data = fetch_data(http, mcp, user, WD_TOOL, WD_ACTION)
    assert data["data"]["records"][0]["owner"] == user

    (idjag_request,) = world.idp.of_kind("token")
    assert idjag_request["client"] == ("reference-as", "reference-as-secret")
    assert idjag_request["form"] == {
        "grant_type": TE,
        "requested_token_type": IDJAG,
        "subject_token": world.upstream.id_token(user),
        "subject_token_type": IDT,
        "audience": world.workday.url,
        "resource": world.workday.resource,
        "scope": "workers:read",
    }
    (redemption,) = world.workday.of_kind("token")
    assert redemption["client"] == ("mcp-deployment", "mcp-deployment-secret")
    assert redemption["form"]["grant_type"] == JWTB
    assert redemption["assertion_claims"]["aud"] == world.workday.url
    (api_call,) = world.workday.of_kind("api")
    assert api_call["claims"]["iss"] == world.workday.url
    assert api_call["claims"]["aud"] == world.workday.resource
    events = [(e["event"], e["service"], e["outcome"]) for e in mcp.audit() if e["user"] == user]
    assert events == [
        ("token_exchange", "workday", "success"),
        ("downstream_call", "workday", "success"),
    ]


def test_id_jag_model_without_id_token(http: httpx.Client, mcp: Mcp, world: World) -> None:
    user = new_user("carol")  # never signed in through the IdP
    is_error, text = tool_result(call(http, mcp, mcp.token(user), WD_TOOL, WD_ACTION))
    assert is_error and "sign in again" in text
    assert world.idp.log == [] and world.workday.log == []


def test_wrong_action_is_a_tool_error(http: httpx.Client, mcp: Mcp, world: World) -> None:
    is_error, text = tool_result(call(http, mcp, mcp.token("alice"), SF_TOOL, "delete_all"))
    assert is_error and SF_ACTION in text
    assert world.authorization_server.log == [] and world.salesforce.log == []


def test_tokens_are_cached_per_user_and_service(http: httpx.Client, mcp: Mcp, world: World) -> None:
    first, second = world.sign_in(new_user()), world.sign_in(new_user())
    for sub in (first, first, second, second):
        fetch_data(http, mcp, sub, SF_TOOL, SF_ACTION)
        fetch_data(http, mcp, sub, WD_TOOL, WD_ACTION)
    assert len(world.authorization_server.of_kind("token")) == 2
    assert len(world.idp.of_kind("token")) == 2
    assert len(world.workday.of_kind("token")) == 2
    for service in (world.salesforce, world.workday):
        owners = [entry["claims"]["sub"] for entry in service.of_kind("api")]
        assert owners == [first, first, second, second]
    exchanges = [e for e in mcp.audit() if e["event"] == "token_exchange"]
    assert {(e["user"], e["service"]) for e in exchanges} >= {
        (first, "salesforce"),
        (second, "workday"),
    }


def test_token_cache_expiry() -> None:
    cache = TokenCache()
    cache.put(("u", "long"), DownstreamToken("a", (), usable_until(300)))
    cache.put(("u", "short"), DownstreamToken("b", (), usable_until(5)))
    cache.put(("u", "unknown"), DownstreamToken("c", (), usable_until(None)))
    cache.put(("u", "expired"), DownstreamToken("d", (), usable_until(-1)))
    assert cache.get(("u", "long")) is not None and cache.get(("u", "short")) is not None
    assert cache.get(("u", "unknown")) is None and cache.get(("u", "expired")) is None
    until = usable_until(300)
    assert until is not None and 269 < until - time.time() <= 270  # 30 s before expiry
    cache.put(("u", "brief"), DownstreamToken("e", (), usable_until(0.1)))
    time.sleep(0.1)
    assert cache.get(("u", "brief")) is None
    cache.drop(("u", "long"))
    assert cache.get(("u", "long")) is None


@pytest.mark.parametrize(
    ("mode", "tool", "action", "status"),
    [
        ("server_error", SF_TOOL, SF_ACTION, "HTTP 500"),
        ("unavailable", SF_TOOL, SF_ACTION, "HTTP 503"),
        ("none", "ghost-connector", "read", "connection failed"),  # nothing listens there
    ],
)
def test_downstream_failure_is_a_clean_tool_error(
    mode: str, tool: str, action: str, status: str, http: httpx.Client, mcp: Mcp, world: World
) -> None:
    user = new_user()
    inbound = mcp.token(user)
    world.salesforce.mode = mode
    response = call(http, mcp, inbound, tool, action)
    is_error, text = tool_result(response)
    assert is_error
    assert "unavailable right now" in text and status in text and "no data was returned" in text
    (exchange,) = world.authorization_server.of_kind("token")
    for secret in (inbound, exchange["issued"], CANARY, "Traceback"):
        assert secret not in response.text
    failure = [e for e in mcp.audit() if e["user"] == user and e["event"] == "downstream_call"]
    assert [e["outcome"] for e in failure] == ["failure"]
    assert CANARY not in failure[0]["detail"]

    world.salesforce.mode = "none"  # the server keeps serving
    assert fetch_data(http, mcp, user, SF_TOOL, SF_ACTION)["data"]["records"]


def test_refused_exchange_is_a_tool_error(http: httpx.Client, mcp: Mcp, world: World) -> None:
    user = new_user()
    world.authorization_server.mode = "refuse"
    is_error, text = tool_result(call(http, mcp, mcp.token(user), SF_TOOL, SF_ACTION))
    assert is_error and "salesforce" in text and "HTTP 400" in text and "fake" not in text
    assert world.salesforce.log == []
    (event,) = [e for e in mcp.audit() if e["user"] == user]
    assert (event["event"], event["outcome"]) == ("token_exchange", "failure")
    assert "invalid_target" in event["detail"]


def test_api_401_drops_the_cached_token(http: httpx.Client, mcp: Mcp, world: World) -> None:
    user = new_user()
    fetch_data(http, mcp, user, SF_TOOL, SF_ACTION)
    world.salesforce.mode = "unauthorized"
    is_error, text = tool_result(call(http, mcp, mcp.token(user), SF_TOOL, SF_ACTION))
    assert is_error and "HTTP 401" in text
    world.salesforce.mode = "none"
    fetch_data(http, mcp, user, SF_TOOL, SF_ACTION)
    # The first call's token, the retry's fresh one, then one more after both were refused.
    assert len(world.authorization_server.of_kind("token")) == 3


@pytest.mark.parametrize(
    ("tool", "action", "service", "acquisitions"),
    [
        (SF_TOOL, SF_ACTION, "salesforce", "authorization_server"),
        (WD_TOOL, WD_ACTION, "workday", "idp"),
    ],
)
def test_expired_token_is_renewed_and_retried_once(
    tool: str,
    action: str,
    service: str,
    acquisitions: str,
    http: httpx.Client,
    mcp: Mcp,
    world: World,
) -> None:
    """RFC 6750 §3.1: a 401 ends the cached token; a fresh one for the same user, one retry."""
    user = world.sign_in(new_user())
    fetch_data(http, mcp, user, tool, action)
    fake: FakeService = getattr(world, service)
    fake.refuse = 1
    data = fetch_data(http, mcp, user, tool, action)
    assert data["data"]["records"][0]["owner"] == user
    first, refused, retried = fake.of_kind("api")
    assert refused["token"] == first["token"] != retried["token"]
    assert retried["claims"]["sub"] == user and retried["scheme"] == "Bearer"
    assert len(getattr(world, acquisitions).of_kind("token")) == 2
    assert _events(mcp, user) == [
        ("token_exchange", "success"),
        ("downstream_call", "success"),
        ("downstream_call", "failure"),
        ("token_exchange", "success"),
        ("downstream_call", "success"),
    ]


def test_second_401_is_a_tool_error(http: httpx.Client, mcp: Mcp, world: World) -> None:
    """Never a loop, never another credential: two attempts, then the tool error."""
    user = new_user()
    world.salesforce.refuse = 100
    response = call(http, mcp, mcp.token(user), SF_TOOL, SF_ACTION)
    is_error, text = tool_result(response)
    assert is_error and "HTTP 401" in text
    api_calls = world.salesforce.of_kind("api")
    assert len(api_calls) == 2
    assert {c["claims"]["sub"] for c in api_calls} == {user}
    assert len({c["token"] for c in api_calls}) == 2
    assert FakeService.STATIC_KEY not in response.text
    assert len(world.authorization_server.of_kind("token")) == 2


def test_audit_endpoint(http: httpx.Client, mcp: Mcp, world: World) -> None:
    audit_url = f"{mcp.server.url}/_audit"
    assert http.get(audit_url).status_code == 401
    assert http.get(audit_url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    inbound = mcp.token("alice")  # an MCP access token is not the audit token
    assert http.get(audit_url, headers={"Authorization": f"Bearer {inbound}"}).status_code == 401
    fetch_data(http, mcp, new_user(), SF_TOOL, SF_ACTION)
    auth = {"Authorization": f"Bearer {AUDIT_TOKEN}"}
    everything = http.get(audit_url, headers=auth).json()
    assert everything["last"] == everything["events"][-1]["seq"] >= 2
    recent = http.get(audit_url, params={"since": everything["last"] - 1}, headers=auth).json()
    assert [e["seq"] for e in recent["events"]] == [everything["last"]]
    assert http.get(audit_url, params={"since": "x"}, headers=auth).status_code == 400


# --- defect switches -----------------------------------------------------------------------


def test_token_passthrough(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-token-passthrough")
    inbound = mcp.token("alice")
    assert not tool_result(call(http, mcp, inbound, SF_TOOL, SF_ACTION))[0]
    assert world.salesforce.of_kind("api")[0]["token"] == inbound
    assert world.authorization_server.log == []
    assert [e["event"] for e in mcp.audit()] == ["downstream_call"]


def test_static_api_key(http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World) -> None:
    mcp = mcp_factory("hop2-static-api-key")
    for sub in ("alice", "bob"):
        fetch_data(http, mcp, sub, SF_TOOL, SF_ACTION)
        fetch_data(http, mcp, sub, WD_TOOL, WD_ACTION)
    for service in (world.salesforce, world.workday):
        assert {e["token"] for e in service.of_kind("api")} == {FakeService.STATIC_KEY}
    assert world.authorization_server.log == [] and world.idp.log == []


def test_token_cache_not_per_user(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-token-cache-not-per-user")
    first, second = world.sign_in(new_user()), world.sign_in(new_user())
    for sub in (first, second):
        fetch_data(http, mcp, sub, SF_TOOL, SF_ACTION)
        fetch_data(http, mcp, sub, WD_TOOL, WD_ACTION)
    assert len(world.authorization_server.of_kind("token")) == 1
    assert len(world.idp.of_kind("token")) == 1
    for service in (world.salesforce, world.workday):
        assert [e["claims"]["sub"] for e in service.of_kind("api")] == [first, first]


def test_overbroad_downstream_scope(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-overbroad-downstream-scope")
    user = world.sign_in(new_user())
    fetch_data(http, mcp, user, SF_TOOL, SF_ACTION)
    fetch_data(http, mcp, user, WD_TOOL, WD_ACTION)
    assert world.authorization_server.log[0]["form"]["scope"] == "api full web"
    assert world.idp.log[0]["form"]["scope"] == "workers:read workers:write"


def test_idjag_reused_downstream(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-idjag-reused-downstream")
    user = world.sign_in(new_user())
    is_error, text = tool_result(call(http, mcp, mcp.token(user), WD_TOOL, WD_ACTION))
    assert is_error and "HTTP 400" in text
    form = world.idp.log[0]["form"]
    assert (form["audience"], form["resource"]) == (mcp.settings.issuer, mcp.url)
    (redemption,) = world.workday.of_kind("token")
    assert redemption["assertion_claims"]["aud"] == mcp.settings.issuer


def test_failure_as_transport_error(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-failure-as-transport-error")
    token = mcp.token("alice")
    session = open_session(http, mcp, token)
    world.salesforce.mode = "unavailable"
    failed = call(http, mcp, token, SF_TOOL, SF_ACTION, session)
    assert failed.status_code == 500 and "result" not in failed.text
    world.salesforce.mode = "none"
    assert not tool_result(call(http, mcp, token, SF_TOOL, SF_ACTION, session))[0]


def test_failure_leaks_detail(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-failure-leaks-detail")
    world.salesforce.mode = "server_error"
    is_error, text = tool_result(call(http, mcp, mcp.token("alice"), SF_TOOL, SF_ACTION))
    assert is_error and CANARY in text
    assert world.salesforce.of_kind("api")[0]["token"] in text


def test_outage_blocks_other_calls(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-outage-blocks-other-calls")
    user = world.sign_in(new_user())
    token = mcp.token(user)
    session = open_session(http, mcp, token)
    echo = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}},
    }
    world.salesforce.mode = "unavailable"
    assert tool_result(call(http, mcp, token, SF_TOOL, SF_ACTION, session))[0]
    assert post(http, mcp, echo, token, session).status_code == 503
    assert call(http, mcp, token, WD_TOOL, WD_ACTION, session).status_code == 503
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    assert post(http, mcp, listing, token, session).status_code == 503
    assert http.get(mcp.url, headers={"Authorization": f"Bearer {token}"}).status_code == 503
    assert tool_result(call(http, mcp, token, SF_TOOL, SF_ACTION))[0]  # still down
    world.salesforce.mode = "none"
    # A new session can still be opened for the recovery call, whose success clears it.
    assert not tool_result(call(http, mcp, token, SF_TOOL, SF_ACTION))[0]
    assert tool_result(post(http, mcp, echo, token, session)) == (False, "hi")

    conformant = mcp_factory()
    other = conformant.token(user)
    world.salesforce.mode = "unavailable"
    assert tool_result(call(http, conformant, other, SF_TOOL, SF_ACTION))[0]
    assert not tool_result(call(http, conformant, other, WD_TOOL, WD_ACTION))[0]


def _events(mcp: Mcp, user: str) -> list[tuple[str, str]]:
    return [(e["event"], e["outcome"]) for e in mcp.audit() if e["user"] == user]


def test_audit_defects(http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World) -> None:
    def success_then_failure(mcp: Mcp) -> list[tuple[str, str]]:
        user = new_user()
        world.salesforce.mode = "none"
        fetch_data(http, mcp, user, SF_TOOL, SF_ACTION)
        world.salesforce.mode = "unavailable"
        assert tool_result(call(http, mcp, mcp.token(user), SF_TOOL, SF_ACTION))[0]
        return _events(mcp, user)

    success, exchange, call_ok, call_fail = (
        ("downstream_call", "success"),
        ("token_exchange", "success"),
        ("downstream_call", "success"),
        ("downstream_call", "failure"),
    )
    assert success_then_failure(mcp_factory()) == [exchange, call_ok, call_fail]
    unlogged_exchange = mcp_factory("audit-exchange-not-logged")
    assert success_then_failure(unlogged_exchange) == [success, call_fail]
    unlogged_calls = mcp_factory("audit-downstream-call-not-logged")
    assert success_then_failure(unlogged_calls) == [exchange, call_fail]
    unlogged_failures = mcp_factory("audit-failures-not-logged")
    assert success_then_failure(unlogged_failures) == [exchange, call_ok]


def test_rs_accepts_idp_assertions(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    confused, conformant = mcp_factory("rs-accepts-idp-assertions"), mcp_factory()
    for mcp in (confused, conformant):
        id_jag = world.idp.id_jag("alice", mcp.settings.issuer, mcp.url, BASIC_SCOPE)
        id_token = world.idp.id_token("alice")
        for assertion in (id_jag, id_token):
            status = post(http, mcp, INITIALIZE, assertion).status_code
            assert status == (200 if mcp is confused else 401)
    assert post(http, confused, INITIALIZE, confused.token("alice")).status_code == 200


# --- DPoP to services that require it (RFC 9449) --------------------------------------------


def _proof_claims(proof: str) -> dict[str, Any]:
    return dict(jwt.decode(proof, options={"verify_signature": False}))


def test_dpop_service_gets_the_servers_own_proofs(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    """§5: the jwt-bearer request carries a proof; §7.1: each API call the DPoP scheme and a
    fresh proof for that request, bound to the token's key, never the client's token."""
    mcp = mcp_factory(dpop=True)
    user = world.sign_in(new_user())
    inbound = mcp.token(user)
    for _ in range(2):
        assert not tool_result(call(http, mcp, inbound, WD_TOOL, WD_ACTION))[0]
    (redemption,) = world.workday.of_kind("token")
    verify_proof(redemption["dpop"], method="POST", url=world.workday.token_endpoint)
    calls = world.workday.of_kind("api")
    assert len(calls) == 2 and calls[0]["token"] == calls[1]["token"]
    for entry in calls:
        assert entry["scheme"] == "DPoP"
        jkt = entry["claims"]["cnf"]["jkt"]
        verify_proof(
            entry["dpop"],
            method="GET",
            url=world.workday.api_url,
            access_token=entry["token"],
            jkt=jkt,
        )
    assert len({_proof_claims(c["dpop"])["jti"] for c in calls}) == 2
    # Salesforce takes Bearer tokens: no proof goes there.
    fetch_data(http, mcp, user, SF_TOOL, SF_ACTION)
    (sf_call,) = world.salesforce.of_kind("api")
    assert sf_call["scheme"] == "Bearer" and sf_call["dpop"] is None


def test_dpop_retry_gets_a_new_bound_token(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory(dpop=True)
    user = world.sign_in(new_user())
    fetch_data(http, mcp, user, WD_TOOL, WD_ACTION)
    world.workday.refuse = 1
    fetch_data(http, mcp, user, WD_TOOL, WD_ACTION)
    first, refused, retried = world.workday.of_kind("api")
    assert retried["token"] != refused["token"] and retried["scheme"] == "DPoP"
    assert all(entry["dpop"] for entry in world.workday.of_kind("token"))
    assert len({_proof_claims(e["dpop"])["jti"] for e in (first, refused, retried)}) == 3


# --- defect switches: expiry and downstream DPoP ----------------------------------------------


def test_no_retry_on_expiry(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-no-retry-on-expiry")
    user = new_user()
    fetch_data(http, mcp, user, SF_TOOL, SF_ACTION)
    world.salesforce.refuse = 1
    is_error, text = tool_result(call(http, mcp, mcp.token(user), SF_TOOL, SF_ACTION))
    assert is_error and "HTTP 401" in text
    assert len(world.salesforce.of_kind("api")) == 2
    assert len(world.authorization_server.of_kind("token")) == 1


def test_retry_loop(http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World) -> None:
    mcp = mcp_factory("hop2-retry-loop")
    world.salesforce.refuse = 100
    assert tool_result(call(http, mcp, mcp.token(new_user()), SF_TOOL, SF_ACTION))[0]
    assert len(world.salesforce.of_kind("api")) == 6
    assert len(world.authorization_server.of_kind("token")) == 6


def test_retry_falls_back_to_api_key(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-retry-falls-back-to-api-key")
    user = new_user()
    world.salesforce.refuse = 1
    data = fetch_data(http, mcp, user, SF_TOOL, SF_ACTION)
    assert data["data"]["records"][0]["owner"] == "integration"
    refused, fallback = world.salesforce.of_kind("api")
    assert refused["claims"]["sub"] == user and fallback["token"] == FakeService.STATIC_KEY


def test_dpop_proof_reused(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-dpop-proof-reused", dpop=True)
    user = world.sign_in(new_user())
    for _ in range(2):
        fetch_data(http, mcp, user, WD_TOOL, WD_ACTION)
    first, second = world.workday.of_kind("api")
    assert first["dpop"] == second["dpop"]


def test_dpop_proof_relayed(
    http: httpx.Client, mcp_factory: Callable[..., Mcp], world: World
) -> None:
    mcp = mcp_factory("hop2-dpop-proof-relayed", dpop=True)
    user = world.sign_in(new_user())
    inbound = mcp.token(user)
    assert not tool_result(call(http, mcp, inbound, SF_TOOL, SF_ACTION))[0]
    (sf_call,) = world.salesforce.of_kind("api")
    # A proof for the inbound MCP request, bound to the client's token.
    verify_proof(sf_call["dpop"], method="POST", url=mcp.url, access_token=inbound)
    fetch_data(http, mcp, user, WD_TOOL, WD_ACTION)  # the DPoP service is served as before
    (wd_call,) = world.workday.of_kind("api")
    assert _proof_claims(wd_call["dpop"])["htu"] == world.workday.api_url
