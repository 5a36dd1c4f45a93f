"""What the MCP server sends downstream, as the mock Salesforce and Workday witnessed it.

Each check calls the service's connector tool as alice (and, where users are compared, as
bob), then judges the requests the mock service recorded: the credential, its decoded claims
and the data that went back.

MCP 2025-11-25 authorization "Access Token Privilege Restriction" and security best practices
"Token Passthrough" (the client's token never travels downstream; the downstream token is
issued by the downstream's authorization server for it); RFC 8693 §1.1 and §2.1 (an exchanged
token acts for the same subject, for the requested audience); draft-ietf-oauth-identity-
assertion-authz-grant "Cross-Domain Use" (an ID-JAG is presented only to the AS it names).
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.config import DownstreamConfig
from conformance.discovery import AuthorizationServer
from conformance.downstream import (
    Record,
    ToolCall,
    Witness,
    credential,
    record_summary,
    subject_of,
)
from conformance.fixtures import Run
from conformance.oauth import jwt
from conformance.oauth.token_exchange import JWT_BEARER, audiences, scopes
from conformance.second_hop import SecondHop, expected_issuer
from conformance.verdict import Verdict


def _alice(second_hop: SecondHop, service: DownstreamConfig, verdict: Verdict) -> ToolCall:
    call = second_hop.reached(service, "alice")
    verdict.attach(call.exchanges)
    return call


def _both(
    second_hop: SecondHop, service: DownstreamConfig, verdict: Verdict
) -> tuple[ToolCall, ToolCall]:
    alice = _alice(second_hop, service, verdict)
    bob = second_hop.reached(service, "bob")
    verdict.attach(bob.exchanges)
    return alice, bob


def _claims(record: Record) -> dict[str, Any] | None:
    claims = record.get("claims")
    return claims if isinstance(claims, dict) else None


def _expected_subject(call: ToolCall) -> str:
    """The user's `sub` as the MCP server saw it: the inbound JWT's, else the username."""
    return subject_of(call.tokens.access_token) or call.user


@pytest.mark.requirement("HOP2-NO-PASSTHROUGH")
def test_client_token_not_passed_downstream(
    second_hop: SecondHop, service: DownstreamConfig, verdict: Verdict
) -> None:
    """The credential the service receives is never the MCP client's own token (by value or
    by `jti`), at its API or at its authorization server."""
    call = _alice(second_hop, service, verdict)
    inbound = call.tokens.access_token
    inbound_jti = jwt.claims(inbound).get("jti") if jwt.is_jwt(inbound) else None
    own = {inbound, call.tokens.refresh_token} - {None}
    for record in call.records:
        values = [credential(record), record.get("assertion")]
        claims = _claims(record) or {}
        passed = any(v in own for v in values if v) or (
            inbound_jti is not None and claims.get("jti") == inbound_jti
        )
        verdict.expect(
            "HOP2-NO-PASSTHROUGH",
            not passed,
            f"the client's own access token reached {service.name}: "
            f"{record_summary(service.name, record)}",
        )


@pytest.mark.requirement("HOP2-DOWNSTREAM-AUDIENCE")
def test_downstream_token_is_for_that_service(
    second_hop: SecondHop,
    service: DownstreamConfig,
    authorization_server: AuthorizationServer,
    verdict: Verdict,
) -> None:
    """Every API call carries a token issued by the AS the service trusts, whose audience is
    that service's resource and nothing else."""
    call = _alice(second_hop, service, verdict)
    issuer = expected_issuer(service, authorization_server)
    for record in call.api_records:
        claims = _claims(record)
        summary = record_summary(service.name, record)
        if not verdict.expect(
            "HOP2-DOWNSTREAM-AUDIENCE",
            claims is not None,
            f"not an audience-restricted token: {summary}",
        ):
            continue
        assert claims is not None
        verdict.expect(
            "HOP2-DOWNSTREAM-AUDIENCE",
            audiences(claims.get("aud")) == [service.resource],
            f"aud is {claims.get('aud')!r}, expected only {service.resource!r}: {summary}",
        )
        verdict.expect(
            "HOP2-DOWNSTREAM-AUDIENCE",
            claims.get("iss") == issuer,
            f"iss is {claims.get('iss')!r}, expected {issuer!r}: {summary}",
        )


@pytest.mark.requirement("HOP2-USER-SCOPED")
def test_downstream_token_names_the_user(
    second_hop: SecondHop, service: DownstreamConfig, verdict: Verdict
) -> None:
    """Alice's call reaches the service as alice, and bob's as bob (`sub` of the token)."""
    for call in _both(second_hop, service, verdict):
        expected = _expected_subject(call)
        for record in call.api_records:
            claims = _claims(record) or {}
            verdict.expect(
                "HOP2-USER-SCOPED",
                claims.get("sub") == expected,
                f"{call.user}'s call carried sub={claims.get('sub')!r}, expected {expected!r}: "
                f"{record_summary(service.name, record)}",
            )


