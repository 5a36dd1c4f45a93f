"""Authorization requests (OAuth 2.1 §4.1.1) and their responses (§4.1.2, RFC 9207).

Requests are kept as ordered parameter pairs so a negative check can change exactly one
thing: replace a value, drop a parameter, or repeat one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

from conformance.oauth.pkce import Pkce


@dataclass
class AuthorizationRequest:
    endpoint: str
    params: list[tuple[str, str]]
    pkce: Pkce | None
    state: str | None
    redirect_uri: str

    @classmethod
    def build(
        cls,
        endpoint: str,
        client_id: str,
        redirect_uri: str,
        *,
        resource: str | None,
        scope: str | None,
    ) -> AuthorizationRequest:
        """A known-good request: code flow, S256 PKCE, fresh state, `resource` (RFC 8707)."""
        pkce = Pkce.s256()
        state = secrets.token_urlsafe(16)
        params = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("code_challenge", pkce.challenge),
            ("code_challenge_method", pkce.method),
            ("state", state),
        ]
        if scope:
            params.append(("scope", scope))
        if resource:
            params.append(("resource", resource))
        return cls(endpoint, params, pkce, state, redirect_uri)

    def with_param(self, name: str, value: str) -> AuthorizationRequest:
        """The same request with one parameter replaced (or added)."""
        params = [(k, v) for k, v in self.params if k != name]
        index = next((i for i, (k, _) in enumerate(self.params) if k == name), len(params))
        params.insert(index, (name, value))
        redirect_uri = value if name == "redirect_uri" else self.redirect_uri
        state = value if name == "state" else self.state
        return AuthorizationRequest(self.endpoint, params, self.pkce, state, redirect_uri)

    def without(self, *names: str) -> AuthorizationRequest:
        params = [(k, v) for k, v in self.params if k not in names]
        state = None if "state" in names else self.state
        return AuthorizationRequest(self.endpoint, params, self.pkce, state, self.redirect_uri)

    def repeated(self, name: str, value: str) -> AuthorizationRequest:
        """The same request with `name` sent a second time, with `value`."""
        return AuthorizationRequest(
            self.endpoint, [*self.params, (name, value)], self.pkce, self.state, self.redirect_uri
        )

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.params if k == name), None)

    @property
    def url(self) -> str:
        separator = "&" if "?" in self.endpoint else "?"
        return f"{self.endpoint}{separator}{urlencode(self.params)}"


@dataclass
class AuthorizationResponse:
    """The parameters a redirect delivered to the client's redirect URI."""

    url: str
    query: dict[str, list[str]] = field(default_factory=dict)
    fragment: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> AuthorizationResponse:
        parts = urlsplit(url)
        return cls(
            url,
            parse_qs(parts.query, keep_blank_values=True),
            parse_qs(parts.fragment, keep_blank_values=True),
        )

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def code(self) -> str | None:
        return self.one("code")

    @property
    def error(self) -> str | None:
        return self.one("error")


def same_endpoint(url: str, redirect_uri: str) -> bool:
    """True when `url` targets `redirect_uri` (scheme, host, port and path; query ignored)."""
    a, b = urlsplit(url), urlsplit(redirect_uri)
    return (a.scheme, a.hostname, a.port, a.path) == (b.scheme, b.hostname, b.port, b.path)
