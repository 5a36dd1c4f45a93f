"""How the MCP server behaves when a downstream service fails.

The mock service is switched to fail (`server_error`: 500 with internal detail in the body;
`unavailable`: 503), then the connector tool is called. MCP 2025-11-25 server/tools "Error
Handling" (a failure while executing a tool is reported in the tool result with `isError`,
not as a protocol error); security best practices "Token Passthrough" and client/elicitation
"URL Mode" (third-party credentials never travel back to the MCP client).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from conformance import mcp
from conformance.config import DownstreamConfig
from conformance.downstream import FAULT_MODES, ToolCall, Witness, call_tool, credential
from conformance.errors import PreconditionFailed
from conformance.fixtures import Run
from conformance.flows import TokenSet
from conformance.http import recording
from conformance.second_hop import SecondHop
from conformance.verdict import Verdict

CANARY = "MOCK-SAAS-INTERNAL-DETAIL"
_LEAK_MARKERS = (CANARY, "Traceback (most recent call last)")


@dataclass
class FaultedCall:
    mode: str
    call: ToolCall


_faulted: dict[tuple[str, str], FaultedCall] = {}


def _faulted_call(
    run: Run, service: DownstreamConfig, witness: Witness, alice: TokenSet, mode: str
) -> FaultedCall:
    """Alice's tool call while the service fails in `mode` (made once per service and mode)."""
    key = (service.name, mode)
    if key not in _faulted:
        with witness.fault(mode):
            call = call_tool(
                run.http,
                run.mcp_url,
                run.config.protocol_version,
                service,
                alice,
                witness,
                note=f"tools/call {service.tool} while {service.name} answers {mode}",
            )
        _faulted[key] = FaultedCall(mode, call)
    faulted = _faulted[key]
    if not faulted.call.api_records:
        raise PreconditionFailed(
            f"with {service.name} failing ({mode}) the tool made no request to it "
            f"({faulted.call.describe()})"
        )
    return faulted


@pytest.mark.requirement("HOP2-FAILURE-TOOL-ERROR")
@pytest.mark.parametrize("mode", FAULT_MODES)
def test_downstream_failure_is_a_tool_error(
    run: Run,
    service: DownstreamConfig,
    witness: Witness,
    second_hop: SecondHop,
    alice_tokens: TokenSet,
    mode: str,
    verdict: Verdict,
) -> None:
    """A failing downstream service yields HTTP 200 with a tool result marked `isError`."""
    faulted = _faulted_call(run, service, witness, alice_tokens, mode)
    verdict.attach(faulted.call.exchanges)
    response = faulted.call.response
    result = faulted.call.result
    verdict.expect(
        "HOP2-FAILURE-TOOL-ERROR",
        response.status_code == 200 and result is not None and result.get("isError") is True,
        f"with {service.name} answering {mode}, tools/call got {mcp.describe(response)}"
        + (f" and a result with isError={result.get('isError')!r}" if result else " and no result"),
    )


@pytest.mark.requirement("HOP2-FAILURE-NO-LEAK")
@pytest.mark.parametrize("mode", FAULT_MODES)
def test_downstream_failure_leaks_nothing(
    run: Run,
    service: DownstreamConfig,
    witness: Witness,
    second_hop: SecondHop,
    alice_tokens: TokenSet,
    mode: str,
    verdict: Verdict,
) -> None:
    """The error the client sees carries no downstream token, no downstream response body and
    no stack trace."""
    faulted = _faulted_call(run, service, witness, alice_tokens, mode)
    verdict.attach(faulted.call.exchanges)
    body = faulted.call.response.text
    tokens = {credential(r) for r in faulted.call.records} - {None}
    tokens |= {alice_tokens.access_token}
    verdict.expect(
        "HOP2-FAILURE-NO-LEAK",
        not any(t and t in body for t in tokens),
        f"the MCP response repeats a token the {service.name} call carried",
    )
    shown = [marker for marker in _LEAK_MARKERS if marker in body]
    verdict.expect(
        "HOP2-FAILURE-NO-LEAK",
        not shown,
        f"the MCP response repeats internal detail of the {service.name} failure: {shown}",
    )


def _other_calls_work(
    run: Run, service: DownstreamConfig, alice: TokenSet, second_hop: SecondHop
) -> list[str]:
    """Calls that need no failing service: tools/list, and the tools of the other services
    that worked for alice before the outage."""
    problems: list[str] = []
    session = mcp.Session.open(
        run.http, run.mcp_url, alice.access_token, run.config.protocol_version
    )
    listed = session.send(mcp.jsonrpc("tools/list"), "tools/list during the outage")
    if mcp.result_of(listed) is None:
        problems.append(f"tools/list got {mcp.describe(listed)}")
    for other in run.config.downstream:
        if other.name == service.name or not _worked(second_hop, other):
            continue
        response = session.send(
            mcp.tools_call(other.tool, dict(other.arguments)),
            f"tools/call {other.tool} during the {service.name} outage",
        )
        result = mcp.result_of(response)
        if result is None or result.get("isError"):
            problems.append(f"{other.tool} got {mcp.describe(response)}")
    return problems


def _worked(second_hop: SecondHop, service: DownstreamConfig) -> bool:
    """Whether alice's baseline call of the service's tool succeeded."""
    try:
        return second_hop.call(service, "alice").succeeded
    except PreconditionFailed:
        return False


def _recovered(run: Run, service: DownstreamConfig, alice: TokenSet) -> httpx.Response:
    session = mcp.Session.open(
        run.http, run.mcp_url, alice.access_token, run.config.protocol_version
    )
    return session.send(
        mcp.tools_call(service.tool, dict(service.arguments)),
        f"tools/call {service.tool} after {service.name} recovered",
    )


@pytest.mark.requirement("HOP2-FAILURE-ISOLATED")
def test_server_keeps_serving_during_an_outage(
    run: Run,
    service: DownstreamConfig,
    witness: Witness,
    second_hop: SecondHop,
    alice_tokens: TokenSet,
    verdict: Verdict,
) -> None:
    """While one service fails, other MCP calls still work; once it recovers, so does its tool."""
    with recording() as exchanges:
        with witness.fault("server_error"):
            session = mcp.Session.open(
                run.http, run.mcp_url, alice_tokens.access_token, run.config.protocol_version
            )
            failed = session.send(
                mcp.tools_call(service.tool, dict(service.arguments)),
                f"tools/call {service.tool} while {service.name} fails",
            )
            problems = _other_calls_work(run, service, alice_tokens, second_hop)
        recovered = _recovered(run, service, alice_tokens)
    verdict.attach(exchanges)
    verdict.note(f"the failing call got {mcp.describe(failed)}")
    verdict.expect(
        "HOP2-FAILURE-ISOLATED",
        not problems,
        f"while {service.name} failed, other calls failed too: {'; '.join(problems)}",
    )
    if not _worked(second_hop, service):
        verdict.note(f"{service.tool} failed before the outage too; recovery is not judged")
        return
    result = mcp.result_of(recovered)
    verdict.expect(
        "HOP2-FAILURE-ISOLATED",
        result is not None and not result.get("isError"),
        f"after {service.name} recovered, {service.tool} still got {mcp.describe(recovered)}",
    )
