"""DPoP on the second hop, from what the downstream services recorded.

Where a service requires DPoP, the MCP server is an ordinary DPoP client of it (RFC 9449):
its token request carries a proof (§5), and every API call the DPoP scheme with a fresh proof
for that very request, bound to the token's key (§4.2, §7.1). The suite re-verifies every
recorded proof itself (§4.3) and judges `jti` uniqueness across requests, since a service need
not keep a replay cache (§11.1). Whatever the service, no proof made for the MCP request or
bound to the client's token may reach it (§4.3; security best practices "Token Passthrough").
"""

from __future__ import annotations

from collections import Counter

import pytest

from conformance.config import DownstreamConfig
from conformance.downstream import (
    Record,
    Witness,
    claims_of,
    credential,
    proof_of,
    record_summary,
)
from conformance.fixtures import Run
from conformance.oauth.dpop import ProofError, access_token_hash, normalise_uri, verify_proof
from conformance.second_hop import SecondHop
from conformance.verdict import Verdict

_REPEATS = 2  # calls with one cached token: their proofs must still differ


def _dpop_services(run: Run, second_hop: SecondHop) -> list[DownstreamConfig]:
    """The configured services that require DPoP, as alice's baseline call recorded it."""
    if not run.config.downstream:
        pytest.skip("no downstream service configured ([[downstream]] in the target config)")
    found = [
        service
        for service in run.config.downstream
        if any(r.get("dpop_required") is True for r in second_hop.reached(service, "alice").records)
    ]
    if not found:
        names = ", ".join(s.name for s in run.config.downstream)
        pytest.skip(f"no downstream service requires DPoP ({names}: dpop_required is false)")
    return found


def _judge_api_call(verdict: Verdict, service: str, url: str, record: Record) -> str | None:
    """§7.1: the DPoP scheme, a bound token and a proof for this request by its key; the
    proof's `jti` when it verifies."""
    rid, summary = "HOP2-DOWNSTREAM-DPOP", record_summary(service, record)
    jkt = (claims_of(record).get("cnf") or {}).get("jkt")
    token, proof = credential(record), record.get("dpop")
    if not verdict.expect(
        rid,
        record.get("authorization_scheme") == "DPoP" and isinstance(jkt, str) and token,
        f"not a DPoP-bound token under the DPoP scheme ({record.get('authorization_scheme')} "
        f"scheme, cnf.jkt {jkt!r}): {summary}",
    ):
        return None
    if not verdict.expect(rid, isinstance(proof, str), f"no DPoP proof: {summary}"):
        return None
    assert isinstance(proof, str) and isinstance(token, str)
    try:
        verified = verify_proof(
            proof,
            method=str(record.get("method")),
            url=url,
            access_token=token,
            jkt=jkt,
            now=int(record.get("time") or 0) or None,
        )
    except ProofError as exc:
        verdict.fail(rid, f"the proof does not hold: {exc} ({summary})")
        return None
    return str(verified.claims["jti"])


def _judge_token_request(verdict: Verdict, service: str, url: str, record: Record) -> str | None:
    """§5: the token request to the service's AS carries a valid proof."""
    proof = record.get("dpop")
    summary = f"{service} token request #{record.get('seq')} answered {record.get('status')}"
    if not verdict.expect(
        "HOP2-DOWNSTREAM-DPOP", isinstance(proof, str), f"no DPoP proof: {summary}"
    ):
        return None
    assert isinstance(proof, str)
    try:
        verified = verify_proof(
            proof, method="POST", url=url, now=int(record.get("time") or 0) or None
        )
    except ProofError as exc:
        verdict.fail("HOP2-DOWNSTREAM-DPOP", f"the proof does not hold: {exc} ({summary})")
        return None
    return str(verified.claims["jti"])


@pytest.mark.requirement("HOP2-DOWNSTREAM-DPOP")
def test_dpop_services_get_fresh_bound_proofs(
    run: Run, second_hop: SecondHop, verdict: Verdict
) -> None:
    """For each service that requires DPoP: alice's and bob's calls, and two more of alice's
    with her cached token. Each API call has a valid proof bound to its token (htm, htu, ath,
    key), each token request a valid proof, and no `jti` is sent twice (RFC 9449 §4.2, §4.3,
    §5, §7.1). One check for all such services, so a service without DPoP is no skip."""
    for service in _dpop_services(run, second_hop):
        origin = Witness(run.http, service).origin
        calls = [second_hop.reached(service, user) for user in ("alice", "bob")]
        calls += [
            second_hop.again(service, "alice", f"tools/call {service.tool} as alice again ({n})")
            for n in range(1, _REPEATS + 1)
        ]
        jtis: Counter[str] = Counter()
        for call in calls:
            verdict.attach(call.exchanges)
            for record in call.records:
                url = f"{origin}{record.get('path')}"
                if record.get("kind") == "api":
                    jti = _judge_api_call(verdict, service.name, url, record)
                else:
                    jti = _judge_token_request(verdict, service.name, url, record)
                if jti is not None:
                    jtis[jti] += 1
        reused = sorted(jti for jti, n in jtis.items() if n > 1)
        verdict.expect(
            "HOP2-DOWNSTREAM-DPOP",
            not reused,
            f"{len(reused)} proof jti value(s) went to {service.name} on more than one request",
        )


@pytest.mark.requirement("HOP2-NO-DPOP-PROOF-FORWARDING")
def test_client_dpop_proof_not_relayed_downstream(
    run: Run, second_hop: SecondHop, service: DownstreamConfig, verdict: Verdict
) -> None:
    """No proof for the MCP request (`htu` the MCP endpoint) and none bound to the client's
    token (`ath`) reaches the service, at its API or its AS (RFC 9449 §4.3)."""
    rid = "HOP2-NO-DPOP-PROOF-FORWARDING"
    mcp_endpoint = normalise_uri(run.mcp_url)
    verdict.note("the suite presented Bearer tokens to the MCP server")
    for user in ("alice", "bob"):
        call = second_hop.reached(service, user)
        verdict.attach(call.exchanges)
        client_ath = access_token_hash(call.tokens.access_token)
        for record in call.records:
            found = proof_of(record)
            if found is None:
                continue
            htu, ath = found[1].get("htu"), found[1].get("ath")
            summary = record_summary(service.name, record)
            verdict.expect(
                rid,
                not (isinstance(htu, str) and normalise_uri(htu) == mcp_endpoint),
                f"{user}'s call carried a DPoP proof for the MCP endpoint ({htu}): {summary}",
            )
            verdict.expect(
                rid,
                ath != client_ath,
                f"{user}'s call carried a DPoP proof bound to {user}'s own MCP access token: "
                f"{summary}",
            )
