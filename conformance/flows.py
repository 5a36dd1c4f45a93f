"""The authorization code flow (OAuth 2.1 §4.1) driven step by step against the target AS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from conformance.config import TargetConfig
from conformance.discovery import AuthorizationServer, json_object
from conformance.errors import PreconditionFailed
from conformance.evidence import Exchange
from conformance.http import Http, recording
from conformance.login import FormLogin, sign_in
from conformance.oauth.authorization import (
    AuthorizationRequest,
    AuthorizationResponse,
    same_endpoint,
)
from conformance.oauth.clients import Client, token_request

_DEFAULT: Any = object()


@dataclass
class TokenSet:
    client: Client
    user: str
    response: httpx.Response
    body: dict[str, Any]
    exchanges: list[Exchange] = field(default_factory=list)  # the whole flow, as evidence

    @property
    def access_token(self) -> str:
        return str(self.body["access_token"])

    @property
    def refresh_token(self) -> str | None:
        value = self.body.get("refresh_token")
        return str(value) if value else None


class Flows:
    """Builds known-good requests and runs them; negative checks alter one step."""

    def __init__(
        self,
        pytest_config: pytest.Config,
        config: TargetConfig,
        http: Http,
        server: AuthorizationServer,
        mcp_url: str,
        basic_scope: str | None,
    ) -> None:
        self.pytest_config = pytest_config
        self.config = config
        self.http = http
        self.server = server
        self.mcp_url = mcp_url
        self.basic_scope = basic_scope
        self._driver = FormLogin(config)
        self._user_http: dict[str, Http] = {}

    @property
    def authorization_endpoint(self) -> str:
        endpoint = self.server.endpoint("authorization_endpoint")
        Flows._require(endpoint, "AS metadata has no authorization_endpoint")
        return str(endpoint)

    @property
    def token_endpoint(self) -> str:
        endpoint = self.server.endpoint("token_endpoint")
        Flows._require(endpoint, "AS metadata has no token_endpoint")
        return str(endpoint)

    @staticmethod
    def _require(condition: Any, message: str) -> None:
        if not condition:
            raise PreconditionFailed(message)

    def request(
        self,
        client: Client,
        *,
        resource: str | None = _DEFAULT,
        scope: str | None = _DEFAULT,
        redirect_uri: str | None = None,
    ) -> AuthorizationRequest:
        return AuthorizationRequest.build(
            self.authorization_endpoint,
            client.client_id,
            redirect_uri or client.redirect_uri,
            resource=self.mcp_url if resource is _DEFAULT else resource,
            scope=self.basic_scope if scope is _DEFAULT else scope,
        )

    def send(
        self, request: AuthorizationRequest, note: str = "authorization request"
    ) -> httpx.Response:
        """Send the authorization request without signing in or following redirects."""
        return self.http.get(request.url, note=note)

    def redirect_target(
        self, response: httpx.Response, request: AuthorizationRequest
    ) -> str | None:
        """The absolute Location when `response` redirects to the request's redirect URI."""
        if not response.is_redirect:
            return None
        location = urljoin(request.endpoint, response.headers.get("location", ""))
        return location if same_endpoint(location, request.redirect_uri) else None

    def close(self) -> None:
        """Close the signed-in users' clients."""
        for http in self._user_http.values():
            http.close()
        self._user_http.clear()

    def user_http(self, user: str) -> Http:
        if user not in self._user_http:
            self._user_http[user] = self.http.fork()
        return self._user_http[user]

    def authorize(
        self, request: AuthorizationRequest, user: str = "alice"
    ) -> AuthorizationResponse:
        """Run the request through the user's sign-in; return what reached the redirect URI."""
        credentials = self.config.user(user)
        if credentials is None:
            pytest.skip(f"no test user {user!r} in the target config")
        location = sign_in(
            self.pytest_config,
            self._driver,
            self.user_http(user),
            request.url,
            credentials,
            request.redirect_uri,
        )
        return AuthorizationResponse.parse(location)

    def code_for(self, request: AuthorizationRequest, user: str = "alice") -> str:
        response = self.authorize(request, user)
        Flows._require(
            response.code,
            f"known-good authorization request got no code (error={response.error!r})",
        )
        return str(response.code)

    def redemption(
        self,
        code: str,
        request: AuthorizationRequest | None,
        extra: list[tuple[str, str]] | None = None,
        *,
        verifier: str | None = _DEFAULT,
    ) -> list[tuple[str, str]]:
        """The parameters of a token request redeeming `code` (OAuth 2.1 §4.1.3), without the
        client's authentication."""
        params = [("grant_type", "authorization_code"), ("code", code)]
        if verifier is _DEFAULT:
            verifier = request.pkce.verifier if request and request.pkce else None
        if verifier is not None:
            params.append(("code_verifier", verifier))
        extra = list(extra or [])
        # MCP clients send `resource` to the token endpoint too (RFC 8707 §2.2), unless a
        # check sets its own.
        resource = request.param("resource") if request else None
        if resource and not any(name == "resource" for name, _ in extra):
            params.append(("resource", resource))
        params.extend(extra)
        return params

    def redeem(
        self,
        client: Client,
        code: str,
        request: AuthorizationRequest | None,
        extra: list[tuple[str, str]] | None = None,
        *,
        verifier: str | None = _DEFAULT,
        note: str = "token request",
        headers: list[tuple[str, str]] | None = None,
    ) -> httpx.Response:
        params = self.redemption(code, request, extra, verifier=verifier)
        return token_request(
            self.http, self.token_endpoint, client, params, note=note, headers=headers
        )

    def token_body(self, response: httpx.Response) -> dict[str, Any] | None:
        """The body of a successful token response, its tokens remembered for redaction."""
        body = json_object(response)
        if response.status_code != 200 or not body or not body.get("access_token"):
            return None
        self.http.redactor.remember(body.get("access_token"))
        self.http.redactor.remember(body.get("refresh_token"))
        return body

    def tokens(
        self,
        client: Client,
        user: str = "alice",
        *,
        resource: str | None = _DEFAULT,
        scope: str | None = _DEFAULT,
    ) -> TokenSet:
        """A complete known-good flow; any failure is a lost precondition, not a verdict."""
        request = self.request(client, resource=resource, scope=scope)
        with recording() as exchanges:
            code = self.code_for(request, user)
            response = self.redeem(client, code, request)
        body = self.token_body(response)
        Flows._require(body, f"known-good token request failed with {response.status_code}")
        assert body is not None
        return TokenSet(client, user, response, body, exchanges)
