"""Test clients: how they authenticate (OAuth 2.1 §2.4) and how they are registered (RFC 7591)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import httpx

from conformance.http import Http


@dataclass(frozen=True)
class Client:
    client_id: str
    redirect_uris: tuple[str, ...]
    client_secret: str | None = None
    auth_method: str = "none"

    @property
    def redirect_uri(self) -> str:
        return self.redirect_uris[0]

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"

    def without_secret(self) -> Client:
        """This client presenting only its `client_id`, as a public client would."""
        return replace(self, client_secret=None, auth_method="none")


def authentication(client: Client) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Headers and form parameters that authenticate `client` at the token endpoint."""
    if client.auth_method == "client_secret_basic" and client.client_secret is not None:
        # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
        user_pass = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
        encoded = base64.b64encode(user_pass.encode()).decode()
        return [("Authorization", f"Basic {encoded}")], []
    if client.auth_method == "client_secret_post" and client.client_secret is not None:
        return [], [("client_id", client.client_id), ("client_secret", client.client_secret)]
    return [], [("client_id", client.client_id)]


def token_request(
    http: Http,
    endpoint: str,
    client: Client,
    params: list[tuple[str, str]],
    note: str = "",
    *,
    headers: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    """POST a token request for `client` (OAuth 2.1 §3.2.2) with its authentication, plus
    any extra `headers` (e.g. RFC 9449 `DPoP` proofs)."""
    auth_headers, auth_params = authentication(client)
    headers = [*auth_headers, *(headers or []), ("Accept", "application/json")]
    return http.post(endpoint, headers=headers, data=[*params, *auth_params], note=note)


def registration_metadata(
    redirect_uris: list[str], auth_method: str = "none", **extra: Any
) -> dict[str, Any]:
    """Client metadata for an MCP-style client (RFC 7591 §2)."""
    return {
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": auth_method,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "mcp-auth-conformance test client",
        **extra,
    }


def register(
    http: Http,
    endpoint: str,
    metadata: dict[str, Any],
    initial_access_token: str | None = None,
    note: str = "",
) -> httpx.Response:
    """POST a client registration request (RFC 7591 §3.1)."""
    headers = [("Accept", "application/json")]
    if initial_access_token:
        headers.append(("Authorization", f"Bearer {initial_access_token}"))
    return http.post(endpoint, headers=headers, json=metadata, note=note)


def client_from_registration(body: dict[str, Any], metadata: dict[str, Any]) -> Client:
    return Client(
        client_id=str(body["client_id"]),
        redirect_uris=tuple(body.get("redirect_uris") or metadata["redirect_uris"]),
        client_secret=body.get("client_secret"),
        auth_method=body.get("token_endpoint_auth_method", metadata["token_endpoint_auth_method"]),
    )
