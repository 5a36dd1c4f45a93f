"""`--target embedded`: start the bundled reference deployment and describe it as a target.

The only module that knows how the reference is built. It starts the mock IdP, the
reference authorization server and the reference MCP server on loopback ephemeral ports,
with the requested defect switches on, and returns the target configuration a vendor would
otherwise write by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conformance.client_documents import ClientDocuments
from conformance.config import (
    AuditConfig,
    ClientCredentials,
    DownstreamConfig,
    IdJagConfig,
    TargetConfig,
    TokenExchangeConfig,
    UserCredentials,
)
from conformance.servers import ServerThread, bind_loopback, stop_all, url_of

if TYPE_CHECKING:
    from reference.settings import DownstreamService

SERVICE_MODELS = {"salesforce": "token-exchange", "workday": "id-jag"}
"""The downstream services the reference's connector tools reach (second hop), and how the
MCP server gets a token for each: RFC 8693 at its AS, or an ID-JAG from the IdP."""
SERVICE_NAMES = tuple(SERVICE_MODELS)
DPOP_SERVICES = ("workday",)
"""Services that require DPoP (RFC 9449): Workday binds the tokens its own AS issues."""

# Clients the suite itself uses for enterprise-managed authorization: its clients at the IdP
# and the (differently named) clients the IdP maps them to at the reference AS.
_IDP_CLIENT = ClientCredentials(
    "conformance-idp-client", "conformance-idp-secret", "client_secret_basic"
)
_OTHER_IDP_CLIENT = ClientCredentials(
    "conformance-idp-client-2", "conformance-idp-secret-2", "client_secret_basic"
)
_RAS_CLIENT = ClientCredentials(
    "conformance-agent", "conformance-agent-secret", "client_secret_basic"
)
_OTHER_RAS_CLIENT = ClientCredentials(
    "conformance-agent-2", "conformance-agent-secret-2", "client_secret_basic"
)
SUITE_CLIENTS = (_IDP_CLIENT, _OTHER_IDP_CLIENT, _RAS_CLIENT, _OTHER_RAS_CLIENT)
_DEPLOYMENT_AT_SERVICE = ("mcp-deployment", "mcp-deployment-secret")


@dataclass
class EmbeddedDeployment:
    idp_issuer: str
    issuer: str
    mcp_url: str
    config: TargetConfig
    servers: list[ServerThread] = field(default_factory=list)
    # The suite's host for client ID metadata documents, which the reference AS may fetch.
    documents: ClientDocuments | None = None

    def stop(self) -> None:
        stop_all(self.servers)
        if self.documents is not None:
            self.documents.close()


def defect_catalogue() -> dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]]:
    """name -> (requirement IDs, description, masked IDs) for every reference defect."""
    from reference.defects import DEFECTS

    return {d.name: (d.requirements, d.description, d.masks) for d in DEFECTS.values()}


def _services(bases: dict[str, str]) -> tuple[DownstreamService, ...]:
    from mock_saas.settings import api_url_of, resource_of, service_kind, token_endpoint_of
    from reference.settings import DownstreamService

    wiring = {
        "salesforce": ("salesforce-connector", "get_opportunities"),
        "workday": ("workday-connector", "get_worker"),
    }
    services = []
    for name, model in SERVICE_MODELS.items():
        tool, action = wiring[name]
        kind, base = service_kind(name), bases[name]
        services.append(
            DownstreamService(
                name=name,
                tool=tool,
                action=action,
                model=model,
                base_url=base,
                resource=resource_of(name, base),
                api_url=api_url_of(name, base),
                token_endpoint=token_endpoint_of(name, base),
                scopes=(kind.read_scope,),
                all_scopes=kind.all_scopes,
                client_id=_DEPLOYMENT_AT_SERVICE[0],
                client_secret=_DEPLOYMENT_AT_SERVICE[1],
                static_key=f"{name}-integration-key-0001",
                dpop=name in DPOP_SERVICES,
            )
        )
    return tuple(services)


def start(defects: frozenset[str] = frozenset()) -> EmbeddedDeployment:
    import mock_idp
    import mock_saas
    from mock_saas.settings import SaasClient, SaasSettings, TrustedIssuer
    from reference import authorization_server, mcp_server
    from reference.settings import (
        BASIC_SCOPE,
        PRIVILEGED_SCOPE,
        PRIVILEGED_TOOL,
        SCOPES_SUPPORTED,
        TOKEN_EXCHANGE,
        ReferenceSettings,
    )
    from reference.upstream import UpstreamIdentities

    idp_sock, as_sock, mcp_sock = bind_loopback(), bind_loopback(), bind_loopback()
    saas_socks = {name: bind_loopback() for name in SERVICE_NAMES}
    idp_issuer, issuer = url_of(idp_sock), url_of(as_sock)
    mcp_origin = url_of(mcp_sock)
    mcp_url = f"{mcp_origin}/mcp"
    services = _services({n: url_of(s) for n, s in saas_socks.items()})
    documents = ClientDocuments()
    settings = ReferenceSettings(
        issuer=issuer,
        mcp_url=mcp_url,
        second_resource=f"{mcp_origin}/reports-api",
        idp_issuer=idp_issuer,
        defects=defects,
        idjag_clients=tuple(
            (c.client_id, c.client_secret or "") for c in (_RAS_CLIENT, _OTHER_RAS_CLIENT)
        ),
        downstream=services,
        # The SSRF guard lets the AS fetch client ID metadata documents from the suite's
        # loopback document host, trusting only the certificate made for it, and nothing
        # beyond loopback is ever fetched.
        cimd_allowed_hosts=(documents.host,),
        cimd_ca_file=documents.ca_file,
        cimd_loopback_only=True,
    )
    suite_redirect = TargetConfig().redirect_uri
    idp_settings = mock_idp.IdpSettings(
        issuer=idp_issuer,
        clients=(
            mock_idp.IdpClient(
                settings.idp_client_id,
                settings.idp_client_secret,
                (f"{issuer}/callback",),
                ras_client_ids=tuple((s.base_url, s.client_id) for s in services),
            ),
            mock_idp.IdpClient(
                _IDP_CLIENT.client_id,
                _IDP_CLIENT.client_secret,
                (suite_redirect,),
                ras_client_ids=((issuer, _RAS_CLIENT.client_id),),
            ),
            mock_idp.IdpClient(
                _OTHER_IDP_CLIENT.client_id,
                _OTHER_IDP_CLIENT.client_secret,
                (suite_redirect,),
                ras_client_ids=((issuer, _OTHER_RAS_CLIENT.client_id),),
            ),
        ),
        audiences=(
            mock_idp.IdJagAudience(
                issuer, (mcp_url, settings.second_resource), tuple(SCOPES_SUPPORTED)
            ),
            *(mock_idp.IdJagAudience(s.base_url, (s.resource,), s.all_scopes) for s in services),
        ),
        defects=defects,
        test_signer=True,
    )
    saas_settings = [
        SaasSettings(
            kind=s.name,  # type: ignore[arg-type]
            base_url=s.base_url,
            trusted_issuers=(TrustedIssuer(issuer, f"{issuer}/jwks"),)
            if s.model == TOKEN_EXCHANGE
            else (),
            idp=TrustedIssuer(idp_issuer, f"{idp_issuer}/jwks"),
            clients=(SaasClient(s.client_id, s.client_secret),),
            service_keys=(s.static_key,),
            require_dpop=s.dpop,
        )
        for s in services
    ]
    deployment = EmbeddedDeployment(
        idp_issuer=idp_issuer,
        issuer=issuer,
        mcp_url=mcp_url,
        documents=documents,
        config=TargetConfig(
            mcp_url=mcp_url,
            authorization_server=issuer,
            second_resource=settings.second_resource,
            allowed_hosts=("127.0.0.1",),
            basic_scope=BASIC_SCOPE,
            privileged_scope=PRIVILEGED_SCOPE,
            privileged_tool=PRIVILEGED_TOOL,
            registration="dcr",
            registration_endpoint=f"{issuer}/register",
            login_driver="mock-idp",
            users=tuple(
                UserCredentials(u.username, u.username, u.password) for u in idp_settings.users
            ),
            token_signer=f"{issuer}/_test/sign",
            lifetime_hook=f"{issuer}/_test/lifetimes",
            token_exchange=TokenExchangeConfig(
                ClientCredentials(
                    settings.mcp_client_id, settings.mcp_client_secret, "client_secret_basic"
                )
            ),
            id_jag=IdJagConfig(
                idp_issuer=idp_issuer,
                idp_client=_IDP_CLIENT,
                ras_client=_RAS_CLIENT,
                other_idp_client=_OTHER_IDP_CLIENT,
                other_ras_client=_OTHER_RAS_CLIENT,
                idp_test_signer=f"{idp_issuer}/_test/sign",
            ),
            downstream=tuple(
                DownstreamConfig(
                    name=s.name,
                    tool=s.tool,
                    model=s.model,
                    records_url=f"{s.base_url}/_records",
                    faults_url=f"{s.base_url}/_faults",
                    resource=s.resource,
                    arguments={"action": s.action},
                    issuer=issuer if s.model == TOKEN_EXCHANGE else s.base_url,
                    scopes=" ".join(s.scopes),
                )
                for s in services
            ),
            audit=AuditConfig(url=f"{mcp_origin}/_audit", bearer_token=settings.audit_token),
        ),
    )
    upstream = UpstreamIdentities()
    try:
        for app, sock, name in (
            (mock_idp.create_app(idp_settings), idp_sock, "mock-idp"),
            *(
                (mock_saas.create_app(c), saas_socks[c.kind], f"mock-{c.kind}")
                for c in saas_settings
            ),
            (authorization_server.create_app(settings, upstream), as_sock, "reference-as"),
            (mcp_server.create_app(settings, upstream), mcp_sock, "reference-mcp"),
        ):
            deployment.servers.append(ServerThread(app, sock, name).launch())
        deployment.servers.extend(documents.launch())
        for server in deployment.servers:
            server.wait_started()
    except BaseException:
        deployment.stop()
        raise
    return deployment
