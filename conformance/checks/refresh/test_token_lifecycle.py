"""Revocation, introspection and expiry of the tokens the authorization server issues.

RFC 7009 §2 (refresh tokens MUST be revocable), §2.1 (revoking a refresh token SHOULD revoke the
access tokens of its grant), §2.2 (200 also for an invalid token); RFC 7662 §2.2 (inactive
tokens answer `active: false`, and SHOULD NOT be described further), §4; OAuth 2.1
(draft-ietf-oauth-v2-1-13) §4.3.1 (the grant must still be active and the refresh token
valid), §3.2.4 (`invalid_grant` for an expired or revoked refresh token).

Expiry checks need short lifetimes: the target's lifetime hook (`hooks.lifetimes`) shortens them
for a client the suite registers, or `[lifetimes]` declares them; an expiry that takes longer
than `--max-expiry-wait` is skipped with that reason.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

import httpx
import pytest

from conformance.checks.refresh import (
    Refreshed,
    known_good_refresh,
    refresh,
    refreshable,
)
from conformance.discovery import json_object
from conformance.errors import PreconditionFailed
from conformance.evidence import Exchange
from conformance.expiry import EXPIRY_MARGIN, ExpiredTokens
from conformance.fixtures import Clients
from conformance.flows import Flows, TokenSet
from conformance.http import recording
from conformance.oauth.clients import Client, token_request
from conformance.oauth.token_exchange import describe, issued
from conformance.oauth.token_responses import expect_refused
from conformance.verdict import Verdict

# --- revocation (RFC 7009) -----------------------------------------------------------------


def _revocation_endpoint(flows: Flows) -> str:
    endpoint = flows.server.endpoint("revocation_endpoint")
    if not endpoint:
        pytest.skip("the AS advertises no revocation_endpoint (RFC 8414 §2)")
    return str(endpoint)


def _revoke(flows: Flows, endpoint: str, client: Client, token: str, what: str) -> httpx.Response:
    """RFC 7009 §2.1: the client revokes one of its refresh tokens, authenticating as it does
    at the token endpoint."""
    params = [("token", token), ("token_type_hint", "refresh_token")]
    return token_request(flows.http, endpoint, client, params, note=f"revoke {what}")


def _revoke_after_refresh(flows: Flows, clients: Clients) -> Refreshed:
    """A known-good refresh, then the client revokes the refresh token it got (200)."""
    endpoint = _revocation_endpoint(flows)
    refreshed = known_good_refresh(flows, clients.public)
    revoked = _revoke(flows, endpoint, clients.public, refreshed.refresh_token, "it")
    Verdict.precondition(revoked.status_code == 200, f"revocation got {describe(revoked)}")
    return refreshed


def _revoked_refresh_token(flows: Flows, clients: Clients) -> Refreshed:
    """A revoked refresh token, confirmed refused at the token endpoint: unusable beyond
    doubt."""
    refreshed = _revoke_after_refresh(flows, clients)
    after = refresh(
        flows, clients.public, refreshed.refresh_token, note="the revoked token is refused"
    )
    Verdict.precondition(
        issued(after) is None,
        "the revoked refresh token still works (see RT-REVOKED-REJECTED)",
    )
    return refreshed


@pytest.mark.requirement("REVOKE-RT")
def test_revocation_endpoint_answers_200(flows: Flows, clients: Clients, verdict: Verdict) -> None:
    """Revoking a refresh token, an unknown token and a revoked one again all answer 200
    (RFC 7009 §2, §2.2)."""
    endpoint = _revocation_endpoint(flows)
    tokens = refreshable(flows, clients.public)
    assert tokens.refresh_token is not None
    cases = (
        (tokens.refresh_token, "a fresh refresh token"),
        (secrets.token_urlsafe(32), "a token the AS never issued"),
        (tokens.refresh_token, "the same refresh token again"),
    )
    for token, what in cases:
        response = _revoke(flows, endpoint, clients.public, token, what)
        verdict.expect(
            "REVOKE-RT",
            response.status_code == 200,
            f"revoking {what} got {describe(response)}, expected 200",
        )


@pytest.mark.requirement("RT-REVOKED-REJECTED")
def test_revoked_refresh_token_is_refused(flows: Flows, clients: Clients, verdict: Verdict) -> None:
    """A refresh token revoked through RFC 7009 no longer refreshes (OAuth 2.1 §4.3.1: the
    grant must still be active)."""
    refreshed = _revoke_after_refresh(flows, clients)
    response = refresh(
        flows, clients.public, refreshed.refresh_token, note="refresh with the revoked token"
    )
    expect_refused(
        verdict,
        "RT-REVOKED-REJECTED",
        response,
        "a refresh token revoked at the revocation endpoint (200)",
    )


# --- introspection (RFC 7662) --------------------------------------------------------------


@dataclass
class Introspector:
    """The introspection endpoint and a client that may call it, shown to work on a fresh
    access token."""

    endpoint: str
    client: Client
    exchanges: list[Exchange] = field(default_factory=list)

    def introspect(self, flows: Flows, token: str, hint: str, what: str) -> httpx.Response:
        params = [("token", token), ("token_type_hint", hint)]
        return token_request(flows.http, self.endpoint, self.client, params, note=what)


@pytest.fixture(scope="module")
def introspector(flows: Flows, clients: Clients, alice_tokens: TokenSet) -> Introspector:
    endpoint = flows.server.endpoint("introspection_endpoint")
    if not endpoint:
        pytest.skip("the AS advertises no introspection_endpoint (RFC 8414 §2)")
    if clients.confidential is None or clients.confidential.client_secret is None:
        pytest.skip("no confidential test client to authenticate to the introspection endpoint")
    found = Introspector(str(endpoint), clients.confidential)
    with recording(found.exchanges):
        response = found.introspect(
            flows, alice_tokens.access_token, "access_token", "known-good: a fresh access token"
        )
    body = json_object(response)
    if response.status_code != 200 or not body or body.get("active") is not True:
        raise PreconditionFailed(
            f"introspecting a fresh access token got {response.status_code} "
            f"{_members(body)}, expected active: true"
        )
    return found


def _members(body: dict[str, object] | None) -> str:
    if body is None:
        return "(not a JSON object)"
    return f"active={body.get('active')!r} with members {sorted(body)}"


def _expect_inactive(verdict: Verdict, response: httpx.Response, what: str) -> None:
    """RFC 7662 §2.2: 200 `{"active": false}`, and (SHOULD) nothing more."""
    body = json_object(response)
    inactive = response.status_code == 200 and body is not None and body.get("active") is False
    if not verdict.expect(
        "INTROSPECT-INACTIVE",
        inactive,
        f"introspecting {what} got {response.status_code} {_members(body)}, expected active: false",
    ):
        return
    assert body is not None
    extra = sorted(set(body) - {"active"})
    verdict.expect(
        "INTROSPECT-INACTIVE-NO-DETAILS",
        not extra,
        f"introspecting {what} answers active: false but also {extra}",
    )


@pytest.mark.requirement("INTROSPECT-INACTIVE", "INTROSPECT-INACTIVE-NO-DETAILS")
def test_unknown_token_introspects_inactive(
    flows: Flows, introspector: Introspector, verdict: Verdict
) -> None:
    """A token the AS never issued is inactive (RFC 7662 §2.2)."""
    verdict.attach(introspector.exchanges)
    what = "a token the AS never issued"
    response = introspector.introspect(flows, secrets.token_urlsafe(32), "access_token", what)
    _expect_inactive(verdict, response, what)


@pytest.mark.requirement("INTROSPECT-INACTIVE", "INTROSPECT-INACTIVE-NO-DETAILS")
def test_revoked_refresh_token_introspects_inactive(
    flows: Flows, clients: Clients, introspector: Introspector, verdict: Verdict
) -> None:
    """A revoked refresh token, refused at the token endpoint, is inactive (RFC 7662 §2.2)."""
    verdict.attach(introspector.exchanges)
    revoked = _revoked_refresh_token(flows, clients)
    what = "the revoked refresh token"
    response = introspector.introspect(flows, revoked.refresh_token, "refresh_token", what)
    _expect_inactive(verdict, response, what)


@pytest.mark.requirement("REVOKE-RT-CASCADE")
def test_revoking_refresh_token_revokes_its_access_tokens(
    flows: Flows, clients: Clients, introspector: Introspector, verdict: Verdict
) -> None:
    """The access token of a revoked refresh token's grant is inactive too (RFC 7009 §2.1)."""
    verdict.attach(introspector.exchanges)
    revoked = _revoked_refresh_token(flows, clients)
    own = introspector.introspect(
        flows, revoked.refresh_token, "refresh_token", "the revoked refresh token"
    )
    verdict.precondition(
        (json_object(own) or {}).get("active") is False,
        f"introspection still reports the revoked refresh token as active ({own.status_code}), "
        "so it cannot tell whether the access token was revoked (see INTROSPECT-INACTIVE)",
    )
    response = introspector.introspect(
        flows, revoked.access_token, "access_token", "the access token of the revoked grant"
    )
    body = json_object(response)
    verdict.expect(
        "REVOKE-RT-CASCADE",
        response.status_code == 200 and body is not None and body.get("active") is False,
        f"after its refresh token was revoked, the grant's access token introspects as "
        f"{response.status_code} {_members(body)}",
    )


