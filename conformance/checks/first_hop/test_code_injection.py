"""Authorization code injection across clients: OAuth 2.1 (draft-ietf-oauth-v2-1-13) §4.1.2
(a code is bound to its client), §4.1.3 and §7.5.1, RFC 9700 §4.5.

A code issued to the public test client is presented by another client, each time with
everything its rightful owner would send: the owner's code_verifier, resource and, in one
variant, redirect_uri. The server refuses it with invalid_grant. The plainest variant (the
second public client with the owner's verifier) is `test_code_is_bound_to_its_client` in
`test_token_endpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from conformance.fixtures import Clients
from conformance.flows import Flows, TokenSet
from conformance.oauth.clients import Client
from conformance.oauth.token_exchange import describe
from conformance.oauth.token_responses import expect_refused
from conformance.verdict import Verdict


@dataclass(frozen=True)
class _Thief:
    """Another client presenting the owner's code, and how it may be refused."""

    label: str
    client: Client
    extra: list[tuple[str, str]] = field(default_factory=list)
    codes: tuple[str, ...] = ("invalid_grant",)
    statuses: tuple[int, ...] = (400,)


def _thieves(clients: Clients) -> list[_Thief]:
    owner = clients.public
    thieves = []
    if clients.second_public.client_id != owner.client_id:
        thieves.append(
            _Thief(
                "the second public client, with the owner's verifier and redirect_uri",
                clients.second_public,
                [("redirect_uri", owner.redirect_uri)],
            )
        )
    if clients.confidential is not None and clients.confidential.client_secret is not None:
        thieves.append(
            _Thief(
                "the confidential client, authenticated, with the owner's verifier",
                clients.confidential,
            )
        )
        # Authenticated as itself while naming the owner: a conflict, refused in any case
        # (OAuth 2.1 §3.2.4 lists both invalid_request and invalid_client for it).
        thieves.append(
            _Thief(
                "the confidential client, authenticated, naming the owner's client_id",
                clients.confidential,
                [("client_id", owner.client_id)],
                ("invalid_grant", "invalid_request", "invalid_client"),
                (400, 401),
            )
        )
    return thieves


@pytest.mark.requirement("TOKEN-CODE-BOUND-CLIENT")
def test_code_of_one_client_is_refused_to_others(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """No other client redeems the public client's code, even with its verifier, redirect URI
    and resource (OAuth 2.1 §4.1.3: "ensure that the authorization code was issued to the
    authenticated confidential client, or ... to client_id in the request")."""
    thieves = _thieves(clients)
    if not thieves:
        pytest.skip("no second public or confidential test client to present another's code")
    for thief in thieves:
        request = flows.request(clients.public)
        code = flows.code_for(request)
        response = flows.redeem(
            thief.client, code, request, thief.extra, note=f"redeem as {thief.label}"
        )
        flows.token_body(response)
        expect_refused(
            verdict,
            "TOKEN-CODE-BOUND-CLIENT",
            response,
            f"the public client's code redeemed by {thief.label}",
            thief.codes,
            thief.statuses,
        )
        owner = flows.redeem(clients.public, code, request, note="the owner redeems its code")
        if flows.token_body(owner) is None:
            verdict.note(
                f"after the attempt by {thief.label}, the owner's own redemption got "
                f"{describe(owner)} (the code may be invalidated by a failed attempt)"
            )
