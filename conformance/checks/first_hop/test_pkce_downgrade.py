"""PKCE at the token endpoint, attacked: downgrade and malformed verifiers.

RFC 9700 §2.1.1 and §4.8 (PKCE downgrade: a code obtained without a challenge, redeemed with a
verifier), OAuth 2.1 (draft-ietf-oauth-v2-1-13) §4.1.3 and §3.2.4, RFC 7636 §4.1 and §7.1 (the
verifier's grammar and entropy). A code redeemed without any verifier, and one redeemed with a
verifier that does not match, are judged by TOKEN-PKCE-VERIFY (`test_token_endpoint`).
"""

from __future__ import annotations

import httpx
import pytest

from conformance.attempts import accepts_any_verifier, attempt
from conformance.fixtures import Clients
from conformance.flows import Flows, TokenSet
from conformance.oauth.clients import Client
from conformance.oauth.pkce import new_verifier, s256
from conformance.oauth.token_exchange import describe, issued
from conformance.oauth.token_responses import expect_refused
from conformance.verdict import Verdict


@pytest.mark.requirement("TOKEN-PKCE-DOWNGRADE")
def test_verifier_for_a_code_without_challenge_is_refused(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """A code issued without code_challenge is not redeemed with a code_verifier (RFC 9700
    §4.8.2, OAuth 2.1 §4.1.3), which is what a client whose challenge an attacker stripped
    would send."""
    candidates = [c for c in (clients.confidential, clients.public) if c is not None]
    refusals = []
    for client in candidates:
        kind = "public" if client.is_public else "confidential"
        request = flows.request(client).without("code_challenge", "code_challenge_method")
        stripped = attempt(flows, request, f"authorization request without PKCE ({kind} client)")
        if stripped.code is None:
            refusals.append(f"{kind} client: {stripped.describe()}")
            continue
        response = flows.redeem(
            client,
            stripped.code,
            request,
            verifier=new_verifier(),
            note="redeem the code issued without a challenge, with a code_verifier",
        )
        flows.token_body(response)
        if not expect_refused(
            verdict,
            "TOKEN-PKCE-DOWNGRADE",
            response,
            f"a code issued to the {kind} client without code_challenge, redeemed with a "
            "code_verifier",
            codes=("invalid_request",),
        ):
            return
        plain = flows.redeem(
            client, stripped.code, request, verifier=None, note="redeem it without code_verifier"
        )
        flows.token_body(plain)
        verdict.note(
            f"the {kind} client's code issued without code_challenge, redeemed without "
            f"code_verifier: {describe(plain)} (OAuth 2.1 §4.1.3 says such a token request "
            "MUST be rejected; not judged, see the catalogue note)"
        )
        return
    verdict.note(
        "the downgrade path is closed: no code is issued without code_challenge "
        f"({'; '.join(refusals)})"
    )


def _malformed_verifiers() -> list[tuple[str, str]]:
    """Verifiers outside code-verifier = 43*128unreserved (RFC 7636 §4.1)."""
    verifier = new_verifier()
    return [
        ("42 characters", verifier[:42]),
        ("129 characters", (verifier * 4)[:129]),
        ("43 characters with '+' and '/'", verifier[:41] + "+/"),
    ]


def _redeem_with(flows: Flows, client: Client, verifier: str, note: str) -> httpx.Response:
    """A fresh code whose S256 challenge is `verifier`'s, redeemed with `verifier`."""
    request = flows.request(client).with_param("code_challenge", s256(verifier))
    response = flows.redeem(client, flows.code_for(request), request, verifier=verifier, note=note)
    flows.token_body(response)
    return response


@pytest.mark.requirement("TOKEN-PKCE-VERIFIER-SYNTAX")
def test_malformed_verifier_is_refused_even_when_it_matches(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """A verifier outside the grammar is refused though its S256 hash is the challenge
    (RFC 7636 §4.1, OAuth 2.1 §4.1.1 and §3.2.4)."""
    # Known-good: alice's code was redeemed with a 43-character verifier.
    accepted = []
    for label, verifier in _malformed_verifiers():
        what = f"a code_verifier of {label} whose S256 hash is the challenge"
        response = _redeem_with(flows, clients.public, verifier, f"redeem with {what}")
        if issued(response) is not None:
            accepted.append(what)
            continue
        expect_refused(
            verdict,
            "TOKEN-PKCE-VERIFIER-SYNTAX",
            response,
            what,
            ("invalid_request", "invalid_grant"),
        )
    if not accepted:
        return
    # Accepted: a grammar left unchecked, or no verification at all (TOKEN-PKCE-VERIFY)?
    if accepts_any_verifier(flows, clients.public):
        verdict.note(
            "the token endpoint accepts any code_verifier (judged by TOKEN-PKCE-VERIFY), so "
            f"its grammar cannot be judged ({'; '.join(accepted)} got tokens)"
        )
        return
    for what in accepted:
        verdict.fail("TOKEN-PKCE-VERIFIER-SYNTAX", f"{what} got tokens")
