"""Session fixtures of the second hop: exchange clients, the enterprise IdP, downstream services
witnessed by the mock SaaS, and the audit trail.

Checks about downstream services take `service`, parametrized over the configured services
(one check instance per service, e.g. `[salesforce]`, `[workday]`). Whatever is not configured
makes its checks `skipped` with the config key to set.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance import embedded
from conformance.audit import AuditTrail
from conformance.config import DownstreamConfig, IdJagConfig, TokenExchangeConfig
from conformance.discovery import AuthorizationServer, as_metadata_candidates, json_object
from conformance.downstream import ToolCall, Witness, call_tool
from conformance.errors import PreconditionFailed
from conformance.fixtures import Clients, Run, signing_hook
from conformance.flows import Flows, TokenSet
from conformance.idp import EnterpriseIdp, client_of, discover_idp, id_token
from conformance.oauth.clients import Client
from conformance.settings import RUN_SETTINGS

NO_SERVICE = "(none)"


def service_models(config: pytest.Config) -> dict[str, str]:
    """Configured downstream services by name, with their exchange model."""
    settings = config.stash[RUN_SETTINGS]
    if settings.embedded:
        return dict(embedded.SERVICE_MODELS)
    return {s.name: s.model for s in settings.config.downstream}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`service_name`: every configured service; `id_jag_service_name`: those reached with an
    ID-JAG. Without any, one placeholder instance skips, naming the config key."""
    models = service_models(metafunc.config)
    if "service_name" in metafunc.fixturenames:
        names = tuple(models) or (NO_SERVICE,)
        metafunc.parametrize("service_name", names, scope="session")
    if "id_jag_service_name" in metafunc.fixturenames:
        names = tuple(n for n, m in models.items() if m == "id-jag") or (NO_SERVICE,)
        metafunc.parametrize("id_jag_service_name", names, scope="session")


# --- users -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bob_tokens(flows: Flows, clients: Clients) -> TokenSet:
    """Bob signed in through the public client, with a token for the MCP server."""
    return flows.tokens(clients.public, "bob")


# --- downstream services ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def service(run: Run, service_name: str) -> DownstreamConfig:
    found = next((s for s in run.config.downstream if s.name == service_name), None)
    if found is None:
        pytest.skip("no downstream service configured ([[downstream]] in the target config)")
    return found


@pytest.fixture(scope="session")
def id_jag_service(run: Run, id_jag_service_name: str) -> DownstreamConfig:
    found = next((s for s in run.config.downstream if s.name == id_jag_service_name), None)
    if found is None:
        pytest.skip('no downstream service reached with an ID-JAG (model = "id-jag")')
    return found


@pytest.fixture(scope="session")
def witness(run: Run, service: DownstreamConfig) -> Witness:
    return Witness(run.http, service)


@dataclass
class SecondHop:
    """Tool calls that reach downstream services, made once per (service, user) and shared by
    every check that judges what the service witnessed.

    `warm_up` makes every baseline call first, before any check calls a tool on its own (with
    a fault injected, say), so each baseline call is the user's first: the MCP server has no
    cached downstream token yet and must obtain one, in the call's window.
    """

    run: Run
    flows: Flows
    clients: Clients
    alice: TokenSet
    _bob: TokenSet | None = None
    _calls: dict[tuple[str, str], ToolCall | PreconditionFailed] = field(default_factory=dict)

    def tokens(self, user: str) -> TokenSet:
        if user == "alice":
            return self.alice
        if self._bob is None:
            self._bob = self.flows.tokens(self.clients.public, "bob")
        return self._bob

    def warm_up(self) -> None:
        for service in self.run.config.downstream:
            for user in ("alice", "bob"):
                # a failure is kept, and raised again to each check that needs the call
                with contextlib.suppress(PreconditionFailed):
                    self.call(service, user)

    def call(self, service: DownstreamConfig, user: str) -> ToolCall:
        key = (service.name, user)
        if key not in self._calls:
            try:
                self._calls[key] = self._call_tool(service, user, audited=True)
            except PreconditionFailed as exc:
                self._calls[key] = exc
        found = self._calls[key]
        if isinstance(found, PreconditionFailed):
            raise PreconditionFailed(str(found))
        return found

    def again(self, service: DownstreamConfig, user: str, note: str) -> ToolCall:
        """Another call of the service's tool as `user` (not shared: made for one check)."""
        return self._call_tool(service, user, note=note)

    def _call_tool(
        self, service: DownstreamConfig, user: str, *, audited: bool = False, note: str = ""
    ) -> ToolCall:
        audit = self.run.config.audit if audited else None
        return call_tool(
            self.run.http,
            self.run.mcp_url,
            self.run.config.protocol_version,
            service,
            self.tokens(user),
            Witness(self.run.http, service),
            AuditTrail(self.run.http, audit) if audit else None,
            note=note,
        )

    def reached(self, service: DownstreamConfig, user: str) -> ToolCall:
        """The call, required to have reached the service's API at least once."""
        call = self.call(service, user)
        if not call.api_records:
            raise PreconditionFailed(
                f"calling {service.tool} as {user} made no request to {service.name} "
                f"({call.describe()})"
            )
        return call


@pytest.fixture(scope="session")
def second_hop(run: Run, flows: Flows, clients: Clients, alice_tokens: TokenSet) -> SecondHop:
    hop = SecondHop(run, flows, clients, alice_tokens)
    hop.warm_up()
    return hop


