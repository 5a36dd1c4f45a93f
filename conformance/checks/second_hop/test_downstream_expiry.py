"""The second hop when the downstream token stops working: renewed once, never looped, never
replaced by another credential.

The mock service is told to expire every token it has issued or seen so far (tokens obtained
afterwards work), or to refuse every token with 401 until cleared; then alice's connector tool
is called and the service's records show what the MCP server did. RFC 6750 §3.1
(`invalid_token`: the client may obtain a new token and retry), RFC 6749 §1.5; MCP 2025-11-25
authorization "Access Token Privilege Restriction" and security best practices "Token
Passthrough" (a replacement credential is still the user's own).
"""

from __future__ import annotations

import pytest

from conformance.config import DownstreamConfig
from conformance.downstream import (
    REJECT_TOKENS,
    Record,
    ToolCall,
    Witness,
    claims_of,
    credential,
    record_summary,
)
from conformance.second_hop import SecondHop
from conformance.verdict import Verdict

MAX_ATTEMPTS = 2  # the call and one retry

_expired: dict[str, ToolCall] = {}
_refused: dict[str, ToolCall] = {}


def _after_expiry(second_hop: SecondHop, service: DownstreamConfig, witness: Witness) -> ToolCall:
    """Alice's call right after the service expired every token it knew (once per service).
    Her baseline call came first, so the MCP server holds a token the service has seen."""
    if service.name not in _expired:
        second_hop.reached(service, "alice")
        witness.expire_tokens()
        _expired[service.name] = second_hop.again(
            service, "alice", f"tools/call {service.tool} after {service.name} expired"
        )
    return _expired[service.name]


def _while_refusing(second_hop: SecondHop, service: DownstreamConfig, witness: Witness) -> ToolCall:
    """Alice's call while the service refuses every token with 401 (once per service)."""
    if service.name not in _refused:
        second_hop.reached(service, "alice")
        with witness.fault(REJECT_TOKENS):
            _refused[service.name] = second_hop.again(
                service, "alice", f"tools/call {service.tool} while {service.name} refuses tokens"
            )
    return _refused[service.name]


def _reached(call: ToolCall, service: DownstreamConfig, what: str) -> list[Record]:
    Verdict.precondition(
        call.api_records, f"{what}, the tool made no request to {service.name} ({call.describe()})"
    )
    return call.api_records


def _user_of(record: Record) -> object:
    """Who a request acted for: its token's `sub` (the service records it decoded)."""
    return claims_of(record).get("sub") or record.get("user")


@pytest.mark.requirement("HOP2-EXPIRY-RENEWS")
def test_expired_downstream_token_is_renewed(
    second_hop: SecondHop,
    service: DownstreamConfig,
    witness: Witness,
    verdict: Verdict,
) -> None:
    """After the service expires alice's token, her next call succeeds: one 401 for the old
    token, then exactly one call with a new token for the same user (RFC 6750 §3.1)."""
    rid = "HOP2-EXPIRY-RENEWS"
    baseline = second_hop.reached(service, "alice")
    verdict.precondition(
        baseline.succeeded,
        f"alice's {service.tool} call failed before any token expired: {baseline.describe()}",
    )
    call = _after_expiry(second_hop, service, witness)
    verdict.attach(call.exchanges)
    first, *retries = _reached(call, service, f"after {service.name} expired every token")
    if first.get("status") != 401:
        pytest.skip(
            f"the MCP server did not present a token {service.name} had expired (its first "
            f"call answered {first.get('status')}): it gets a new token per call, so there "
            "is nothing to renew"
        )
    verdict.expect(
        rid,
        call.succeeded,
        f"after {service.name} expired alice's token, the tool call ended: {call.describe()}",
    )
    verdict.expect(
        rid,
        len(retries) == 1,
        f"after the 401 the MCP server made {len(retries)} more calls to {service.name}, "
        "not exactly one retry",
    )
    for record in retries[:1]:
        summary = record_summary(service.name, record)
        verdict.expect(
            rid,
            credential(record) != credential(first)
            and record.get("token_kind") == "jwt"
            and _user_of(record) == _user_of(first),
            f"the retry did not carry a new token for the user of the expired one "
            f"({_user_of(first)!r}): {summary}",
        )
        verdict.expect(rid, record.get("status") == 200, f"the retry was refused: {summary}")


@pytest.mark.requirement("HOP2-EXPIRY-NO-LOOP")
def test_refused_tokens_are_not_retried_in_a_loop(
    second_hop: SecondHop,
    service: DownstreamConfig,
    witness: Witness,
    verdict: Verdict,
) -> None:
    """While the service refuses every token, one tool call makes at most two attempts and
    ends in an error."""
    rid = "HOP2-EXPIRY-NO-LOOP"
    call = _while_refusing(second_hop, service, witness)
    verdict.attach(call.exchanges)
    attempts = _reached(call, service, f"with {service.name} refusing every token")
    verdict.expect(
        rid,
        len(attempts) <= MAX_ATTEMPTS,
        f"one tool call made {len(attempts)} calls to {service.name}, which refused every "
        f"token (at most {MAX_ATTEMPTS}: the call and one retry)",
    )
    verdict.expect(
        rid,
        not call.succeeded,
        f"with {service.name} refusing every token, the tool call succeeded: {call.text[:200]!r}",
    )
    verdict.note(f"the tool call ended: {call.describe()}")


@pytest.mark.requirement("HOP2-EXPIRY-NO-FALLBACK")
def test_retry_uses_only_the_users_own_token(
    second_hop: SecondHop,
    service: DownstreamConfig,
    witness: Witness,
    verdict: Verdict,
) -> None:
    """Every retry after a refused token (after an expiry, and while every token is refused)
    carries a token for the user of the refused one: no integration key, no other user's
    token, no shared credential. Whom the first attempt's token names is HOP2-USER-SCOPED's
    to judge, and whether it is shared HOP2-NOT-SHARED's."""
    rid = "HOP2-EXPIRY-NO-FALLBACK"
    others = {credential(r) for r in second_hop.reached(service, "bob").api_records} - {None}
    retried = False
    for call, what in (
        (_after_expiry(second_hop, service, witness), f"after {service.name} expired"),
        (_while_refusing(second_hop, service, witness), "while every token was refused"),
    ):
        verdict.attach(call.exchanges)
        first, *retries = _reached(call, service, what)
        retried = retried or bool(retries)
        for record in retries:
            summary = record_summary(service.name, record)
            verdict.expect(
                rid,
                record.get("token_kind") != "static",
                f"{what}, a static credential reached {service.name}: {summary}",
            )
            verdict.expect(
                rid,
                credential(record) not in others,
                f"{what}, bob's credential reached {service.name} for alice: {summary}",
            )
            verdict.expect(
                rid,
                record.get("token_kind") == "static" or _user_of(record) == _user_of(first),
                f"{what}, the retry acted for {_user_of(record)!r}, the refused token for "
                f"{_user_of(first)!r}: {summary}",
            )
    if not retried:
        verdict.note(f"the MCP server never retried a refused call to {service.name}")
