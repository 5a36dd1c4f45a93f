"""Fuzzing the MCP server: malformed access tokens, DPoP proofs and JSON-RPC requests.

MCP 2025-11-25 authorization "Token Handling" (invalid tokens MUST get 401), OAuth 2.1
(draft-ietf-oauth-v2-1-13) §5.3, RFC 6750 §3.1, RFC 9068 §4; RFC 9449 §4.3 and §7.1 (the
`DPoP` scheme); MCP basic "Messages" and basic/transports (one UTF-8 JSON-RPC message per POST,
400 for an invalid `MCP-Protocol-Version`), JSON-RPC 2.0 §4, §5.1.

Each check first shows that the known-good request is served (else `error`), then lets
hypothesis send mutations of it (`conformance.fuzz`): none may be served, reach a downstream
service, or get a 5xx.
"""

from __future__ import annotations

import httpx
import pytest

from conformance import mcp
from conformance.downstream import Witness, record_summary
from conformance.dpop_flows import DPoPTokenSet
from conformance.fixtures import Run
from conformance.flows import TokenSet
from conformance.fuzz import access_tokens, dpop_proofs, mcp_requests
from conformance.fuzz.properties import resource_error
from conformance.fuzz.runner import examples_for, fuzz, optional_signer
from conformance.second_hop import SecondHop
from conformance.verdict import Verdict

ACCESS_TOKEN = "FUZZ-ACCESS-TOKEN"
DPOP_PROOF = "FUZZ-DPOP-PROOF"
MCP_REQUEST = "FUZZ-MCP-REQUEST"


def _require_served(response: httpx.Response, what: str) -> None:
    Verdict.precondition(
        response.is_success and mcp.result_of(response) is not None,
        f"the known-good {what} got {mcp.describe(response)}",
    )


@pytest.mark.requirement(ACCESS_TOKEN)
def test_malformed_access_tokens_are_not_served(
    pytestconfig: pytest.Config,
    request: pytest.FixtureRequest,
    run: Run,
    alice_tokens: TokenSet,
    verdict: Verdict,
) -> None:
    """Mutated access tokens are never served and never get a 5xx: 401 with a Bearer
    challenge naming `invalid_token` (MCP "Token Handling", RFC 6750 §3.1)."""
    token = alice_tokens.access_token
    _require_served(mcp.present(run, token, "known-good: initialize"), "initialize")
    signer = optional_signer(request, "token_signer")
    if signer is None:
        verdict.note("no test token signer: only unsigned mutations of the token were sent")
    target = access_tokens.target(
        token,
        lambda value: mcp.present(run, value, "fuzz: a mutated access token"),
        resource_error,
        signer,
    )
    fuzz(verdict, ACCESS_TOKEN, target, examples_for(pytestconfig))


@pytest.mark.requirement(DPOP_PROOF)
def test_malformed_dpop_proofs_are_not_served(
    pytestconfig: pytest.Config, run: Run, alice_dpop_tokens: DPoPTokenSet, verdict: Verdict
) -> None:
    """Requests with a DPoP-bound token and a mutated proof are never served and never get a
    5xx: 401 with a DPoP challenge naming `invalid_dpop_proof` or `invalid_token`
    (RFC 9449 §7.1)."""
    key, token, url = alice_dpop_tokens.key, alice_dpop_tokens.access_token, run.mcp_url
    initialize = mcp.initialize(run.config.protocol_version)

    def send(proof: str, note: str = "fuzz: a mutated DPoP proof") -> httpx.Response:
        dpop = [("DPoP", proof)]
        return mcp.post(
            run.http, url, initialize, token=token, scheme="DPoP", extra_headers=dpop, note=note
        )

    def proof() -> str:
        return key.proof("POST", url, access_token=token)

    _require_served(send(proof(), "known-good: initialize with a valid proof"), "DPoP request")
    target = dpop_proofs.target(
        "MCP requests with DPoP proofs",
        key,
        url,
        proof,
        send,
        lambda response: resource_error(response, ("DPoP",)),
        run.redactor.remember,
        at_resource=True,
    )
    fuzz(verdict, DPOP_PROOF, target, examples_for(pytestconfig))


@pytest.mark.requirement(MCP_REQUEST)
def test_malformed_mcp_requests_get_errors(
    pytestconfig: pytest.Config,
    run: Run,
    alice_tokens: TokenSet,
    second_hop: SecondHop,
    verdict: Verdict,
) -> None:
    """Mutated JSON-RPC requests get a 4xx or a JSON-RPC error, never a tool result, a call
    to the downstream service or a 5xx (MCP basic/transports, JSON-RPC 2.0 §5.1)."""
    # `second_hop` has made the users' first downstream calls before any of these.
    session = mcp.Session.open(
        run.http, run.mcp_url, alice_tokens.access_token, run.config.protocol_version
    )
    service = next(iter(run.config.downstream), None)
    if service is None:
        message = mcp.jsonrpc("tools/list")
        reached = None
        _require_served(session.send(message, "known-good: tools/list"), "tools/list")
    else:
        message = mcp.tools_call(service.tool, dict(service.arguments))
        witness = Witness(run.http, service)
        cursor = [witness.cursor()]

        def reached() -> str | None:
            records = witness.since(cursor[0])
            cursor[0] = max([cursor[0], *(int(r.get("seq", 0)) for r in records)])
            api = [r for r in records if r.get("kind") == "api"]
            return record_summary(service.name, api[0]) if api else None

        response = session.send(message, f"known-good: tools/call {service.tool}")
        _require_served(response, f"tools/call {service.tool}")
        Verdict.precondition(
            reached(), f"the known-good tools/call made no request to {service.name}"
        )
    target = mcp_requests.target(message, mcp_requests.sender(session), reached)
    fuzz(verdict, MCP_REQUEST, target, examples_for(pytestconfig))