@pytest.mark.requirement("HOP2-DOWNSTREAM-SCOPES")
def test_downstream_scopes_within_configuration(
    second_hop: SecondHop, service: DownstreamConfig, verdict: Verdict
) -> None:
    """The downstream token carries no scope beyond what the service is configured for."""
    if not service.scopes:
        pytest.skip(f"no scopes configured for {service.name} (downstream.scopes)")
    allowed = set(service.scopes.split())
    call = _alice(second_hop, service, verdict)
    for record in call.api_records:
        claims = _claims(record)
        summary = record_summary(service.name, record)
        if claims is None:
            verdict.fail("HOP2-DOWNSTREAM-SCOPES", f"a credential with no scope limit: {summary}")
            continue
        extra = scopes(claims.get("scope")) - allowed
        verdict.expect(
            "HOP2-DOWNSTREAM-SCOPES",
            not extra,
            f"scope beyond {' '.join(sorted(allowed))}: {' '.join(sorted(extra))} ({summary})",
        )


@pytest.mark.requirement("HOP2-DOWNSTREAM-SHORT-LIVED")
def test_downstream_token_is_short_lived(
    second_hop: SecondHop, service: DownstreamConfig, verdict: Verdict
) -> None:
    """The downstream token expires within the configured bound (default one hour)."""
    call = _alice(second_hop, service, verdict)
    for record in call.api_records:
        claims = _claims(record) or {}
        exp, iat = claims.get("exp"), claims.get("iat")
        summary = record_summary(service.name, record)
        if not isinstance(exp, int | float):
            verdict.fail("HOP2-DOWNSTREAM-SHORT-LIVED", f"a credential with no expiry: {summary}")
            continue
        start = iat if isinstance(iat, int | float) else record.get("time", exp)
        verdict.expect(
            "HOP2-DOWNSTREAM-SHORT-LIVED",
            exp - start <= service.max_token_lifetime,
            f"lives {int(exp - start)} s, more than {service.max_token_lifetime} s: {summary}",
        )


@pytest.mark.requirement("HOP2-NOT-SHARED")
def test_users_get_their_own_downstream_credentials(
    second_hop: SecondHop, service: DownstreamConfig, verdict: Verdict
) -> None:
    """Alice's and bob's calls carry different credentials: no shared key or token."""
    alice, bob = _both(second_hop, service, verdict)

    def identities(call: ToolCall) -> set[str]:
        found = set()
        for record in call.api_records:
            value = credential(record)
            claims = _claims(record) or {}
            if value:
                found.add(value)
            if isinstance(claims.get("jti"), str):
                found.add(f"jti:{claims['jti']}")
        return found

    shared = identities(alice) & identities(bob)
    verdict.expect(
        "HOP2-NOT-SHARED",
        not shared,
        f"alice and bob reached {service.name} with the same credential: "
        + "; ".join(record_summary(service.name, r) for r in bob.api_records),
    )
    for record in alice.api_records + bob.api_records:
        verdict.expect(
            "HOP2-NOT-SHARED",
            record.get("token_kind") != "static",
            f"a static credential reached {service.name}: {record_summary(service.name, record)}",
        )


@pytest.mark.requirement("HOP2-USER-ISOLATION")
def test_bob_never_receives_alices_data(
    second_hop: SecondHop, service: DownstreamConfig, verdict: Verdict
) -> None:
    """What the service returned for bob's call holds none of alice's data, and neither does
    the tool result bob got."""
    alice, bob = _both(second_hop, service, verdict)
    alice_sub, bob_sub = _expected_subject(alice), _expected_subject(bob)
    alice_items = {
        str(item.get("id"))
        for record in alice.api_records
        for item in record.get("returned") or []
        if isinstance(item, dict) and item.get("owner") == alice_sub
    }
    verdict.precondition(alice_items, f"{service.name} returned no data for alice's call")
    for record in bob.api_records:
        foreign = [
            item
            for item in record.get("returned") or []
            if isinstance(item, dict) and item.get("owner") not in (bob_sub, None)
        ]
        verdict.expect(
            "HOP2-USER-ISOLATION",
            not foreign,
            f"bob's call got {len(foreign)} record(s) of other users from {service.name} "
            f"(owners {sorted({str(i.get('owner')) for i in foreign})})",
        )
    leaked = sorted(item for item in alice_items if item in bob.text)
    verdict.expect(
        "HOP2-USER-ISOLATION",
        not leaked,
        f"bob's tool result contains alice's {service.name} records {leaked}",
    )


@pytest.mark.requirement("HOP2-IDJAG-AUDIENCE")
def test_id_jag_presented_only_to_the_as_it_names(
    run: Run,
    second_hop: SecondHop,
    id_jag_service: DownstreamConfig,
    authorization_server: AuthorizationServer,
    verdict: Verdict,
) -> None:
    """An ID-JAG the MCP server redeems at the service's AS is addressed to that AS."""
    service = id_jag_service
    call = second_hop.call(service, "alice")
    verdict.attach(call.exchanges)
    grants = [r for r in call.token_records if r.get("grant_type") == JWT_BEARER]
    if not grants:  # a token cached from an earlier call: judge every grant in the log
        grants = [
            r
            for r in Witness(run.http, service).since(0)
            if r.get("kind") == "token" and r.get("grant_type") == JWT_BEARER
        ]
    verdict.precondition(
        grants, f"calling {service.tool} as alice presented no ID-JAG to {service.name}"
    )
    issuer = expected_issuer(service, authorization_server)
    for record in grants:
        claims = record.get("assertion_claims")
        aud = audiences(claims.get("aud")) if isinstance(claims, dict) else []
        verdict.expect(
            "HOP2-IDJAG-AUDIENCE",
            aud == [issuer],
            f"the ID-JAG presented to {service.name} (record #{record.get('seq')}) is addressed "
            f"to {aud or 'nobody'}, not {issuer!r}",
        )
