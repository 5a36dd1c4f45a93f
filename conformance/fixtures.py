"""Session fixtures: the shared state of one certification run, built once per worker.

A fixture that cannot be built raises `PreconditionFailed` (every dependent check ends as
`error` with that cause) or skips (the feature is not offered), never a check failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance import embedded
from conformance.client_documents import ClientDocuments
from conformance.config import TargetConfig
from conformance.discovery import AuthorizationServer, Discovery, discover, json_object
from conformance.errors import PreconditionFailed
from conformance.evidence import Redactor
from conformance.flows import Flows, TokenSet
from conformance.http import HostScope, Http, recording
from conformance.oauth.clients import (
    Client,
    client_from_registration,
    register,
    registration_metadata,
)
from conformance.oauth.jwt import SigningKey
from conformance.servers import ServerThread, bind_loopback
from conformance.settings import RUN_SETTINGS
from conformance.verdict import Verdict


@dataclass
class Run:
    config: TargetConfig
    mcp_url: str
    http: Http
    redactor: Redactor
    deployment: embedded.EmbeddedDeployment | None


@pytest.fixture(scope="session")
def run(pytestconfig: pytest.Config) -> Iterator[Run]:
    settings = pytestconfig.stash[RUN_SETTINGS]
    deployment = None
    config = settings.config
    if settings.embedded:
        deployment = embedded.start(settings.defects)
        config = deployment.config
    mcp_url = settings.mcp_url or config.mcp_url
    assert mcp_url
    scope = HostScope()
    for url in (
        mcp_url,
        config.authorization_server,
        config.second_resource,
        config.token_signer,
        config.lifetime_hook,
        config.registration_endpoint,
        config.id_jag.idp_issuer if config.id_jag else None,
        config.id_jag.ras_issuer if config.id_jag else None,
        config.id_jag.idp_test_signer if config.id_jag else None,
        config.token_exchange.token_endpoint if config.token_exchange else None,
        config.audit.url if config.audit else None,
        *(url for s in config.downstream for url in (s.records_url, s.faults_url)),
    ):
        if url:
            scope.add_url(url)
    scope.hosts.update(h.lower() for h in config.allowed_hosts)
    redactor = Redactor()
    for user in config.users:
        redactor.remember(user.password)
    for client in config.preregistered.values():
        redactor.remember(client.client_secret)
    redactor.remember(config.initial_access_token)
    if config.token_exchange:
        redactor.remember(config.token_exchange.client.client_secret)
    if config.id_jag:
        for credentials in (
            config.id_jag.idp_client,
            config.id_jag.ras_client,
            config.id_jag.other_idp_client,
            config.id_jag.other_ras_client,
        ):
            redactor.remember(credentials.client_secret if credentials else None)
    if config.audit:
        redactor.remember(config.audit.bearer_token)
    http = Http(scope, redactor, settings.config.limits)  # `[limits]`, `--http-timeout`
    try:
        yield Run(config, mcp_url, http, redactor, deployment)
    finally:
        http.close()
        if deployment:
            deployment.stop()


@pytest.fixture(scope="session")
def discovery(run: Run) -> Discovery:
    return discover(
        run.http, run.mcp_url, run.config.protocol_version, run.config.authorization_server
    )


@pytest.fixture(scope="session")
def resource_metadata(discovery: Discovery) -> dict[str, Any]:
    if discovery.prm is None or discovery.prm.document is None:
        raise PreconditionFailed(
            "no protected resource metadata could be discovered: " + "; ".join(discovery.problems)
        )
    return discovery.prm.document


@pytest.fixture(scope="session")
def authorization_server(discovery: Discovery) -> AuthorizationServer:
    if discovery.authorization_server is None:
        raise PreconditionFailed(
            "no authorization server metadata could be discovered: " + "; ".join(discovery.problems)
        )
    return discovery.authorization_server


@pytest.fixture(scope="session")
def basic_scope(run: Run, discovery: Discovery) -> str | None:
    """The scope for ordinary use: configured, else the 401 challenge's hint."""
    if run.config.basic_scope:
        return run.config.basic_scope
    for challenge in discovery.challenge.challenges if discovery.challenge else []:
        if challenge.get("scope"):
            return challenge.get("scope")
    return None


@pytest.fixture(scope="session")
def registration_endpoint(run: Run, authorization_server: AuthorizationServer) -> str | None:
    return (
        authorization_server.endpoint("registration_endpoint") or run.config.registration_endpoint
    )


@dataclass
class Clients:
    public: Client
    second_public: Client
    confidential: Client | None


@dataclass
class Registration:
    response: httpx.Response
    body: dict[str, Any] | None
    client: Client | None  # None when the server refused the registration


def register_client(run: Run, endpoint: str, metadata: dict[str, Any], note: str) -> Registration:
    """Register a test client (RFC 7591 §3.1); its secret is remembered for redaction."""
    response = register(run.http, endpoint, metadata, run.config.initial_access_token, note=note)
    body = json_object(response)
    if response.status_code not in (200, 201) or not body or "client_id" not in body:
        return Registration(response, body, None)
    run.redactor.remember(body.get("client_secret"))
    return Registration(response, body, client_from_registration(body, metadata))


def register_test_client(
    run: Run, endpoint: str, redirect_uris: list[str], auth_method: str, role: str
) -> Client:
    """A test client the run needs; a refusal is a lost precondition."""
    metadata = registration_metadata(redirect_uris, auth_method)
    registration = register_client(run, endpoint, metadata, f"register {role} test client")
    if registration.client is None:
        raise PreconditionFailed(
            f"registering the {role} test client failed: {registration.response.status_code}"
        )
    return registration.client


