"""Mock downstream SaaS APIs (Salesforce, Workday) that an MCP server calls as the user.

They are witnesses: every API and token request is recorded (`GET /_records`) so the suite
can prove what the MCP server sent. Each service also runs its own authorization server
that redeems ID-JAGs with the jwt-bearer grant, can require DPoP (`mock_saas.dpop`), and can
be made to fail, refuse or expire tokens on demand (`POST /_faults`, `mock_saas.faults`).
See `mock_saas.app.create_app`.
"""

from mock_saas.app import create_app
from mock_saas.faults import CANARY
from mock_saas.settings import (
    SERVICE_KINDS,
    SaasClient,
    SaasSettings,
    ServiceKind,
    TrustedIssuer,
    api_url_of,
    jwks_uri_of,
    resource_of,
    service_kind,
    token_endpoint_of,
)

__all__ = [
    "CANARY",
    "SERVICE_KINDS",
    "SaasClient",
    "SaasSettings",
    "ServiceKind",
    "TrustedIssuer",
    "api_url_of",
    "create_app",
    "jwks_uri_of",
    "resource_of",
    "service_kind",
    "token_endpoint_of",
]
