"""Settings shared by the reference authorization server and MCP server."""

from __future__ import annotations

from dataclasses import dataclass, field

from reference.defects import DEFECTS

BASIC_SCOPE = "mcp:tools"
PRIVILEGED_SCOPE = "mcp:admin"
PRIVILEGED_TOOL = "admin-report"
SCOPES_SUPPORTED = (BASIC_SCOPE, PRIVILEGED_SCOPE)


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
    code_lifetime: int = 60
    # Exposes POST {issuer}/_test/sign, which signs arbitrary JWTs with the AS key, so the
    # suite can build expired / not-yet-valid / mistyped tokens. Test deployments only.
    test_signer: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.defects) - set(DEFECTS))
        if unknown:
            raise ValueError(f"unknown defect(s): {', '.join(unknown)}")

    def defect(self, name: str) -> bool:
        """True when the named defect switch is on (the name must be catalogued)."""
        if name not in DEFECTS:
            raise KeyError(f"defect {name!r} is not in reference.defects.DEFECTS")
        return name in self.defects
