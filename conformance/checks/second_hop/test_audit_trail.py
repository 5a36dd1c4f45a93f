"""The audit trail of the second hop: every downstream token and call can be traced to a user.

MCP security best practices "Token Passthrough" names lost accountability and audit trails
among the risks a deployment must avoid; an enterprise security review expects each token
exchange and each downstream call to be attributable to the user, the MCP client and the
service (see the catalogue notes: these are derived requirements).

Events are read from the configured source; each call's events are those recorded between
just before and just after it.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.audit import AuditTrail
from conformance.config import DownstreamConfig
from conformance.downstream import ToolCall, Witness, call_tool, credential, subject_of
from conformance.fixtures import Run
from conformance.flows import TokenSet
from conformance.oauth import jwt
from conformance.second_hop import SecondHop
from conformance.verdict import Verdict

REQUIRED_FIELDS = ("time", "event", "user", "client_id", "service", "outcome")


def _events(call: ToolCall) -> list[dict[str, Any]]:
    assert call.audit_events is not None
    return call.audit_events


def _matching(call: ToolCall, kind: str, outcome: str) -> list[dict[str, Any]]:
    user = subject_of(call.tokens.access_token) or call.user
    return [
        event
        for event in _events(call)
        if event.get("event") == kind
        and event.get("user") in (user, call.user)
        and event.get("client_id") == call.tokens.client.client_id
        and event.get("service") == call.service.name
        and event.get("outcome") == outcome
    ]


def _expect_event(
    verdict: Verdict, requirement: str, call: ToolCall, kind: str, outcome: str
) -> None:
    token = call.tokens.access_token
    verdict.precondition(
        not jwt.is_jwt(token) or jwt.claims(token).get("client_id"),
        "alice's access token names no client (client_id claim), so the MCP server cannot "
        "attribute events to the client (see JWTAT-CLAIMS)",
    )
    found = _matching(call, kind, outcome)
    seen = [
        {k: e.get(k) for k in ("event", "user", "client_id", "service", "outcome")}
        for e in _events(call)
    ]
    if not verdict.expect(
        requirement,
        found,
        f"no {kind} event with outcome {outcome} naming user {call.user}, client "
        f"{call.tokens.client.client_id} and service {call.service.name}; the call left {seen}",
    ):
        return
    missing = [f for f in REQUIRED_FIELDS if not found[0].get(f)]
    verdict.expect(requirement, not missing, f"the {kind} event lacks {missing}")


def _audited_call(
    second_hop: SecondHop, service: DownstreamConfig, audit_trail: AuditTrail, verdict: Verdict
) -> ToolCall:
    call = second_hop.reached(service, "alice")
    verdict.attach(call.exchanges)
    verdict.precondition(call.audit_events is not None, "no audit events were read for the call")
    return call


@pytest.mark.requirement("AUDIT-DOWNSTREAM-EVENT")
def test_downstream_call_is_audited(
    second_hop: SecondHop, service: DownstreamConfig, audit_trail: AuditTrail, verdict: Verdict
) -> None:
    """A successful downstream call leaves a `downstream_call` event for the user, the client
    and the service."""
    call = _audited_call(second_hop, service, audit_trail, verdict)
    verdict.precondition(call.succeeded, f"alice's {service.tool} call failed: {call.describe()}")
    _expect_event(verdict, "AUDIT-DOWNSTREAM-EVENT", call, "downstream_call", "success")


def _fresh_credential(call: ToolCall, witness: Witness) -> bool:
    """True when the call's downstream credential was obtained for it: an exchanged token
    never seen before the call (not the client's own token, not a static key)."""
    values = {credential(r) for r in call.api_records} - {None}
    if not values or call.tokens.access_token in values:
        return False
    if any(r.get("token_kind") == "static" for r in call.api_records):
        return False
    first = min(int(r.get("seq", 0)) for r in call.records)
    earlier = {credential(r) for r in witness.since(0) if int(r.get("seq", 0)) < first}
    return not (values & earlier)


@pytest.mark.requirement("AUDIT-EXCHANGE-EVENT")
def test_token_exchange_is_audited(
    second_hop: SecondHop,
    service: DownstreamConfig,
    witness: Witness,
    audit_trail: AuditTrail,
    verdict: Verdict,
) -> None:
    """Obtaining a downstream token for a user leaves a `token_exchange` event."""
    call = _audited_call(second_hop, service, audit_trail, verdict)
    if not _fresh_credential(call, witness):
        pytest.skip(
            f"alice's {service.tool} call obtained no new downstream token "
            "(a cached token, or no exchange at all: see the HOP2 checks)"
        )
    _expect_event(verdict, "AUDIT-EXCHANGE-EVENT", call, "token_exchange", "success")


@pytest.mark.requirement("AUDIT-FAILURE-EVENT")
def test_failed_downstream_call_is_audited(
    run: Run,
    service: DownstreamConfig,
    witness: Witness,
    second_hop: SecondHop,
    alice_tokens: TokenSet,
    audit_trail: AuditTrail,
    verdict: Verdict,
) -> None:
    """A downstream call that fails leaves a `downstream_call` event with outcome failure."""
    with witness.fault("unavailable"):
        call = call_tool(
            run.http,
            run.mcp_url,
            run.config.protocol_version,
            service,
            alice_tokens,
            witness,
            audit_trail,
            note=f"tools/call {service.tool} while {service.name} is unavailable",
        )
    verdict.attach(call.exchanges)
    verdict.precondition(
        call.api_records, f"with {service.name} unavailable the tool made no request to it"
    )
    _expect_event(verdict, "AUDIT-FAILURE-EVENT", call, "downstream_call", "failure")
