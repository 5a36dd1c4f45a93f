"""The refresh token grant at the authorization server.

OAuth 2.1 (draft-ietf-oauth-v2-1-13) §4.3 (refresh tokens bound to their client), §4.3.1 (the
grant: client binding, scope never beyond the grant, rotation and replay detection for public
clients), §4.3.2 (the response), §3.2.3 (refresh tokens bound to the consented scope and
resource servers); RFC 9700 §2.2.2 and §4.14.2 (rotation, family revocation); RFC 8707 §2.2
(`resource` on refresh); MCP authorization "Token Theft" (public clients: rotation is a MUST).
"""

from __future__ import annotations

import httpx
import pytest

from conformance.checks.refresh import (
    known_good_refresh,
    refresh,
    refreshable,
    rotated_refresh,
)
from conformance.fixtures import Clients, Run
from conformance.flows import Flows
from conformance.oauth import jwt
from conformance.oauth.token_exchange import describe, issued, scopes
from conformance.oauth.token_responses import expect_refused
from conformance.races import concurrently
from conformance.verdict import Verdict

CONCURRENT_REDEMPTIONS = 5


def _audiences(token: str) -> list[str]:
    """The `aud` of a JWT access token (empty for an opaque one)."""
    if not jwt.is_jwt(token):
        return []
    aud = jwt.claims(token).get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud or [] if isinstance(a, str)]


# --- the grant (OAuth 2.1 §4.3.1, §4.3.2) --------------------------------------------------


