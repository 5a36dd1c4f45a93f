"""Fuzzing the second hop's grants: token exchange at the MCP server's authorization server and
ID-JAG redemption at the resource authorization server.

RFC 8693 §2.1 and §2.2.2 (an invalid exchange request or subject token gets an RFC 6749 §5.2
error, `invalid_target` for a target that cannot be served); RFC 7523 §3 and §3.1 (an invalid
assertion gets `invalid_grant`), draft-ietf-oauth-identity-assertion-authz-grant §4.4.1.

Each check first shows that the known-good request works (else `error`), then lets hypothesis
send mutations of it (`conformance.fuzz`): none may get a token or a 5xx.
"""

from __future__ import annotations

import httpx
import pytest

from conformance.discovery import AuthorizationServer
from conformance.fixtures import Run
from conformance.flows import TokenSet
from conformance.fuzz import id_jags, token_exchange
from conformance.fuzz.runner import examples_for, fuzz, optional_signer
from conformance.fuzz.token_requests import post
from conformance.idp import EnterpriseIdp, minted_id_jag
from conformance.oauth.clients import Client
from conformance.oauth.token_exchange import describe, exchange_request, issued
from conformance.second_hop import ExchangeTarget, IdJagClients, IdJagRequest
from conformance.verdict import Verdict

TOKEN_EXCHANGE = "FUZZ-TOKEN-EXCHANGE"
ID_JAG = "FUZZ-ID-JAG"


def _require_token(run: Run, response: httpx.Response, what: str) -> None:
    """The known-good request got a token (remembered for redaction), else `error`."""
    body = issued(response)
    Verdict.precondition(body, f"the known-good {what} got {describe(response)}")
    assert body is not None
    run.redactor.remember(body["access_token"])


@pytest.mark.requirement(TOKEN_EXCHANGE)
def test_malformed_exchange_requests_get_defined_errors(
    pytestconfig: pytest.Config,
    run: Run,
    alice_tokens: TokenSet,
    exchange_client: Client,
    exchange_endpoint: str,
    exchange_target: ExchangeTarget,
    verdict: Verdict,
) -> None:
    """Mutated token-exchange requests never get a token or a 5xx, only a 400 with an
    RFC 6749 §5.2 error code or `invalid_target` (RFC 8693 §2.2.2)."""
    subject = alice_tokens.access_token
    resource, scope = exchange_target.resource, exchange_target.scope
    known_good = tuple(exchange_request(subject, resource, scope))
    response = post(
        run.http, exchange_endpoint, exchange_client, known_good, "known-good: token exchange"
    )
    _require_token(run, response, "token exchange")
    target = token_exchange.target(
        run.http, exchange_endpoint, exchange_client, subject, resource, scope
    )
    fuzz(verdict, TOKEN_EXCHANGE, target, examples_for(pytestconfig))


@pytest.mark.requirement(ID_JAG)
def test_malformed_id_jags_get_defined_errors(
    pytestconfig: pytest.Config,
    request: pytest.FixtureRequest,
    run: Run,
    enterprise_idp: EnterpriseIdp,
    id_jag_clients: IdJagClients,
    alice_id_token: str,
    id_jag_request: IdJagRequest,
    resource_as: AuthorizationServer,
    verdict: Verdict,
) -> None:
    """Mutated ID-JAGs and jwt-bearer requests never get a token or a 5xx at the resource
    authorization server, only a 400 with a defined error code (RFC 7523 §3.1)."""
    endpoint = resource_as.endpoint("token_endpoint")
    Verdict.precondition(endpoint, "the resource AS metadata has no token_endpoint")
    assert endpoint is not None
    run.http.scope.add_url(endpoint)
    client = id_jag_clients.ras

    def mint(note: str) -> str:
        return minted_id_jag(
            run.http,
            enterprise_idp,
            id_jag_clients.idp,
            alice_id_token,
            audience=id_jag_request.audience,
            resource=id_jag_request.resource,
            scope=id_jag_request.scope,
            note=note,
        )

    known_good = id_jags.redemption(mint("known-good: an ID-JAG from the IdP"))
    response = post(run.http, endpoint, client, known_good, "known-good: redeem the ID-JAG")
    _require_token(run, response, "ID-JAG redemption")
    id_jag = mint("the ID-JAG to fuzz (never redeemed)")
    signer = optional_signer(request, "idp_signer")
    if signer is None:
        verdict.note("no IdP test signer: only unsigned mutations of the ID-JAG were sent")
    target = id_jags.target(run.http, endpoint, client, id_jag, signer)
    fuzz(verdict, ID_JAG, target, examples_for(pytestconfig))