# --- expiry (OAuth 2.1 §4.3.1, §3.2.4; RFC 7662 §2.2) --------------------------------------


@pytest.fixture(scope="module")
def expired_tokens(expiring_tokens: ExpiredTokens) -> ExpiredTokens:
    """The expiring tokens, once all of them are past their lifetimes."""
    time.sleep(max(0.0, expiring_tokens.expired_at - time.monotonic()))
    return expiring_tokens


@pytest.mark.requirement("RT-EXPIRED-REJECTED")
def test_expired_refresh_token_is_refused(
    flows: Flows, expired_tokens: ExpiredTokens, verdict: Verdict
) -> None:
    """A refresh token past its lifetime no longer refreshes (OAuth 2.1 §4.3.1, §3.2.4)."""
    verdict.attach(expired_tokens.exchanges)
    if expired_tokens.refresh_token is None:
        pytest.skip(expired_tokens.skipped["refresh_token"])
    known_good = expired_tokens.refreshed
    verdict.precondition(
        issued(known_good), f"known-good: a fresh refresh token got {describe(known_good)}"
    )
    response = refresh(
        flows,
        expired_tokens.client,
        expired_tokens.refresh_token,
        note="refresh after the refresh token's lifetime",
    )
    expect_refused(
        verdict,
        "RT-EXPIRED-REJECTED",
        response,
        f"a refresh token presented {EXPIRY_MARGIN:g} s after its lifetime ended",
    )


@pytest.mark.requirement("INTROSPECT-INACTIVE", "INTROSPECT-INACTIVE-NO-DETAILS")
def test_expired_access_token_introspects_inactive(
    flows: Flows, introspector: Introspector, expired_tokens: ExpiredTokens, verdict: Verdict
) -> None:
    """An access token past its lifetime is inactive (RFC 7662 §2.2)."""
    verdict.attach(introspector.exchanges)
    verdict.attach(expired_tokens.exchanges)
    if expired_tokens.access_token is None:
        pytest.skip(expired_tokens.skipped["access_token"])
    what = "an access token past its lifetime"
    response = introspector.introspect(flows, expired_tokens.access_token, "access_token", what)
    _expect_inactive(verdict, response, what)
