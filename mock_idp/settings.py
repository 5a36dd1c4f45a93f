"""Configuration of one mock IdP instance: issuer, test users and registered clients."""

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
    """

    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]

    @property
    def is_public(self) -> bool:
        return self.client_secret is None


DEFAULT_USERS: tuple[IdpUser, ...] = (
    IdpUser("alice", "alice-password", "alice@example.com", "Alice Example"),
    IdpUser("bob", "bob-password", "bob@example.com", "Bob Example"),
)


@dataclass(frozen=True)
class IdpSettings:
    """Everything one mock IdP needs. Lifetimes are in seconds."""

    issuer: str  # e.g. "http://127.0.0.1:41000" (no trailing slash)
    users: tuple[IdpUser, ...] = DEFAULT_USERS
    clients: tuple[IdpClient, ...] = ()
    id_token_lifetime: int = 300
    code_lifetime: int = 60

    def __post_init__(self) -> None:
        _check_issuer(self.issuer)
        ids = [c.client_id for c in self.clients]
        if len(ids) != len(set(ids)):
            raise ValueError("client_id values must be unique")
        names = [u.username for u in self.users]
        if len(names) != len(set(names)):
            raise ValueError("usernames must be unique")
        if self.id_token_lifetime <= 0 or self.code_lifetime <= 0:
            raise ValueError("lifetimes must be positive")

    def client(self, client_id: str) -> IdpClient | None:
        """The registered client with this `client_id`, or None."""
        return next((c for c in self.clients if c.client_id == client_id), None)

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
