"""In-memory state of the reference authorization server.

Everything lives in plain dicts. The server runs on one asyncio event loop and no handler awaits
between reading and updating a record, so check-then-mark sequences (code redemption, refresh
token rotation) are atomic without locks (the `rt-race-double-redeem` defect breaks exactly that).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from reference.dpop import JtiCache, NonceSource


def now() -> int:
    """Current time in whole seconds since the epoch."""
    return int(time.time())


def random_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe value with `nbytes` bytes of entropy (OAuth 2.1 §1.4, §4.3)."""
    return secrets.token_urlsafe(nbytes)


@dataclass
class Client:
    """A client registered through RFC 7591 dynamic client registration."""

    client_id: str
    redirect_uris: list[str]
    token_endpoint_auth_method: str
    grant_types: list[str]
    response_types: list[str]
    metadata: dict[str, Any]
    client_secret: str | None = None
    issued_at: int = field(default_factory=now)
    # The resource server this client itself is (the MCP server's own client): subject tokens
    # it exchanges (RFC 8693) must be addressed to it. None for ordinary clients.
    resource: str | None = None

    @property
    def confidential(self) -> bool:
        """True for clients that hold credentials (OAuth 2.1 §2.1)."""
        return self.token_endpoint_auth_method != "none"


@dataclass
class ValidatedRequest:
    """An authorization request that passed every check of /authorize."""

    client: Client
    redirect_uri: str
    response_type: str
    state: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    resource: str | None
    scope: list[str]
    dpop_jkt: str | None = None  # RFC 9449 §10: the DPoP key the code is bound to


@dataclass
class PendingAuthorization:
    """A validated authorization request waiting for the user to sign in at the IdP."""

    id: str
    request: ValidatedRequest
    nonce: str
    idp_code_verifier: str
    created_at: int = field(default_factory=now)


@dataclass
class AuthorizationCode:
    """An issued authorization code and everything it is bound to (OAuth 2.1 §4.1.2)."""

    code: str
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    code_challenge_method: str | None
    resource: str | None
    scope: list[str]
    user: str
    auth_time: int
    expires_at: int
    used: bool = False
    grant_ids: list[str] = field(default_factory=list)
    dpop_jkt: str | None = None  # RFC 9449 §10: redeemable only with a proof of this key


@dataclass
class Grant:
    """One token family: the tokens issued from one code (or one password grant)."""

    id: str
    client_id: str
    user: str
    scope: list[str]
    resource: str
    auth_time: int
    revoked: bool = False


@dataclass
class RefreshToken:
    """A refresh token; `active` turns false when it is rotated (OAuth 2.1 §4.3.1).

    `expires_at` is a precise timestamp (seconds, fractional) so that test lifetimes of a
    second or two hold exactly; None means the token never expires.
    """

    token: str
    grant_id: str
    client_id: str
    active: bool = True
    issued_at: int = field(default_factory=now)
    expires_at: float | None = None
    jkt: str | None = None  # RFC 9449 §5: the DPoP key a public client's token is bound to

    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= time.time()


@dataclass(frozen=True)
class TokenLifetimes:
    """Per-client lifetimes set through the `/_test/lifetimes` hook (None: the default)."""

    access_token: int | None = None
    refresh_token: float | None = None


@dataclass
class AccessTokenRecord:
    """What the AS remembers about a JWT access token it minted, keyed by `jti`."""

    jti: str
    grant_id: str | None
    client_id: str
    user: str
    scope: list[str]
    aud: str | list[str]
    iat: int
    exp: int
    revoked: bool = False


class Store:
    """All mutable state of one authorization server instance."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.pending: dict[str, PendingAuthorization] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.grants: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessTokenRecord] = {}
        # jwt-bearer assertions already redeemed: (iss, jti) -> exp (RFC 7523 §3 item 7).
        self.seen_assertions: dict[tuple[str, str], int] = {}
        # Test-only lifetime overrides by client_id (the `/_test/lifetimes` hook).
        self.lifetimes: dict[str, TokenLifetimes] = {}
        # RFC 9449 §11.1 and §8: DPoP proofs already seen at the token endpoint, and nonces.
        self.dpop_jtis = JtiCache()
        self.dpop_nonces = NonceSource()

    def new_grant(
        self, *, client_id: str, user: str, scope: list[str], resource: str, auth_time: int
    ) -> Grant:
        grant = Grant(random_token(16), client_id, user, list(scope), resource, auth_time)
        self.grants[grant.id] = grant
        return grant

    def new_refresh_token(self, grant: Grant, lifetime: float | None = None) -> RefreshToken:
        """A refresh token of `grant` that expires after `lifetime` seconds (None: never)."""
        expires_at = None if lifetime is None else time.time() + lifetime
        rt = RefreshToken(random_token(32), grant.id, grant.client_id, expires_at=expires_at)
        self.refresh_tokens[rt.token] = rt
        return rt

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke a whole token family: its refresh tokens and its access tokens."""
        grant = self.grants.get(grant_id)
        if grant is not None:
            grant.revoked = True
        for rt in self.refresh_tokens.values():
            if rt.grant_id == grant_id:
                rt.active = False
        for record in self.access_tokens.values():
            if record.grant_id == grant_id:
                record.revoked = True

    def grant_active(self, grant_id: str | None) -> bool:
        if grant_id is None:
            return True
        grant = self.grants.get(grant_id)
        return grant is not None and not grant.revoked

    def active_access_token(self, jti: str) -> AccessTokenRecord | None:
        """The record of an issued, unrevoked, unexpired access token."""
        record = self.access_tokens.get(jti)
        if record is None or record.revoked or record.exp <= now():
            return None
        if not self.grant_active(record.grant_id):
            return None
        return record

    def active_refresh_token(self, token: str) -> RefreshToken | None:
        rt = self.refresh_tokens.get(token)
        if rt is None or not rt.active or rt.expired() or not self.grant_active(rt.grant_id):
            return None
        return rt

    def assertion_seen(self, iss: str, jti: str) -> bool:
        """True when an assertion with this `jti` from `iss` was redeemed and is unexpired."""
        t = now()
        for key in [k for k, exp in self.seen_assertions.items() if exp < t]:
            del self.seen_assertions[key]
        return (iss, jti) in self.seen_assertions

    def remember_assertion(self, iss: str, jti: str, exp: int) -> None:
        """Keep a redeemed assertion's `jti` until the assertion expires."""
        self.seen_assertions[(iss, jti)] = exp

    def prune(self, max_pending_age: int = 600) -> None:
        """Drop expired codes and abandoned logins so long runs do not grow without bound."""
        t = now()
        for key in [k for k, p in self.pending.items() if t - p.created_at > max_pending_age]:
            del self.pending[key]
        for key in [k for k, c in self.codes.items() if c.expires_at + 3600 < t]:
            del self.codes[key]
