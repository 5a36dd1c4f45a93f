"""Refresh tokens and their lifecycle at the authorization server: the refresh grant (OAuth 2.1
§4.3), revocation (RFC 7009), introspection (RFC 7662) and expiry.

The builders the checks of this package share: one refresh request, a fresh grant with a
refresh token (skipping when the AS issues none), and the known-good refresh that negative
checks start from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conformance.flows import Flows, TokenSet
from conformance.oauth.clients import Client, token_request
from conformance.oauth.token_exchange import describe, issued
from conformance.verdict import Verdict

NO_REFRESH_TOKEN = "the AS issues no refresh token to the test client"


def refresh(
    flows: Flows,
    client: Client,
    refresh_token: str,
    extra: list[tuple[str, str]] | None = None,
    *,
    note: str,
) -> httpx.Response:
    """A refresh token request (OAuth 2.1 §4.3.1) as `client`, with `resource` = the MCP server
    as MCP clients send it (RFC 8707 §2.2) unless `extra` names another; tokens it yields are
    remembered for redaction."""
    params = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)]
    extra = list(extra or [])
    if not any(name == "resource" for name, _ in extra):
        params.append(("resource", flows.mcp_url))
    response = token_request(flows.http, flows.token_endpoint, client, [*params, *extra], note=note)
    flows.token_body(response)
    return response


def refreshable(flows: Flows, client: Client, user: str = "alice") -> TokenSet:
    """A complete known-good flow whose response carries a refresh token (else: skipped)."""
    tokens = flows.tokens(client, user)
    if tokens.refresh_token is None:
        pytest.skip(NO_REFRESH_TOKEN)
    return tokens


@dataclass
class Refreshed:
    """A fresh grant and the known-good refresh made with its refresh token."""

    client: Client
    tokens: TokenSet
    body: dict[str, Any]

    @property
    def presented(self) -> str:
        """The refresh token the known-good refresh presented."""
        assert self.tokens.refresh_token is not None  # refreshable() skips otherwise
        return self.tokens.refresh_token

    @property
    def rotated(self) -> bool:
        new = self.body.get("refresh_token")
        return isinstance(new, str) and bool(new) and new != self.presented

    @property
    def refresh_token(self) -> str:
        """The refresh token to use next: the new one, or the same one without rotation."""
        return str(self.body["refresh_token"]) if self.rotated else self.presented

    @property
    def access_token(self) -> str:
        return str(self.body["access_token"])


def known_good_refresh(flows: Flows, client: Client) -> Refreshed:
    """Sign in, then refresh once; a refused refresh is a lost precondition, not a verdict."""
    tokens = refreshable(flows, client)
    assert tokens.refresh_token is not None
    response = refresh(flows, client, tokens.refresh_token, note="known-good: refresh")
    body = issued(response)
    Verdict.precondition(body, f"known-good: a fresh refresh token got {describe(response)}")
    assert body is not None
    return Refreshed(client, tokens, body)


def rotated_refresh(flows: Flows, client: Client) -> Refreshed:
    """A known-good refresh that rotated the refresh token: checks about the superseded token
    build on it."""
    refreshed = known_good_refresh(flows, client)
    Verdict.precondition(
        refreshed.rotated,
        "the refresh returned no new refresh token, so there is no superseded one to present "
        "(see RT-PUBLIC-ROTATION)",
    )
    return refreshed