@pytest.mark.requirement("RT-GRANT-WORKS")
def test_refresh_token_yields_new_access_token(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """A fresh refresh token, presented by its client with `resource` as MCP clients send it,
    gets a new access token (OAuth 2.1 §4.3.1, §4.3.2; RFC 8707 §2.2)."""
    tokens = refreshable(flows, clients.public)
    assert tokens.refresh_token is not None
    response = refresh(flows, clients.public, tokens.refresh_token, note="refresh")
    body = issued(response)
    if not verdict.expect(
        "RT-GRANT-WORKS",
        body is not None,
        f"a fresh refresh token presented by its client (resource={flows.mcp_url}) got "
        f"{describe(response)}, expected 200 with an access token",
    ):
        return
    assert body is not None
    verdict.expect(
        "RT-GRANT-WORKS",
        body["access_token"] != tokens.access_token,
        "the refresh returned the access token issued before, not a new one",
    )


# --- rotation and replay (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2, MCP "Token Theft") ------------


@pytest.mark.requirement("RT-PUBLIC-ROTATION")
def test_public_client_refresh_token_is_rotated(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """A public client's refresh returns a new refresh token (MCP "Token Theft"; OAuth 2.1
    §4.3.1; RFC 9700 §2.2.2)."""
    refreshed = known_good_refresh(flows, clients.public)
    new = refreshed.body.get("refresh_token")
    verdict.expect(
        "RT-PUBLIC-ROTATION",
        refreshed.rotated,
        "the refresh response carries no refresh_token"
        if not new
        else "the refresh response returns the refresh token that was presented",
    )


@pytest.mark.requirement("RT-OLD-INVALID-AFTER-ROTATION")
def test_superseded_refresh_token_is_refused(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """After rotation the presented refresh token is invalidated (OAuth 2.1 §4.3.1)."""
    rotated = rotated_refresh(flows, clients.public)
    replay = refresh(
        flows, clients.public, rotated.presented, note="refresh with the superseded refresh token"
    )
    expect_refused(
        verdict,
        "RT-OLD-INVALID-AFTER-ROTATION",
        replay,
        "the refresh token superseded by rotation, presented again",
    )


@pytest.mark.requirement("RT-REUSE-REVOKES-FAMILY")
def test_reuse_of_superseded_token_revokes_family(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Replaying a superseded refresh token revokes the newest one too (OAuth 2.1 §4.3.1,
    RFC 9700 §4.14.2)."""
    rotated = rotated_refresh(flows, clients.public)
    replay = refresh(
        flows, clients.public, rotated.presented, note="replay the superseded refresh token"
    )
    verdict.precondition(
        issued(replay) is None,
        "the superseded refresh token was accepted again (see RT-OLD-INVALID-AFTER-ROTATION), "
        "so there was no reuse to detect",
    )
    newest = refresh(
        flows,
        clients.public,
        rotated.refresh_token,
        note="refresh with the newest refresh token after the replay",
    )
    expect_refused(
        verdict,
        "RT-REUSE-REVOKES-FAMILY",
        newest,
        f"the newest refresh token, after its predecessor was replayed ({describe(replay)})",
    )


@pytest.mark.requirement("RT-CONCURRENT-REDEMPTION")
def test_concurrent_redemptions_succeed_at_most_once(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Of N refreshes with one refresh token sent at the same moment, at most one gets tokens
    (derived from OAuth 2.1 §4.3.1: a rotated token is invalidated on use)."""
    tokens = refreshable(flows, clients.public)
    rt = tokens.refresh_token
    assert rt is not None
    n = CONCURRENT_REDEMPTIONS

    def send(index: int) -> httpx.Response:
        return refresh(flows, clients.public, rt, note=f"concurrent refresh {index + 1} of {n}")

    responses = concurrently(n, send)
    granted = [r for r in responses if issued(r) is not None]
    verdict.precondition(
        granted,
        f"none of {n} concurrent refreshes with a fresh refresh token succeeded "
        f"({', '.join(describe(r) for r in responses)})",
    )
    if len(granted) > 1:
        # A race only if the token is single-use when replayed alone; otherwise the token is
        # simply not invalidated on use, which other rows judge.
        again = refresh(flows, clients.public, rt, note="the same refresh token once more, alone")
        verdict.precondition(
            issued(again) is None,
            "the refresh token is accepted again when replayed on its own, so it is not "
            "single-use (see RT-PUBLIC-ROTATION, RT-OLD-INVALID-AFTER-ROTATION) and a race "
            "cannot be judged",
        )
    verdict.expect(
        "RT-CONCURRENT-REDEMPTION",
        len(granted) <= 1,
        f"{len(granted)} of {n} concurrent refreshes with one refresh token got tokens, "
        "though the token is refused when replayed on its own",
    )


# --- binding to the client (OAuth 2.1 §4.3, §4.3.1) ----------------------------------------


@pytest.mark.requirement("RT-BOUND-TO-CLIENT")
def test_refresh_token_is_bound_to_its_client(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Another client cannot redeem a refresh token (OAuth 2.1 §4.3.1, §3.2.4 invalid_grant)."""
    if clients.second_public.client_id == clients.public.client_id:
        pytest.skip("no second public test client (client.second_public)")
    refreshed = known_good_refresh(flows, clients.public)
    response = refresh(
        flows,
        clients.second_public,
        refreshed.refresh_token,
        note="refresh the public client's token as the second public client",
    )
    expect_refused(
        verdict,
        "RT-BOUND-TO-CLIENT",
        response,
        "a refresh token of the public client presented with another client's client_id",
    )


@pytest.mark.requirement("RT-BOUND-TO-CLIENT")
def test_confidential_client_must_authenticate_to_refresh(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """A confidential client's refresh without its credentials is refused (OAuth 2.1 §4.3.1)."""
    confidential = clients.confidential
    if confidential is None or confidential.client_secret is None:
        pytest.skip("no confidential test client with a secret")
    refreshed = known_good_refresh(flows, confidential)
    response = refresh(
        flows,
        confidential.without_secret(),
        refreshed.refresh_token,
        note="refresh the confidential client's token with its client_id only",
    )
    expect_refused(
        verdict,
        "RT-BOUND-TO-CLIENT",
        response,
        "the confidential client refreshed with its client_id only",
        codes=("invalid_client",),
        statuses=(400, 401),
    )


# --- scope and resource stay within the grant (OAuth 2.1 §3.2.3, §4.3.1; RFC 8707 §2.2) ----


@pytest.mark.requirement("RT-SCOPE-NO-WIDEN")
def test_refresh_cannot_widen_scope(
    run: Run, flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """A refresh asking for a scope never granted is invalid_scope (OAuth 2.1 §4.3.1)."""
    basic, privileged = flows.basic_scope, run.config.privileged_scope
    if not basic or not privileged:
        pytest.skip("no basic and privileged scopes configured (scopes.basic, scopes.privileged)")
    refreshed = known_good_refresh(flows, clients.public)
    verdict.precondition(
        privileged not in scopes(refreshed.tokens.body.get("scope")),
        f"a grant for scope {basic!r} already includes {privileged!r}",
    )
    wider = f"{basic} {privileged}"
    response = refresh(
        flows,
        clients.public,
        refreshed.refresh_token,
        [("scope", wider)],
        note=f"refresh asking for scope {wider!r}",
    )
    what = f"a refresh of a grant for {basic!r} asking for {wider!r}"
    body = issued(response)
    if body is None:
        expect_refused(verdict, "RT-SCOPE-NO-WIDEN", response, what, codes=("invalid_scope",))
        return
    token = str(body["access_token"])
    stated = scopes(body.get("scope"))
    carried = scopes(jwt.claims(token).get("scope")) if jwt.is_jwt(token) else set()
    if privileged in stated | carried:
        verdict.fail(
            "RT-SCOPE-NO-WIDEN",
            f"{what} got a token with scope {sorted(carried) or sorted(stated)}",
        )
        return
    verdict.tolerate(
        "RT-SCOPE-NO-WIDEN",
        f"{what} got 200 with the grant's scope {sorted(stated)}, "
        "where invalid_scope is the defined answer",
    )


@pytest.mark.requirement("RT-RESOURCE-BOUND")
def test_refresh_cannot_change_resource(
    flows: Flows, clients: Clients, second_resource: str, verdict: Verdict
) -> None:
    """A refresh for a resource outside the grant yields no token (OAuth 2.1 §3.2.3, RFC 8707
    §2.2)."""
    refreshed = known_good_refresh(flows, clients.public)  # granted for the MCP server
    response = refresh(
        flows,
        clients.public,
        refreshed.refresh_token,
        [("resource", second_resource)],
        note="refresh for a resource outside the grant",
    )
    body = issued(response)
    what = f"a refresh of a grant for the MCP server asking for resource={second_resource}"
    if body is not None:
        verdict.fail(
            "RT-RESOURCE-BOUND",
            f"{what} got a token (aud {_audiences(str(body['access_token']))})",
        )
        return
    verdict.expect(
        "RT-RESOURCE-BOUND",
        400 <= response.status_code < 500,
        f"{what} got {describe(response)}, expected 400 invalid_target",
    )
