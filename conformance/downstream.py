"""The second hop, witnessed: call an MCP tool that reaches a downstream service and read what
the mock service recorded.

The mock Salesforce and Workday (`mock_saas`) record every request they receive (the
credential, its decoded header and claims, who it was for, what data went back) and expose the
log at `GET .../_records?since=N&limit=L` -> `{"records": [...], "last": M}`, and a fault switch
at `POST .../_faults {"mode": ...}` (also `{"mode": "reject_tokens"}`: every token refused with
401 until cleared, and `{"expire_tokens": true}`: every token seen so far expires, once). A
`DPoP` header is recorded decoded (`dpop_header`, `dpop_claims`) with the service's verdict,
and `dpop_required` says whether the service demands DPoP. The suite reads all of it over
HTTP, as it would for a vendor's deployment wired to standalone mocks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from jwt import PyJWTError

from conformance import mcp
from conformance.audit import AuditTrail
from conformance.config import DownstreamConfig
from conformance.discovery import json_object
from conformance.errors import PreconditionFailed
from conformance.evidence import Exchange
from conformance.flows import TokenSet
from conformance.http import Http, recording
from conformance.oauth import jwt

Record = dict[str, Any]
FAULT_MODES = ("server_error", "unavailable")
REJECT_TOKENS = "reject_tokens"
MAX_RECORDS = 200


class Witness:
    """The record log and fault switch of one mock downstream service."""

    def __init__(self, http: Http, service: DownstreamConfig) -> None:
        self.http = http
        self.service = service

    def _records(self, since: int, limit: int, note: str) -> tuple[list[Record], int]:
        query = urlencode({"since": since, "limit": limit})
        response = self.http.get(f"{self.service.records_url}?{query}", note=note)
        body = json_object(response)
        if response.status_code != 200 or body is None or not isinstance(body.get("last"), int):
            raise PreconditionFailed(
                f"the {self.service.name} record log answered {response.status_code}, "
                "not {records: [...], last: N}"
            )
        records = [r for r in body.get("records", []) if isinstance(r, dict)]
        for record in records:
            self.http.redactor.remember(record.get("token"))
        return records, body["last"]

    def cursor(self) -> int:
        return self._records(0, 0, f"{self.service.name} records: current position")[1]

    def since(self, cursor: int) -> list[Record]:
        note = f"{self.service.name} records: what the MCP server sent"
        return self._records(cursor, MAX_RECORDS, note)[0]

    @contextlib.contextmanager
    def fault(self, mode: str) -> Iterator[None]:
        """Make the service fail inside the block: `server_error` -> 500, `unavailable` -> 503,
        `reject_tokens` -> 401 for every credential."""
        self._require_switch()
        self._set_fault({"mode": mode}, f"fault {mode}")
        try:
            yield
        finally:
            self._set_fault({"mode": "none"}, "fault none")

    def expire_tokens(self) -> None:
        """Expire every token the service has issued or seen so far (newer ones still work)."""
        self._require_switch()
        self._set_fault({"expire_tokens": True}, "expire every token seen so far")

    def _require_switch(self) -> None:
        if not self.service.faults_url:
            import pytest

            pytest.skip(f"no fault switch configured for {self.service.name} (faults_url)")

    def _set_fault(self, body: dict[str, Any], what: str) -> None:
        assert self.service.faults_url
        response = self.http.post(
            self.service.faults_url, json=body, note=f"{self.service.name}: {what}"
        )
        if response.status_code != 200:
            raise PreconditionFailed(
                f"the {self.service.name} fault switch answered {response.status_code} to {body}"
            )

    @property
    def origin(self) -> str:
        """The service's origin (where its record log is): the base of the URLs it serves."""
        parts = urlsplit(self.service.records_url)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass
class ToolCall:
    """One tools/call that should reach a downstream service, and what the service saw."""

    service: DownstreamConfig
    user: str
    tokens: TokenSet
    response: httpx.Response
    records: list[Record]
    exchanges: list[Exchange] = field(default_factory=list)
    audit_events: list[dict[str, Any]] | None = None  # None: no audit trail configured

    @property
    def result(self) -> dict[str, Any] | None:
        return mcp.result_of(self.response)

    @property
    def succeeded(self) -> bool:
        result = self.result
        return result is not None and not result.get("isError")

    @property
    def text(self) -> str:
        return mcp.tool_text(self.result)

    @property
    def api_records(self) -> list[Record]:
        return [r for r in self.records if r.get("kind") == "api"]

    @property
    def token_records(self) -> list[Record]:
        return [r for r in self.records if r.get("kind") == "token"]

    def describe(self) -> str:
        if self.succeeded:
            return "the tool call succeeded"
        if self.result is not None:
            return f"the tool returned an error ({self.text[:200]!r})"
        return f"tools/call answered {mcp.describe(self.response)}"


def call_tool(
    http: Http,
    mcp_url: str,
    protocol_version: str,
    service: DownstreamConfig,
    tokens: TokenSet,
    witness: Witness,
    audit: AuditTrail | None = None,
    note: str = "",
) -> ToolCall:
    """Open a session as the token's user, call the service's tool, read the record log (and
    the audit trail, when there is one) for what the call caused."""
    with recording() as exchanges:
        cursor = witness.cursor()
        audit_cursor = audit.cursor() if audit else None
        session = mcp.Session.open(http, mcp_url, tokens.access_token, protocol_version)
        response = session.send(
            mcp.tools_call(service.tool, dict(service.arguments)),
            note or f"tools/call {service.tool} as {tokens.user}",
        )
        records = witness.since(cursor)
        events = audit.since(audit_cursor) if audit and audit_cursor is not None else None
    return ToolCall(service, tokens.user, tokens, response, records, exchanges, events)


def subject_of(token: str) -> str | None:
    """The `sub` of a JWT access token (None for an opaque token)."""
    if not jwt.is_jwt(token):
        return None
    value = jwt.claims(token).get("sub")
    return value if isinstance(value, str) else None


def credential(record: Record) -> str | None:
    value = record.get("token")
    return value if isinstance(value, str) and value else None


def claims_of(record: Record) -> dict[str, Any]:
    """The decoded claims of the credential a request carried ({} for a non-JWT)."""
    claims = record.get("claims")
    return claims if isinstance(claims, dict) else {}


def proof_of(record: Record) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(header, claims) of the DPoP proof a request carried, decoded, or None."""
    header, claims = record.get("dpop_header"), record.get("dpop_claims")
    if isinstance(header, dict) and isinstance(claims, dict):
        return header, claims
    raw = record.get("dpop")
    if isinstance(raw, str) and jwt.is_jwt(raw):
        try:
            return jwt.header(raw), jwt.claims(raw)
        except PyJWTError:
            return None
    return None


def record_summary(service: str, record: Record) -> str:
    """What a reviewer needs from a record: the credential's decoded claims, not the credential."""
    claims = record.get("claims")
    if isinstance(claims, dict):
        shown = {
            k: claims[k]
            for k in ("iss", "aud", "sub", "client_id", "scope", "exp", "iat")
            if k in claims
        }
        credential = f"JWT with claims {shown}"
    else:
        credential = f"a {record.get('token_kind') or 'missing'} credential"
    return (
        f"{service} record #{record.get('seq')}: {record.get('method')} "
        f"{record.get('path')} carried {credential}; answered {record.get('status')}"
    )
