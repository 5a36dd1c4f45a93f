"""The reference MCP server over real loopback HTTP, against a fake authorization server key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from conformance.servers import ServerThread, bind_loopback, url_of
from reference.mcp_server import create_app
from reference.settings import BASIC_SCOPE, PRIVILEGED_SCOPE, PRIVILEGED_TOOL, ReferenceSettings

KID = "as-key-1"
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
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def tool_call(name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments or {}},
    }


# --- fake authorization servers ------------------------------------------------------------


class FakeAS:
    """Serves a JWKS (and RFC 8414 metadata naming it) for one RSA key; mints tokens."""

    def __init__(self, kid: str = KID) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sock = bind_loopback()
        self.issuer = url_of(self.sock)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwks = {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}
        metadata = {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"}

        async def jwks_endpoint(request: Any) -> JSONResponse:
            return JSONResponse(jwks)

        async def metadata_endpoint(request: Any) -> JSONResponse:
            return JSONResponse(metadata)

        app = Starlette(
            routes=[
                Route("/jwks", jwks_endpoint),
                Route("/.well-known/oauth-authorization-server", metadata_endpoint),
            ]
        )
        self.server = ServerThread(app, self.sock, f"fake-as-{kid}").start()

    def mint(
        self,
        audience: str | list[str],
        *,
        scope: str = BASIC_SCOPE,
        headers: dict[str, Any] | None = None,
        algorithm: str = "RS256",
        key: Any = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": audience,
            "client_id": "client-1",
            "scope": scope,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        header = {"typ": "at+jwt", "kid": self.kid, **(headers or {})}
        signing_key = self.key if key is None else key
        if algorithm == "none":
            signing_key = None
        return jwt.encode(payload, signing_key, algorithm=algorithm, headers=header)


@pytest.fixture(scope="module")
def fake_as() -> Iterator[FakeAS]:
    server = FakeAS()
    yield server
    server.server.stop()


@pytest.fixture(scope="module")
def attacker_as() -> Iterator[FakeAS]:
    server = FakeAS(kid="attacker-key")
    yield server
    server.server.stop()


# --- MCP servers ---------------------------------------------------------------------------


class McpServer:
    def __init__(self, settings: ReferenceSettings, server: ServerThread) -> None:
        self.settings = settings
        self.server = server
        self.url = settings.mcp_url
        self.prm_url = f"{server.url}/.well-known/oauth-protected-resource/mcp"


@pytest.fixture(scope="module")
def mcp_factory(fake_as: FakeAS) -> Iterator[Callable[..., McpServer]]:
    started: dict[frozenset[str], McpServer] = {}

    def make(*defects: str) -> McpServer:
        key = frozenset(defects)
        if key not in started:
            sock = bind_loopback()
            settings = ReferenceSettings(
                issuer=fake_as.issuer,
                mcp_url=f"{url_of(sock)}/mcp",
                second_resource="http://127.0.0.1:1/other",
                idp_issuer="http://127.0.0.1:1/idp",
                defects=key,
            )
            thread = ServerThread(create_app(settings), sock, "reference-mcp").start()
            started[key] = McpServer(settings, thread)
        return started[key]

    yield make
    with ThreadPoolExecutor() as pool:  # each stop takes ~0.15 s: stop them together
        list(pool.map(lambda server: server.server.stop(), started.values()))


@pytest.fixture(scope="module")
def mcp(mcp_factory: Callable[..., McpServer]) -> McpServer:
    return mcp_factory()


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as http:
        yield http


def post(
    http: httpx.Client,
    url: str,
    body: dict[str, Any],
    token: str | None = None,
    *,
    scheme: str = "Bearer",
    session: str | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    headers = dict(ACCEPT)
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}".strip()
    if session is not None:
        headers["Mcp-Session-Id"] = session
        headers["MCP-Protocol-Version"] = PROTOCOL
    return http.post(url, json=body, headers=headers, params=params)


def open_session(http: httpx.Client, url: str, token: str) -> str:
    response = post(http, url, INITIALIZE, token)
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    notified = http.post(
        url,
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={
            **ACCEPT,
            "Authorization": f"Bearer {token}",
            "Mcp-Session-Id": session,
            "MCP-Protocol-Version": PROTOCOL,
        },
    )
    assert notified.status_code == 202, notified.text
    return session


def challenge_params(response: httpx.Response) -> dict[str, str]:
    """A deliberately simple parser for the challenges this server emits (Bearer first)."""
    header = response.headers.get_list("www-authenticate")[0]
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer"
    params: dict[str, str] = {}
    for part in rest.split('", '):
        name, _, value = part.partition("=")
        params[name.strip()] = value.strip().strip('"')
    return params


def assert_invalid_token(response: httpx.Response, mcp: McpServer) -> None:
    assert response.status_code == 401, response.text
    params = challenge_params(response)
    assert params["error"] == "invalid_token"
    assert params["error_description"]
    assert params["resource_metadata"] == mcp.prm_url
    assert "result" not in response.json()


# --- conformant behaviour ------------------------------------------------------------------


def test_protected_resource_metadata(client: httpx.Client, mcp: McpServer, fake_as: FakeAS) -> None:
    response = client.get(mcp.prm_url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "resource": mcp.url,
        "authorization_servers": [fake_as.issuer],
        "scopes_supported": [BASIC_SCOPE, PRIVILEGED_SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "Reference MCP server",
        "dpop_signing_alg_values_supported": ["ES256", "RS256", "PS256"],
        "dpop_bound_access_tokens_required": False,
    }
    assert client.get(f"{mcp.server.url}/.well-known/oauth-protected-resource").status_code == 404


def test_missing_token_challenge(client: httpx.Client, mcp: McpServer) -> None:
    response = post(client, mcp.url, INITIALIZE)
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate")[0] == (
        f'Bearer scope="{BASIC_SCOPE}", resource_metadata="{mcp.prm_url}"'
    )
    assert "result" not in response.json()
    for method in ("GET", "DELETE"):
        other = client.request(method, mcp.url, headers={"Accept": "text/event-stream"})
        assert other.status_code == 401
        assert "error=" not in other.headers["www-authenticate"]


def test_valid_token_initialize_list_and_call(
    client: httpx.Client, mcp: McpServer, fake_as: FakeAS
) -> None:
    token = fake_as.mint(mcp.url)
    session = open_session(client, mcp.url, token)
    listed = post(client, mcp.url, TOOLS_LIST, token, session=session)
    assert listed.status_code == 200, listed.text
    names = {tool["name"] for tool in listed.json()["result"]["tools"]}
    assert names == {"echo", PRIVILEGED_TOOL}
    echoed = post(client, mcp.url, tool_call("echo", {"text": "hi"}), token, session=session)
    assert echoed.status_code == 200
    assert echoed.json()["result"]["content"][0]["text"] == "hi"


def test_audience_array_and_scheme_case(
    client: httpx.Client, mcp: McpServer, fake_as: FakeAS
) -> None:
    token = fake_as.mint([mcp.url, "http://127.0.0.1:1/other"])
    for scheme in ("bearer", "BEARER", "Bearer"):
        assert post(client, mcp.url, INITIALIZE, token, scheme=scheme).status_code == 200


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "no-audience",
        "wrong-issuer",
        "alg-none",
        "hs256",
        "bad-signature",
        "tampered",
        "typ-jwt",
        "no-typ",
        "unknown-kid",
        "garbage",
        "three-garbage-parts",
        "empty",
    ],
)
def test_invalid_tokens_get_invalid_token(
    case: str, client: httpx.Client, mcp: McpServer, fake_as: FakeAS, attacker_as: FakeAS
) -> None:
    now = int(time.time())
    aud = mcp.url
    tokens: dict[str, Callable[[], str]] = {
        "expired": lambda: fake_as.mint(aud, iat=now - 7200, exp=now - 3600),
        "not-yet-valid": lambda: fake_as.mint(aud, nbf=now + 3600),
        "wrong-audience": lambda: fake_as.mint("http://127.0.0.1:1/other"),
        "no-audience": lambda: fake_as.mint(None),  # type: ignore[arg-type]
        "wrong-issuer": lambda: fake_as.mint(aud, iss="http://127.0.0.1:1/elsewhere"),
        "alg-none": lambda: fake_as.mint(aud, algorithm="none"),
        "hs256": lambda: fake_as.mint(aud, algorithm="HS256", key="k" * 32),
        "bad-signature": lambda: fake_as.mint(aud, key=attacker_as.key),
        "tampered": lambda: _tamper(fake_as.mint(aud)),
        "typ-jwt": lambda: fake_as.mint(aud, headers={"typ": "JWT"}),
        "no-typ": lambda: fake_as.mint(aud, headers={"typ": None}),
        "unknown-kid": lambda: fake_as.mint(aud, headers={"kid": "nope"}),
        "garbage": lambda: "not-a-token",
        "three-garbage-parts": lambda: "a.b.c",
        "empty": lambda: "",
    }
    assert_invalid_token(post(client, mcp.url, INITIALIZE, tokens[case]()), mcp)


def _tamper(token: str) -> str:
    """Swap the payload for one granting more scope, keeping the original signature."""
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["scope"] = f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}"
    forged = jwt.encode(claims, None, algorithm="none").split(".")[1]
    return f"{header}.{forged}.{signature}"


def test_insufficient_scope(client: httpx.Client, mcp: McpServer, fake_as: FakeAS) -> None:
    basic = fake_as.mint(mcp.url)
    session = open_session(client, mcp.url, basic)
    denied = post(client, mcp.url, tool_call(PRIVILEGED_TOOL), basic, session=session)
    assert denied.status_code == 403
    params = challenge_params(denied)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}"
    assert params["resource_metadata"] == mcp.prm_url
    assert "result" not in denied.json()

    admin = fake_as.mint(mcp.url, scope=f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}")
    admin_session = open_session(client, mcp.url, admin)
    allowed = post(client, mcp.url, tool_call(PRIVILEGED_TOOL), admin, session=admin_session)
    assert allowed.status_code == 200, allowed.text
    assert "admin report" in allowed.json()["result"]["content"][0]["text"]

    no_scope = fake_as.mint(mcp.url, scope="other")
    refused = post(client, mcp.url, INITIALIZE, no_scope)
    assert refused.status_code == 403
    assert challenge_params(refused)["scope"] == BASIC_SCOPE


def test_query_token_ignored_and_double_presentation(
    client: httpx.Client, mcp: McpServer, fake_as: FakeAS
) -> None:
    token = fake_as.mint(mcp.url)
    ignored = post(client, mcp.url, INITIALIZE, params={"access_token": token})
    assert ignored.status_code == 401
    assert "error=" not in ignored.headers["www-authenticate"]
    both = post(client, mcp.url, INITIALIZE, token, params={"access_token": token})
    assert both.status_code == 400
    assert challenge_params(both)["error"] == "invalid_request"


def test_form_body_token_ignored(client: httpx.Client, mcp: McpServer, fake_as: FakeAS) -> None:
    response = client.post(mcp.url, data={"access_token": fake_as.mint(mcp.url)})
    assert response.status_code == 401


def test_session_never_replaces_token(
    client: httpx.Client, mcp: McpServer, fake_as: FakeAS
) -> None:
    token = fake_as.mint(mcp.url)
    session = open_session(client, mcp.url, token)
    assert post(client, mcp.url, TOOLS_LIST, session=session).status_code == 401
    expired = fake_as.mint(mcp.url, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    assert_invalid_token(post(client, mcp.url, TOOLS_LIST, expired, session=session), mcp)


def test_other_principal_cannot_use_session(
    client: httpx.Client, mcp: McpServer, fake_as: FakeAS
) -> None:
    session = open_session(client, mcp.url, fake_as.mint(mcp.url, sub="alice"))
    other = fake_as.mint(mcp.url, sub="bob")
    assert post(client, mcp.url, TOOLS_LIST, other, session=session).status_code == 404


# --- defect switches -----------------------------------------------------------------------


def test_prm_defects(client: httpx.Client, mcp_factory: Callable[..., McpServer]) -> None:
    hidden = mcp_factory("prm-not-discoverable")
    assert client.get(hidden.prm_url).status_code == 404
    hidden_root = f"{hidden.server.url}/.well-known/oauth-protected-resource"
    assert client.get(hidden_root).status_code == 404
    challenge = post(client, hidden.url, INITIALIZE).headers["www-authenticate"]
    assert "resource_metadata" not in challenge

    root = mcp_factory("prm-root-well-known-only")
    root_url = f"{root.server.url}/.well-known/oauth-protected-resource"
    assert client.get(root.prm_url).status_code == 404
    assert client.get(root_url).status_code == 200
    assert challenge_params(post(client, root.url, INITIALIZE))["resource_metadata"] == root_url

    plain = mcp_factory("prm-wrong-content-type", "prm-resource-trailing-slash")
    response = client.get(plain.prm_url)
    assert response.headers["content-type"].startswith("text/plain")
    assert response.json()["resource_documentation"] is None
    assert response.json()["resource"] == plain.url + "/"

    sparse = mcp_factory(
        "prm-no-authorization-servers", "prm-no-scopes-supported", "prm-resource-has-fragment"
    )
    document = client.get(sparse.prm_url).json()
    assert "authorization_servers" not in document and "scopes_supported" not in document
    assert document["resource"] == sparse.url + "#frag"

    extra = mcp_factory("prm-lists-unresolvable-as")
    assert client.get(extra.prm_url).json()["authorization_servers"][1] == (
        "http://127.0.0.1:9/nowhere"
    )


def test_challenge_defects(client: httpx.Client, mcp_factory: Callable[..., McpServer]) -> None:
    bare = mcp_factory("rs-401-without-challenge")
    response = post(client, bare.url, INITIALIZE)
    assert response.status_code == 401 and "www-authenticate" not in response.headers

    thin = mcp_factory("rs-challenge-without-resource-metadata", "rs-challenge-without-scope")
    assert post(client, thin.url, INITIALIZE).headers.get_list("www-authenticate")[0] == "Bearer"

    open_door = mcp_factory("rs-accepts-missing-token")
    assert post(client, open_door.url, INITIALIZE).status_code == 200


def test_token_check_defects(
    client: httpx.Client,
    mcp_factory: Callable[..., McpServer],
    fake_as: FakeAS,
) -> None:
    lax = mcp_factory("rs-ignores-expiry", "rs-ignores-audience", "rs-accepts-alg-none")
    now = int(time.time())
    for token in (
        fake_as.mint(lax.url, iat=now - 7200, exp=now - 3600),
        fake_as.mint(lax.url, nbf=now + 3600),
        fake_as.mint("http://127.0.0.1:1/other"),
        fake_as.mint(lax.url, algorithm="none"),
    ):
        assert post(client, lax.url, INITIALIZE, token).status_code == 200

    unsigned = mcp_factory("rs-skips-signature-check")
    assert post(client, unsigned.url, INITIALIZE, _tamper(fake_as.mint(unsigned.url))).is_success
    expired = fake_as.mint(unsigned.url, iat=now - 7200, exp=now - 3600)
    assert_invalid_token(post(client, unsigned.url, INITIALIZE, expired), unsigned)

    plain_jwt = mcp_factory("jwt-typ-plain-jwt")
    assert post(
        client, plain_jwt.url, INITIALIZE, fake_as.mint(plain_jwt.url, headers={"typ": "JWT"})
    ).is_success
    assert_invalid_token(
        post(
            client,
            plain_jwt.url,
            INITIALIZE,
            fake_as.mint(plain_jwt.url, headers={"typ": "id_token+jwt"}),
        ),
        plain_jwt,
    )
    any_typ = mcp_factory("rs-ignores-typ")
    assert post(
        client, any_typ.url, INITIALIZE, fake_as.mint(any_typ.url, headers={"typ": "JWT"})
    ).is_success


def test_trusts_token_issuer_defect(
    client: httpx.Client,
    mcp_factory: Callable[..., McpServer],
    attacker_as: FakeAS,
    mcp: McpServer,
) -> None:
    naive = mcp_factory("rs-trusts-token-issuer")
    assert post(client, naive.url, INITIALIZE, attacker_as.mint(naive.url)).status_code == 200
    assert_invalid_token(post(client, mcp.url, INITIALIZE, attacker_as.mint(mcp.url)), mcp)


def test_request_handling_defects(
    client: httpx.Client, mcp_factory: Callable[..., McpServer], fake_as: FakeAS
) -> None:
    crash = mcp_factory("rs-malformed-token-crash")
    crashed = post(client, crash.url, INITIALIZE, "not-a-token")
    assert crashed.status_code == 500
    assert crashed.text.startswith("Traceback")

    query = mcp_factory("rs-accepts-query-token")
    token = fake_as.mint(query.url)
    assert post(client, query.url, INITIALIZE, params={"access_token": token}).status_code == 200

    strict = mcp_factory("rs-scheme-case-sensitive")
    token = fake_as.mint(strict.url)
    assert post(client, strict.url, INITIALIZE, token).status_code == 200
    assert_invalid_token(post(client, strict.url, INITIALIZE, token, scheme="bearer"), strict)

    unscoped = mcp_factory("rs-no-scope-check")
    token = fake_as.mint(unscoped.url)
    session = open_session(client, unscoped.url, token)
    ran = post(client, unscoped.url, tool_call(PRIVILEGED_TOOL), token, session=session)
    assert ran.status_code == 200

    sticky = mcp_factory("rs-session-authenticates")
    session = open_session(client, sticky.url, fake_as.mint(sticky.url))
    assert post(client, sticky.url, TOOLS_LIST, session=session).status_code == 200
    assert post(client, sticky.url, TOOLS_LIST, session="unknown-session").status_code == 401
