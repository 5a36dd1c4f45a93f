"""Configuration of one mock SaaS service (Salesforce or Workday) and its own AS.

Every URL the service answers on is derived from its kind and `base_url`, so a launcher can
compute them (and hand them to the MCP server under test) before the service starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Kind = Literal["salesforce", "workday"]


@dataclass(frozen=True)
class ServiceKind:
    """Paths and scopes of one vendor API, as its real counterpart spells them."""

    name: Kind
    resource_path: str  # the API's resource identifier (RFC 8707) is base_url + this
    api_path: str  # the one read endpoint: the user's own data
    token_path: str  # the service AS's token endpoint (RFC 7523 jwt-bearer grant)
    jwks_path: str  # the service AS's JWK Set (RFC 7517 section 5)
    read_scope: str  # the scope the API route requires
    all_scopes: tuple[str, ...]  # every scope the service AS knows


SERVICE_KINDS: dict[str, ServiceKind] = {
    "salesforce": ServiceKind(
        name="salesforce",
        resource_path="/services/data",
        api_path="/services/data/v60.0/sobjects/Opportunity",
        token_path="/services/oauth2/token",
        jwks_path="/services/oauth2/keys",
        read_scope="api",
        all_scopes=("api", "full", "web"),
    ),
    "workday": ServiceKind(
        name="workday",
        resource_path="/ccx/api",
        api_path="/ccx/api/staffing/v6/acme/workers/me",
        token_path="/ccx/oauth2/token",
        jwks_path="/ccx/oauth2/keys",
        read_scope="workers:read",
        all_scopes=("workers:read", "workers:write"),
    ),
}


def service_kind(kind: str) -> ServiceKind:
    """The paths and scopes of `kind` ("salesforce" or "workday"); ValueError otherwise."""
    try:
        return SERVICE_KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown service kind {kind!r}; expected one of: {', '.join(SERVICE_KINDS)}"
        ) from None


def resource_of(kind: str, base_url: str) -> str:
    """The resource identifier (RFC 8707) of the `kind` API served at `base_url`."""
    return base_url + service_kind(kind).resource_path


def api_url_of(kind: str, base_url: str) -> str:
    """The absolute URL of the `kind` API's read endpoint served at `base_url`."""
    return base_url + service_kind(kind).api_path


def token_endpoint_of(kind: str, base_url: str) -> str:
    """The token endpoint of the `kind` service's own authorization server."""
    return base_url + service_kind(kind).token_path


def jwks_uri_of(kind: str, base_url: str) -> str:
    """The JWK Set URI of the `kind` service's own authorization server."""
    return base_url + service_kind(kind).jwks_path


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose signed JWTs this service accepts.

    `jwks_uri` None means: discover it from the issuer's RFC 8414 metadata, falling back to
    its OpenID Connect Discovery document.
    """

    issuer: str
    jwks_uri: str | None = None


@dataclass(frozen=True)
class SaasClient:
    """A confidential client of the service's own AS (RFC 6749 section 2.1)."""

    client_id: str
    client_secret: str


@dataclass(frozen=True)
class SaasSettings:
    """Everything one mock SaaS service needs. Lifetimes are in seconds.

    `trusted_issuers`: ASes whose JWT access tokens the API accepts (RFC 8693 model).
    `idp`: the enterprise IdP whose ID-JAGs the service's own AS redeems (ID-JAG model).
    `clients`: confidential clients of the service's own AS.
    `service_keys`: static "integration user" API keys; whoever holds one sees every
    user's data, which is exactly what a shared admin key does.
    `require_dpop`: the service's own AS binds its tokens to a DPoP key and the API accepts
    only DPoP-bound tokens with a valid proof (RFC 9449 §5, §7.1); see `mock_saas.dpop`.
    """

    kind: Kind
    base_url: str  # origin, no trailing slash; also the issuer of the service's own AS
    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    idp: TrustedIssuer | None = None
    clients: tuple[SaasClient, ...] = ()
    service_keys: tuple[str, ...] = ()
    token_lifetime: int = 300
    require_dpop: bool = False

    def __post_init__(self) -> None:
        service_kind(self.kind)
        _check_origin(self.base_url)
        ids = [c.client_id for c in self.clients]
        if len(ids) != len(set(ids)):
            raise ValueError("client_id values must be unique")
        if any(not key for key in self.service_keys):
            raise ValueError("service keys must not be empty")
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive")

    @property
    def service(self) -> ServiceKind:
        return service_kind(self.kind)

    @property
    def issuer(self) -> str:
        """The issuer identifier of the service's own AS (RFC 8414 section 2)."""
        return self.base_url

    @property
    def resource(self) -> str:
        return resource_of(self.kind, self.base_url)

    @property
    def api_url(self) -> str:
        return api_url_of(self.kind, self.base_url)

    @property
    def token_endpoint(self) -> str:
        return token_endpoint_of(self.kind, self.base_url)

    @property
    def jwks_uri(self) -> str:
        return jwks_uri_of(self.kind, self.base_url)

    @property
    def read_scope(self) -> str:
        return self.service.read_scope

    @property
    def all_scopes(self) -> tuple[str, ...]:
        return self.service.all_scopes

    def client(self, client_id: str) -> SaasClient | None:
        """The registered client with this `client_id`, or None."""
        return next((c for c in self.clients if c.client_id == client_id), None)


def _check_origin(base_url: str) -> None:
    """An http(s) origin (RFC 6454): scheme and host[:port], nothing after it. Being the
    issuer of the service's own AS too, it also satisfies RFC 8414 section 2."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an absolute http(s) URL: {base_url!r}")
    if parts.path or parts.query or parts.fragment or base_url.endswith(("?", "#")):
        raise ValueError(f"base_url must be an origin (no path, query or fragment): {base_url!r}")
