"""Fuzzing the authorization server's token endpoint: malformed token requests and DPoP proofs.

OAuth 2.1 (draft-ietf-oauth-v2-1-13) §3.2 and §3.2.4, RFC 6749 §5.2 (the error response a
malformed request gets), RFC 7636 §4.1, RFC 8707 §2; RFC 9449 §4.3 and §5 (proofs on token
requests, `invalid_dpop_proof`).

Each check fuzzes a known-good request whose code stays unused (`conformance.fuzz`): hypothesis
sends mutations of it, and the check shows that the known-good request itself works, so the
refusals were the mutations' doing.
"""

from __future__ import annotations

import httpx
import pytest

from conformance.dpop_flows import DPoPFlows, bound_tokens, fixed
from conformance.fixtures import Clients, Run
from conformance.flows import Flows
from conformance.fuzz import dpop_proofs, token_requests
from conformance.fuzz.properties import DPOP_ERRORS, TOKEN_ENDPOINT_ERRORS, token_error
from conformance.fuzz.runner import Judgement, examples_for, fuzz
from conformance.oauth.token_exchange import describe
from conformance.verdict import Verdict

TOKEN_ENDPOINT = "FUZZ-TOKEN-ENDPOINT"
DPOP_PROOF = "FUZZ-DPOP-PROOF"


@pytest.mark.requirement(TOKEN_ENDPOINT)
def test_malformed_token_requests_get_defined_errors(
    pytestconfig: pytest.Config, flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Mutated authorization code token requests never get a token or a 5xx, only a 400 (401)
    with an error code of OAuth 2.1 §3.2.4 (RFC 6749 §5.2) or `invalid_target`."""
    client = clients.public
    request = flows.request(client)
    code = flows.code_for(request)
    target = token_requests.target(flows, client, code, request)
    if not fuzz(verdict, TOKEN_ENDPOINT, target, examples_for(pytestconfig)):
        return  # a mutation got through: the code may be spent
    response = flows.redeem(client, code, request, note="known-good: the unmutated request")
    Verdict.precondition(
        flows.token_body(response),
        f"the known-good token request got {describe(response)} after the fuzzing",
    )


@pytest.mark.requirement(DPOP_PROOF)
def test_malformed_dpop_proofs_get_no_token(
    pytestconfig: pytest.Config,
    run: Run,
    dpop_flows: DPoPFlows,
    clients: Clients,
    verdict: Verdict,
) -> None:
    """Token requests with mutated DPoP proofs never get a token or a 5xx, only a 400
    `invalid_dpop_proof` or another defined error (RFC 9449 §4.3, §5)."""
    client = clients.public
    key = dpop_flows.new_key()
    bound_tokens(dpop_flows, client, "alice", key)  # known-good (and the server's nonce)
    flows, url = dpop_flows.flows, dpop_flows.token_endpoint
    request = flows.request(client)
    code = flows.code_for(request)

    def send(proof: str) -> httpx.Response:
        note = "fuzz: a token request with a mutated DPoP proof"
        return dpop_flows.redeem(client, code, request, fixed(proof), note=note, retry=False)

    def judge(response: httpx.Response) -> Judgement:
        flows.token_body(response)  # whatever it issued stays out of the reports
        return token_error(response, TOKEN_ENDPOINT_ERRORS | DPOP_ERRORS)

    target = dpop_proofs.target(
        "token requests with DPoP proofs",
        key,
        url,
        lambda: key.proof("POST", url, nonce=dpop_flows.nonce(url)),
        send,
        judge,
        run.redactor.remember,
    )
    fuzz(verdict, DPOP_PROOF, target, examples_for(pytestconfig))