def expected_issuer(service: DownstreamConfig, authorization_server: AuthorizationServer) -> str:
    """Who must have issued the service's tokens: configured, else the MCP AS (exchange model)."""
    if service.issuer:
        return service.issuer
    issuer = authorization_server.metadata.get("issuer")
    return str(issuer or authorization_server.identifier)


# --- RFC 8693 token exchange -----------------------------------------------------------------


def _token_exchange(run: Run) -> TokenExchangeConfig:
    if run.config.token_exchange is None:
        pytest.skip("no token exchange client configured ([token_exchange] in the target config)")
    return run.config.token_exchange


@pytest.fixture(scope="session")
def exchange_client(run: Run) -> Client:
    """The MCP server's own client at its authorization server (it asks for exchanges)."""
    return client_of(_token_exchange(run).client, run.config.redirect_uri)


@pytest.fixture(scope="session")
def exchange_endpoint(run: Run, authorization_server: AuthorizationServer) -> str:
    endpoint = _token_exchange(run).token_endpoint or authorization_server.endpoint(
        "token_endpoint"
    )
    if not endpoint:
        raise PreconditionFailed("no token endpoint for token exchange")
    return endpoint


@dataclass(frozen=True)
class ExchangeTarget:
    resource: str
    scope: str | None


@pytest.fixture(scope="session")
def exchange_target(run: Run) -> ExchangeTarget:
    """The downstream resource a valid exchange asks for, and the scope it asks with."""
    config = _token_exchange(run)
    service = next((s for s in run.config.downstream if s.model == "token-exchange"), None)
    resource = config.resource or (service.resource if service else None)
    if not resource:
        pytest.skip("no downstream resource to exchange for (token_exchange.resource)")
    return ExchangeTarget(resource, config.scope or (service.scopes if service else None))


# --- enterprise-managed authorization (ID-JAG) -------------------------------------------------


def _id_jag(run: Run) -> IdJagConfig:
    if run.config.id_jag is None:
        pytest.skip("no enterprise IdP configured ([id_jag] in the target config)")
    return run.config.id_jag


@pytest.fixture(scope="session")
def id_jag_config(run: Run) -> IdJagConfig:
    return _id_jag(run)


@pytest.fixture(scope="session")
def enterprise_idp(run: Run) -> EnterpriseIdp:
    return discover_idp(run.http, _id_jag(run).idp_issuer)


@dataclass(frozen=True)
class IdJagClients:
    idp: Client  # the suite's client at the IdP
    ras: Client  # the client the ID-JAG names at the resource AS
    other_idp: Client | None
    other_ras: Client | None


@pytest.fixture(scope="session")
def id_jag_clients(run: Run) -> IdJagClients:
    config = _id_jag(run)  # its secrets are remembered for redaction by the `run` fixture

    def client(credentials: Any) -> Client | None:
        return client_of(credentials, run.config.redirect_uri) if credentials else None

    idp, ras = client(config.idp_client), client(config.ras_client)
    assert idp and ras
    return IdJagClients(idp, ras, client(config.other_idp_client), client(config.other_ras_client))


@pytest.fixture(scope="session")
def alice_id_token(
    flows: Flows, enterprise_idp: EnterpriseIdp, id_jag_clients: IdJagClients
) -> str:
    """An ID token for alice, issued by the IdP to the suite's IdP client."""
    return id_token(flows, enterprise_idp, id_jag_clients.idp, "alice")


@pytest.fixture(scope="session")
def resource_as(run: Run, authorization_server: AuthorizationServer) -> AuthorizationServer:
    """The authorization server that redeems ID-JAGs (the MCP server's AS unless configured)."""
    issuer = _id_jag(run).ras_issuer
    if not issuer or issuer == authorization_server.metadata.get("issuer"):
        return authorization_server
    for url in as_metadata_candidates(issuer):
        response = run.http.get(url, note="resource AS metadata")
        body = json_object(response)
        if response.status_code == 200 and body:
            return AuthorizationServer(issuer, url, body)
    raise PreconditionFailed(f"no metadata for the resource AS {issuer}")


@dataclass(frozen=True)
class IdJagRequest:
    """What a known-good ID-JAG request asks for."""

    audience: str
    resource: str
    scope: str | None


@pytest.fixture(scope="session")
def id_jag_request(
    run: Run, resource_as: AuthorizationServer, basic_scope: str | None
) -> IdJagRequest:
    config = _id_jag(run)
    # The issuer identifier the client knows (from the resource metadata or the config), not
    # the metadata's own `issuer` member, which other checks judge.
    audience = config.ras_issuer or resource_as.identifier
    return IdJagRequest(audience, config.resource or run.mcp_url, config.scope or basic_scope)


@pytest.fixture(scope="session")
def idp_signer(run: Run) -> Callable[..., str]:
    """Signs claims with the IdP key through its test hook (skips when there is none)."""
    url = _id_jag(run).idp_test_signer
    if not url:
        pytest.skip("no IdP test signer configured (id_jag.idp_test_signer)")
    return signing_hook(run, url, "IdP test signer")


# --- audit trail -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def audit_trail(run: Run) -> AuditTrail:
    if run.config.audit is None:
        pytest.skip("no audit trail configured ([audit] in the target config)")
    return AuditTrail(run.http, run.config.audit)
