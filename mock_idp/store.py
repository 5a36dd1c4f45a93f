"""In-memory state of one IdP instance: pending logins, SSO sessions, codes, access tokens,
issued ID-JAGs.

Nothing is persisted; every app gets its own `Store`. All secrets are 256-bit random values
(RFC 6749 section 10.10). `clock` is replaceable so tests can move time forward.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_LIFETIME = 8 * 3600
PENDING_LOGIN_LIFETIME = 600


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request (RFC 6749 section 4.1.1, OIDC Core 3.1.2.1)."""

    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None


@dataclass(frozen=True)
class Session:
    """An IdP single sign-on session, referenced by the session cookie."""

    session_id: str
    username: str
    auth_time: int
    expires_at: float


@dataclass
class AuthorizationCode:
    """An issued code. `redeemed` flips on the first redemption attempt."""

    code: str
    request: AuthorizationRequest
    username: str
    auth_time: int
    expires_at: float
    redeemed: bool = False
    access_tokens: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AccessToken:
    """An opaque IdP access token, good for the userinfo endpoint."""

    token: str
    username: str
    client_id: str
    scope: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True)
class _Pending:
    request: AuthorizationRequest
    expires_at: float


class Store:
    """All mutable state of one IdP."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._pending: dict[str, _Pending] = {}
        self._sessions: dict[str, Session] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._tokens: dict[str, AccessToken] = {}
        self._id_jags: dict[str, float] = {}  # jti -> exp of every ID-JAG issued

    def now(self) -> float:
        return self.clock()

    # --- pending logins (an authorization request waiting for the login form) ---

    def add_pending(self, request: AuthorizationRequest) -> str:
        """Park a validated request; the returned id goes into the form's `request_id`."""
        self._sweep()
        request_id = new_secret()
        self._pending[request_id] = _Pending(request, self.now() + PENDING_LOGIN_LIFETIME)
        return request_id

    def pending(self, request_id: str) -> AuthorizationRequest | None:
        entry = self._pending.get(request_id)
        if entry is None or entry.expires_at <= self.now():
            return None
        return entry.request

    def drop_pending(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    # --- SSO sessions ---

    def add_session(self, username: str) -> Session:
        self._sweep()
        now = self.now()
        session = Session(new_secret(), username, int(now), now + SESSION_LIFETIME)
        self._sessions[session.session_id] = session
        return session

    def session(self, session_id: str | None) -> Session | None:
        session = self._sessions.get(session_id or "")
        if session is None or session.expires_at <= self.now():
            return None
        return session

    # --- authorization codes ---

    def add_code(
        self, request: AuthorizationRequest, username: str, auth_time: int, lifetime: int
    ) -> str:
        self._sweep()
        code = new_secret()
        self._codes[code] = AuthorizationCode(
            code, request, username, auth_time, self.now() + lifetime
        )
        return code

    def code(self, code: str) -> AuthorizationCode | None:
        """The code record (expired or redeemed ones too, so reuse can be detected)."""
        return self._codes.get(code)

    # --- access tokens ---

    def add_access_token(
        self, username: str, client_id: str, scope: tuple[str, ...], lifetime: int
    ) -> AccessToken:
        token = AccessToken(new_secret(), username, client_id, scope, self.now() + lifetime)
        self._tokens[token.token] = token
        return token

    def access_token(self, token: str) -> AccessToken | None:
        record = self._tokens.get(token)
        if record is None or record.expires_at <= self.now():
            return None
        return record

    def revoke_access_tokens(self, tokens: list[str]) -> None:
        for token in tokens:
            self._tokens.pop(token, None)

    # --- issued ID-JAGs (remembered only so `idp-self-redeem` can recognise its own) ---

    def add_id_jag(self, jti: str, expires_at: float) -> None:
        self._sweep()
        self._id_jags[jti] = expires_at

    def issued_id_jag(self, jti: str) -> bool:
        return self._id_jags.get(jti, 0) > self.now()

    def _sweep(self) -> None:
        """Forget expired entries. Codes are kept a while past expiry to spot reuse."""
        now = self.now()
        self._pending = {k: v for k, v in self._pending.items() if v.expires_at > now}
        self._sessions = {k: v for k, v in self._sessions.items() if v.expires_at > now}
        self._codes = {k: v for k, v in self._codes.items() if v.expires_at + 3600 > now}
        self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now}
        self._id_jags = {k: v for k, v in self._id_jags.items() if v > now}
