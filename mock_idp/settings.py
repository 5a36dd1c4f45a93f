"""Configuration of one mock IdP instance: issuer, test users, registered clients, the
resource authorization servers it issues ID-JAGs for, and its defect switches."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class IdpUser:
    """A test user who can sign in through the HTML login form."""

    username: str
    password: str
    email: str
    name: str


@dataclass(frozen=True)
class IdpClient:
    """A registered relying party (OIDC Core 1.0 section 2: "Client").

    `client_secret` None makes a public client: it authenticates with `client_id` alone
    (RFC 6749 section 2.1) and must use PKCE.

    `ras_client_ids` maps a resource authorization server's issuer to this client's id at
    that server, the out-of-band record of draft-ietf-oauth-identity-assertion-authz-grant
    "Cross-Domain Client ID Handling"; an ID-JAG for that server names the mapped id.
    """

    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]
    ras_client_ids: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        issuers = [issuer for issuer, _ in self.ras_client_ids]
        if len(issuers) != len(set(issuers)):
            raise ValueError(f"client {self.client_id!r}: ras_client_ids issuers must be unique")

    @property
    def is_public(self) -> bool:
        return self.client_secret is None

    def ras_client_id(self, ras_issuer: str) -> str:
        """This client's id at the resource AS `ras_issuer`: the mapped id, else its own."""
        return dict(self.ras_client_ids).get(ras_issuer, self.client_id)


@dataclass(frozen=True)
class IdJagAudience:
    """A resource authorization server the IdP issues ID-JAGs for (its issuer identifier,
    the `audience` of the token exchange), the resources it serves (an ID-JAG's `resource`
    must be one of them: audience/resource pairing) and the scopes policy allows for it.
    """

    issuer: str
    resources: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()


# The defect switches this IdP implements (reference/defects.py describes each).
IDP_DEFECTS: frozenset[str] = frozenset(
    {
        "idp-wrong-issued-token-type",
        "idp-metadata-silent",
        "idp-idjag-typ-jwt",
        "idp-idjag-client-id-unmapped",
        "idp-subject-not-validated",
        "idp-subject-audience-unchecked",
        "idp-audience-not-required",
        "idp-scope-not-narrowed",
        "idp-resource-dropped",
        "idp-exchange-without-client-auth",
        "idp-idjag-long-lived",
        "idp-self-redeem",
    }
)

DEFAULT_USERS: tuple[IdpUser, ...] = (
    IdpUser("alice", "alice-password", "alice@example.com", "Alice Example"),
    IdpUser("bob", "bob-password", "bob@example.com", "Bob Example"),
)


@dataclass(frozen=True)
class IdpSettings:
    """Everything one mock IdP needs. Lifetimes are in seconds.

    `defects` holds names of `IDP_DEFECTS` to switch on (other names are ignored, so a whole
    deployment's defect set can be passed). `test_signer` exposes `POST /_test/sign`.
    """

    issuer: str  # e.g. "http://127.0.0.1:41000" (no trailing slash)
    users: tuple[IdpUser, ...] = DEFAULT_USERS
    clients: tuple[IdpClient, ...] = ()
    id_token_lifetime: int = 300
    code_lifetime: int = 60
    audiences: tuple[IdJagAudience, ...] = ()
    id_jag_lifetime: int = 300
    defects: frozenset[str] = frozenset()
    test_signer: bool = False

    def __post_init__(self) -> None:
        _check_issuer(self.issuer)
        ids = [c.client_id for c in self.clients]
        if len(ids) != len(set(ids)):
            raise ValueError("client_id values must be unique")
        names = [u.username for u in self.users]
        if len(names) != len(set(names)):
            raise ValueError("usernames must be unique")
        audiences = [a.issuer for a in self.audiences]
        if len(audiences) != len(set(audiences)):
            raise ValueError("audience issuers must be unique")
        if min(self.id_token_lifetime, self.code_lifetime, self.id_jag_lifetime) <= 0:
            raise ValueError("lifetimes must be positive")
        if not isinstance(self.defects, frozenset):  # accept any iterable of names
            object.__setattr__(self, "defects", frozenset(self.defects))

    def client(self, client_id: str) -> IdpClient | None:
        """The registered client with this `client_id`, or None."""
        return next((c for c in self.clients if c.client_id == client_id), None)

    def audience(self, issuer: str) -> IdJagAudience | None:
        """The configured resource authorization server with this issuer, or None."""
        return next((a for a in self.audiences if a.issuer == issuer), None)

    def has_defect(self, name: str) -> bool:
        return name in self.defects

    def user(self, username: str) -> IdpUser | None:
        """The test user with this username, or None."""
        return next((u for u in self.users if u.username == username), None)

    def url(self, path: str) -> str:
        """An absolute URL for an endpoint path relative to the issuer."""
        return self.issuer + path

    @property
    def secure_cookies(self) -> bool:
        return self.issuer.startswith("https://")


def _check_issuer(issuer: str) -> None:
    """OIDC Discovery 1.0 section 3: the issuer is an https URL (http allowed here for
    loopback tests) with no query or fragment; we also forbid a trailing slash so that
    `issuer + path` is unambiguous."""
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"issuer must be an absolute http(s) URL: {issuer!r}")
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        raise ValueError(f"issuer must have no query or fragment: {issuer!r}")
    if issuer.endswith("/"):
        raise ValueError(f"issuer must not end with '/': {issuer!r}")