def redirect_uris_for(run: Run) -> list[str]:
    """Two registered redirect URIs, so a check can show a code is bound to the one used."""
    return [run.config.redirect_uri, f"{run.config.redirect_uri.rstrip('/')}2"]


@pytest.fixture(scope="session")
def clients(run: Run, registration_endpoint: str | None) -> Clients:
    config = run.config
    if config.registration == "preregistered":
        pre = config.preregistered

        def client(role: str) -> Client | None:
            c = pre.get(role)
            if c is None:
                return None
            uris = c.redirect_uris or (config.redirect_uri,)
            return Client(c.client_id, tuple(uris), c.client_secret, c.auth_method)

        public = client("public")
        assert public is not None
        return Clients(public, client("second_public") or public, client("confidential"))
    if not registration_endpoint:
        raise PreconditionFailed(
            "the AS advertises no registration_endpoint and the target "
            "config names none (set client.registration_endpoint or "
            "use pre-registered clients)"
        )
    uris = redirect_uris_for(run)
    return Clients(
        public=register_test_client(run, registration_endpoint, uris, "none", "public"),
        second_public=register_test_client(
            run, registration_endpoint, uris, "none", "second public"
        ),
        confidential=register_test_client(
            run, registration_endpoint, uris, "client_secret_basic", "confidential"
        ),
    )


@pytest.fixture(scope="session")
def flows(
    pytestconfig: pytest.Config,
    run: Run,
    authorization_server: AuthorizationServer,
    basic_scope: str | None,
) -> Iterator[Flows]:
    flows = Flows(
        pytestconfig, run.config, run.http, authorization_server, run.mcp_url, basic_scope
    )
    yield flows
    flows.close()


@pytest.fixture(scope="session")
def alice_tokens(flows: Flows, clients: Clients) -> TokenSet:
    """Alice signed in through the public client, with a token for the MCP server."""
    return flows.tokens(clients.public, "alice")


@pytest.fixture(scope="session")
def second_resource(run: Run) -> str:
    if not run.config.second_resource:
        pytest.skip("no second resource configured (target.second_resource)")
    return run.config.second_resource


def signing_hook(run: Run, url: str, what: str) -> Callable[..., str]:
    """A test-only signing hook: POST {"claims", "header"} -> {"token"} (claims signed with the
    key of `what`), so checks can build expired, mistyped or mis-addressed tokens. The `run`
    fixture has put the configured URL in scope."""

    def sign(claims: dict[str, Any], **header: Any) -> str:
        response = run.http.post(url, json={"claims": claims, "header": header}, note=what)
        body = json_object(response)
        if response.status_code != 200 or not body or "token" not in body:
            raise PreconditionFailed(f"the {what} answered {response.status_code}")
        run.redactor.remember(body["token"])
        return str(body["token"])

    return sign


@pytest.fixture(scope="session")
def token_signer(run: Run) -> Callable[..., str]:
    """Signs claims with the target AS key through its test hook (skips when there is none)."""
    url = run.config.token_signer
    if not url:
        pytest.skip("no test token signer configured (hooks.token_signer)")
    return signing_hook(run, url, "test signer")


@dataclass
class AttackerIssuer:
    issuer: str
    key: SigningKey
    fetches: list[str]
    documents: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def serve(self, path: str, body: bytes, content_type: str) -> str:
        """Publish `body` at `path` (e.g. a JWK Set for a `jku` header) and return its URL;
        fetches of it are recorded in `fetches` like those of the metadata and JWKS."""
        self.documents[path] = (body, content_type)
        return f"{self.issuer}{path}"


@pytest.fixture(scope="session")
def attacker_issuer() -> Iterator[AttackerIssuer]:
    """An authorization server the target never listed: own key, own metadata, own JWKS.

    It listens on 127.0.0.2, a second loopback address, standing in for "somewhere else".
    """
    key = SigningKey("attacker-key")
    sock = bind_loopback("127.0.0.2")
    issuer = f"http://127.0.0.2:{sock.getsockname()[1]}"
    fetches: list[str] = []
    documents: dict[str, tuple[bytes, str]] = {}

    async def metadata(request: Request) -> JSONResponse:
        fetches.append(str(request.url))
        return JSONResponse(
            {
                "issuer": issuer,
                "jwks_uri": f"{issuer}/jwks",
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "response_types_supported": ["code"],
            }
        )

    async def jwks(request: Request) -> JSONResponse:
        fetches.append(str(request.url))
        return JSONResponse(key.jwks())

    async def document(request: Request) -> Response:
        fetches.append(str(request.url))
        if request.url.path not in documents:
            return Response(status_code=404)
        body, content_type = documents[request.url.path]
        return Response(body, media_type=content_type)

    app = Starlette(
        routes=[
            Route("/.well-known/oauth-authorization-server", metadata),
            Route("/jwks", jwks),
            Route("/{path:path}", document),
        ]
    )
    server = ServerThread(app, sock, "attacker-as").start()
    try:
        yield AttackerIssuer(issuer, key, fetches, documents)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def client_documents(run: Run) -> ClientDocuments:
    """The suite's https host for client ID metadata documents (skips when the target cannot
    reach it: it listens on loopback, where only the embedded reference is)."""
    documents = run.deployment.documents if run.deployment else None
    if documents is None:
        pytest.skip(
            "the suite serves client ID metadata documents on loopback "
            f"(https://{ClientDocuments.host}), which a remote target cannot reach"
        )
    return documents


@pytest.fixture(autouse=True)
def verdict(request: pytest.FixtureRequest) -> Iterator[Verdict]:
    """Findings and evidence of the running check (every exchange it makes is recorded)."""
    from conformance.records import declared_requirements

    current = Verdict(declared_requirements(request.node))
    request.node.stash[VERDICT] = current
    with recording(current.evidence):
        yield current


VERDICT = pytest.StashKey[Verdict]()
