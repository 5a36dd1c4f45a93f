"""Settings shared by the reference authorization server and MCP server."""

from __future__ import annotations

from dataclasses import dataclass, field

from reference.defects import DEFECTS

BASIC_SCOPE = "mcp:tools"
PRIVILEGED_SCOPE = "mcp:admin"
PRIVILEGED_TOOL = "admin-report"
SCOPES_SUPPORTED = (BASIC_SCOPE, PRIVILEGED_SCOPE)

TOKEN_EXCHANGE = "token-exchange"  # RFC 8693 at the reference AS (exchange model 1)
ID_JAG = "id-jag"  # ID-JAG from the enterprise IdP, redeemed at the service's AS (model 2)


@dataclass(frozen=True)
class DownstreamService:
    """A downstream SaaS API one of the MCP server's connector tools calls as the user.

    `model` says how the MCP server gets a token for it: by RFC 8693 token exchange at the
    reference AS (`token-exchange`), or with an ID-JAG from the enterprise IdP redeemed at
    the service's own authorization server with the jwt-bearer grant (`id-jag`).
    """

    name: str  # "salesforce" | "workday": also the audit trail's service name
    tool: str  # the MCP tool that reaches it, e.g. "salesforce-connector"
    action: str  # the tool's `action` argument that makes the API call, e.g. "get_opportunities"
    model: str  # TOKEN_EXCHANGE | ID_JAG
    base_url: str  # the mock service's origin; also the issuer of its own AS
    resource: str  # the API's resource identifier: the audience its tokens must carry
    api_url: str  # the absolute URL the connector GETs
    token_endpoint: str  # the service AS's token endpoint (jwt-bearer grant)
    scopes: tuple[str, ...]  # what the connector asks for (least privilege)
    all_scopes: tuple[str, ...]  # everything the service offers
    client_id: str  # the MCP deployment's client at the service's AS (id-jag model)
    client_secret: str
    static_key: str  # an integration-user API key (only the `hop2-static-api-key` defect uses it)
    # The service requires DPoP (RFC 9449): the connector proves possession of the MCP
    # server's own key at the service's token endpoint and on every API call.
    dpop: bool = False


@dataclass(frozen=True)
class ReferenceSettings:
    """Where the parts of one reference deployment live, and which defects are switched on.

    All URLs are loopback URLs chosen by the launcher before any server starts.
    """

    issuer: str  # the authorization server's issuer identifier, e.g. http://127.0.0.1:41001
    mcp_url: str  # the MCP endpoint and resource identifier, e.g. http://127.0.0.1:41002/mcp
    second_resource: str  # another resource the AS serves (audience tests), never this MCP server
    idp_issuer: str  # the mock enterprise IdP the AS federates sign-in to
    idp_client_id: str = "reference-as"
    idp_client_secret: str = "reference-as-secret"
    defects: frozenset[str] = field(default_factory=frozenset)
    access_token_lifetime: int = 300
    # Second hop. The MCP server's own confidential client at this AS (token exchange):
    mcp_client_id: str = "reference-mcp"
    mcp_client_secret: str = "reference-mcp-secret"
    # Confidential clients pre-registered for the jwt-bearer (ID-JAG) grant: (id, secret).
    idjag_clients: tuple[tuple[str, str], ...] = ()
    downstream: tuple[DownstreamService, ...] = ()
    exchanged_token_lifetime: int = 300
    # Bearer token that reads the MCP server's audit trail at GET {mcp origin}/_audit.
    audit_token: str = "reference-audit-token"
    code_lifetime: int = 60
    # Exposes POST {issuer}/_test/sign, which signs arbitrary JWTs with the AS key, so the
    # suite can build expired / not-yet-valid / mistyped tokens. Test deployments only.
    test_signer: bool = True
    # Client ID metadata documents: hosts whose documents may be fetched although they resolve
    # to special-use addresses (the SSRF guard's allowlist), and the PEM file of the
    # certificate authorities the fetcher trusts instead of the system's (None: the system's).
    cimd_allowed_hosts: tuple[str, ...] = ()
    cimd_ca_file: str | None = None
    # Test deployments: document URLs must name a loopback address (no name is resolved).
    cimd_loopback_only: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.defects) - set(DEFECTS))
        if unknown:
            raise ValueError(f"unknown defect(s): {', '.join(unknown)}")

    def service(self, name: str) -> DownstreamService | None:
        return next((s for s in self.downstream if s.name == name), None)

    def defect(self, name: str) -> bool:
        """True when the named defect switch is on (the name must be catalogued)."""
        if name not in DEFECTS:
            raise KeyError(f"defect {name!r} is not in reference.defects.DEFECTS")
        return name in self.defects
