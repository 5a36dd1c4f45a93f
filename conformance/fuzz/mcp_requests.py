"""Fuzzed MCP requests: a known-good JSON-RPC request in an initialized session, mutated
(MCP basic "Messages", basic/transports "Sending Messages to the Server" and "Protocol Version
Header"; JSON-RPC 2.0 §4, §5).

The known-good request is a `tools/call` of a tool that reaches a downstream service (else
`tools/list`), with a valid token, session and protocol version. Each mutation makes it
invalid: `jsonrpc`, `id`, `method`, `params`, the tool name or its arguments removed or given
another JSON type (an id that is not a string or integer, MCP basic "Requests"); the body cut
short, not UTF-8, followed by junk, replaced by another JSON value, or sent as a batch (the
body MUST be a single message since 2025-06-18); an invalid `MCP-Protocol-Version`, which
MUST get 400; the JSON sent as text/plain (running the tool anyway is only tolerated: the
transport names no request media type).
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import strategies as st

from conformance import mcp
from conformance.fuzz.properties import jsonrpc_refusal
from conformance.fuzz.runner import Judgement, Target, tolerated, violated

PROTOCOL_VERSION = "MCP-Protocol-Version"


@dataclass(frozen=True)
class SetKey:
    """A member of the message set to another JSON value (JSON text), or removed (None)."""

    path: tuple[str, ...]
    value: str | None

    def message(self, message: dict[str, Any]) -> dict[str, Any]:
        changed = copy.deepcopy(message)
        parent = changed
        for name in self.path[:-1]:
            parent = parent[name]
        if self.value is None:
            parent.pop(self.path[-1], None)
        else:
            parent[self.path[-1]] = json.loads(self.value)
        return changed

    def __str__(self) -> str:
        member = ".".join(self.path)
        return f"{member} removed" if self.value is None else f"{member} set to {self.value}"


REFRAMES: dict[str, Callable[[bytes], bytes]] = {
    "sent in a batch of one": lambda b: b"[" + b + b"]",
    "sent twice in a batch": lambda b: b"[" + b + b"," + b + b"]",
    "replaced by an empty batch": lambda b: b"[]",
    "followed by junk": lambda b: b + b"}",
    "with a byte that is not UTF-8 in the method": lambda b: b.replace(b"tools", b"to\xffols", 1),
    "replaced by a JSON string": lambda b: b'"tools/call"',
    "replaced by a JSON number": lambda b: b"1",
    "replaced by JSON null": lambda b: b"null",
    "replaced by an empty body": lambda b: b"",
}


@dataclass(frozen=True)
class Reframe:
    """The body as a whole changed."""

    kind: str

    def body(self, body: bytes) -> bytes:
        return REFRAMES[self.kind](body)

    def __str__(self) -> str:
        return f"the body {self.kind}"


@dataclass(frozen=True)
class CutBody:
    keep: int

    def body(self, body: bytes) -> bytes:
        return body[: self.keep]

    def __str__(self) -> str:
        return f"the body cut to its first {self.keep} bytes"


@dataclass(frozen=True)
class Header:
    """A request header set to another value."""

    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}: {self.value!r}"


Mutation = SetKey | Reframe | CutBody | Header
INVALID_VERSIONS = ("1999-01-01", "not-a-version", "2025-11-25x", "2025-11-25, 2025-06-18")
"""Protocol versions no server supports, or values that are no version at all."""


def strata(message: dict[str, Any], body: bytes) -> list[st.SearchStrategy[Mutation]]:
    """One stratum per part of the known-good request; the values that a parser expecting a
    string, integer or object is least ready for first."""
    parts: list[st.SearchStrategy[Mutation]] = [
        st.one_of(
            st.sampled_from([Reframe(kind) for kind in REFRAMES]),
            st.builds(CutBody, st.integers(1, len(body) - 1)),
        )
    ]
    invalid: dict[tuple[str, ...], list[str | None]] = {
        ("jsonrpc",): ['["2.0"]', '"1.0"', "2.0", "null", None],
        ("id",): ['["x"]', '{"x":1}', "true", "1.5", "null", None],
        ("method",): ['["tools/call"]', "0", "null", '"tools/"', '"TOOLS/CALL"', None],
        ("params",): ['["x"]', '"x"', "0", "null"],
    }
    params = message.get("params")
    if isinstance(params, dict) and "name" in params:
        invalid[("params",)].append(None)
        invalid[("params", "name")] = ['["x"]', "0", "null", '"no-such-tool"', None]
        invalid[("params", "arguments")] = ['["x"]', '"x"', "0"]
    parts += [
        st.sampled_from([SetKey(path, v) for v in values]) for path, values in invalid.items()
    ]
    parts.append(
        st.one_of(
            st.sampled_from([Header(PROTOCOL_VERSION, v) for v in INVALID_VERSIONS]),
            st.just(Header("Content-Type", "text/plain")),
        )
    )
    return parts


Send = Callable[[bytes, list[tuple[str, str]], str], httpx.Response]
"""Sends one POST with this body and these headers (replacing the known-good ones by name)."""
Reached = Callable[[], str | None]
"""What of the last request reached the downstream service (None: nothing)."""


def sender(session: mcp.Session) -> Send:
    """POSTs in `session` (its token, negotiated protocol version and session ID); the given
    headers replace the known-good ones of the same name."""

    def send(body: bytes, headers: list[tuple[str, str]], note: str) -> httpx.Response:
        replaced = {name.lower() for name, _ in headers}
        known = mcp.request_headers(
            token=session.token, protocol_version=session.version, session_id=session.session_id
        )
        fields = [(n, v) for n, v in known if n.lower() not in replaced] + headers
        return session.http.post(session.url, headers=fields, content=body, note=note)

    return send


def target(message: dict[str, Any], send: Send, reached: Reached | None) -> Target[Mutation]:
    """Mutations of `message`, each sent with `send`; with `reached`, a request that was
    answered with a 2xx is also checked for having reached the downstream service. Each
    request gets an id of its own (MCP basic "Requests": never reused in a session)."""
    ids = itertools.count()

    def attempt(mutation: Mutation) -> Judgement:
        fresh = {**message, "id": f"fuzz-{next(ids)}"}
        headers: list[tuple[str, str]] = []
        sent = json.dumps(fresh).encode()
        if isinstance(mutation, SetKey):
            sent = json.dumps(mutation.message(fresh)).encode()
        elif isinstance(mutation, Reframe | CutBody):
            sent = mutation.body(sent)
        else:
            headers = [(mutation.name, mutation.value)]
        response = send(sent, headers, f"fuzz: {mutation}")
        version = isinstance(mutation, Header) and mutation.name == PROTOCOL_VERSION
        if version and response.status_code != 400:
            return violated(f"answered {response.status_code}, not 400, to {mutation}")
        judgement = jsonrpc_refusal(response)
        downstream = reached() if reached is not None and response.is_success else None
        if isinstance(mutation, Header) and (judgement.violated or downstream):
            return tolerated(f"the tool ran for a JSON-RPC request sent as {mutation.value}")
        if downstream is not None:
            return violated(f"the invalid request reached the downstream service: {downstream}")
        return judgement

    name = str(message.get("method"))
    base = json.dumps({**message, "id": "fuzz-0"}).encode()
    return Target(f"MCP {name} requests", strata(message, base), attempt)
