"""The MCP server's second hop: connector tools that call downstream SaaS APIs as the user.

For each call the connector takes the caller (user and client) from the validated inbound
access token of that very request, gets a downstream token for that user and service
(`downstream_tokens`: RFC 8693 token exchange, or an ID-JAG redeemed with jwt-bearer), GETs
the service's API with it and records both steps in the audit trail.

MCP security best practices §"Token Passthrough": the inbound token is never sent
downstream; its audience is this MCP server (RFC 8707, RFC 9068 §4). A failed downstream
step becomes a tool error (MCP 2025-11-25 server/tools §"Error Handling": errors from the
tool's execution are reported in the result with `isError: true`), phrased without the
downstream response, any token or a traceback, and the server keeps serving other requests.

A 401 from the API (RFC 6750 §3.1 `invalid_token`: expired, revoked) ends the cached token:
the connector gets a fresh one for the same user, the normal way, and retries once; a second
401 is the tool error. It never loops and never falls back to another credential. Services
that require DPoP get the MCP server's own proofs (`dpop_client`), a fresh one per request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from reference.mcp_server.audit import (
    DOWNSTREAM_CALL_EVENT,
    FAILURE,
    SUCCESS,
    TOKEN_EXCHANGE_EVENT,
    AuditTrail,
)
from reference.mcp_server.downstream_tokens import (
    ACCESS_TOKEN_TYPE,
    ID_JAG_TYPE,
    ID_TOKEN_TYPE,
    JWT_BEARER_GRANT,
    MAX_KEPT_BODY,
    TOKEN_EXCHANGE_GRANT,
    CacheKey,
    DownstreamFailure,
    DownstreamToken,
    SignInRequired,
    TokenCache,
    basic_authorization,
    downstream_token,
    token_request,
)
from reference.mcp_server.dpop_client import DPoPSigner
from reference.mcp_server.keys import new_http_client
from reference.settings import BASIC_SCOPE, ID_JAG, DownstreamService, ReferenceSettings
from reference.upstream import UpstreamIdentities

REQUEST_FLAGS = "reference.mcp_server.request_flags"
"""ASGI scope key of the `RequestFlags` the auth middleware attaches to each MCP request."""


@dataclass
class RequestFlags:
    """Per-HTTP-request state a tool hands back to the middleware."""

    transport_failure: bool = False  # `hop2-failure-as-transport-error`: answer with a 500


@dataclass(frozen=True)
class Caller:
    """Who is calling, from the validated inbound access token (RFC 9068 §2.2 claims)."""

    user: str  # `sub`
    client_id: str  # `client_id`: the MCP client the user is calling through
    token: str  # the raw inbound access token: only ever a subject_token (RFC 8693 §2.1)
    scopes: tuple[str, ...]


class Connectors:
    """Downstream calls for every configured service, with one shared HTTP client."""

    def __init__(
        self,
        settings: ReferenceSettings,
        upstream: UpstreamIdentities | None,
        audit: AuditTrail,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.audit = audit
        self._cache = TokenCache()
        self._client: httpx.AsyncClient | None = None
        self._failing: set[str] = set()  # services whose last call failed
        self._signer: DPoPSigner | None = None
        self._proofs: dict[str, str] = {}  # `hop2-dpop-proof-reused`: one proof per token

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_http_client()
        return self._client

    @property
    def signer(self) -> DPoPSigner:
        """The MCP server's own DPoP key (RFC 9449 §4), made on first use."""
        if self._signer is None:
            self._signer = DPoPSigner()
        return self._signer

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def failing_tools(self) -> frozenset[str]:
        """Tools of the services whose most recent call failed."""
        return frozenset(s.tool for s in self.settings.downstream if s.name in self._failing)

    # --- one tool call ------------------------------------------------------------------

    async def fetch(self, service: DownstreamService, caller: Caller) -> str:
        """Call the service's API as `caller`; the tool's JSON text result.

        Raises `DownstreamFailure` (the service is marked failing) or `SignInRequired`.
        """
        try:
            data = await self._fetch(service, caller)
        except DownstreamFailure:
            self._failing.add(service.name)
            raise
        self._failing.discard(service.name)
        return json.dumps(
            {"service": service.name, "action": service.action, "user": caller.user, "data": data}
        )

    async def _fetch(self, service: DownstreamService, caller: Caller) -> Any:
        if self.settings.defect("hop2-token-passthrough"):
            # The defect MCP security best practices §"Token Passthrough" forbids.
            token = DownstreamToken(caller.token, caller.scopes, None)
            return await self._call_api(service, caller, token, None)
        if self.settings.defect("hop2-static-api-key"):
            token = DownstreamToken(service.static_key, (), None)
            return await self._call_api(service, caller, token, None)
        key: CacheKey = (caller.user, service.name)
        if self.settings.defect("hop2-token-cache-not-per-user"):
            key = (None, service.name)
        token = self._cache.get(key) or await self._acquire(service, caller, key)
        cached: CacheKey | None = key
        retries = self._retries()
        for attempt in range(retries + 1):
            try:
                return await self._call_api(service, caller, token, cached)
            except DownstreamFailure as failure:
                if failure.status != 401 or attempt == retries:
                    raise
            # RFC 6750 §3.1: the token is expired or revoked (the cache dropped it). Get a
            # fresh one for this same user, the normal way; its acquisition is audited.
            if self.settings.defect("hop2-retry-falls-back-to-api-key"):
                token, cached = DownstreamToken(service.static_key, (), None), None
            else:
                token = await self._acquire(service, caller, key)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _retries(self) -> int:
        """How often a call refused with 401 is retried with a fresh token: once."""
        if self.settings.defect("hop2-no-retry-on-expiry"):
            return 0
        if self.settings.defect("hop2-retry-loop"):
            return 5
        return 1

    def _requested_scopes(self, service: DownstreamService) -> tuple[str, ...]:
        """Least privilege: only what the connector needs (RFC 8693 §2.1 `scope`)."""
        if self.settings.defect("hop2-overbroad-downstream-scope"):
            return service.all_scopes
        return service.scopes

    # --- token acquisition --------------------------------------------------------------

    async def _acquire(
        self, service: DownstreamService, caller: Caller, key: CacheKey
    ) -> DownstreamToken:
        """Get a fresh downstream token by the service's model; audit it either way."""
        scopes = self._requested_scopes(service)
        if service.model == ID_JAG:
            acquire, how = self._via_id_jag, "ID-JAG from the IdP redeemed at the service's AS"
        else:
            acquire, how = self._via_token_exchange, "RFC 8693 token exchange at the AS"
        try:
            token = await acquire(service, caller, scopes)
        except SignInRequired:
            detail = "no enterprise ID token on record for the user"
            self._record(TOKEN_EXCHANGE_EVENT, service, caller, scopes, FAILURE, detail)
            raise
        except DownstreamFailure as failure:
            detail = failure.audit_detail
            self._record(TOKEN_EXCHANGE_EVENT, service, caller, scopes, FAILURE, detail)
            failure.summary = f"could not get a {service.name} token: {failure.summary}"
            raise
        self._cache.put(key, token)
        self._record(TOKEN_EXCHANGE_EVENT, service, caller, token.scopes, SUCCESS, how)
        return token

    async def _via_token_exchange(
        self, service: DownstreamService, caller: Caller, scopes: tuple[str, ...]
    ) -> DownstreamToken:
        """Model 1: RFC 8693 §2.1 at the reference AS; the subject is the inbound token."""
        form = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": caller.token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "resource": service.resource,  # RFC 8693 §2.1 / RFC 8707 §2
            "scope": " ".join(scopes),
        }
        endpoint = f"{self.settings.issuer.rstrip('/')}/token"
        document = await token_request(
            self.client,
            endpoint,
            basic_authorization(self.settings.mcp_client_id, self.settings.mcp_client_secret),
            form,
            party="authorization server",
            presented=caller.token,
            dpop=self._token_request_proof(service, endpoint),
        )
        return downstream_token(document, scopes)

    def _token_request_proof(self, service: DownstreamService, endpoint: str) -> str | None:
        """RFC 9449 §5: a proof of the MCP server's own key for a token request, where the
        service requires DPoP (the token it gets is then bound to that key)."""
        return self.signer.proof("POST", endpoint) if service.dpop else None

    async def _via_id_jag(
        self, service: DownstreamService, caller: Caller, scopes: tuple[str, ...]
    ) -> DownstreamToken:
        """Model 2 (draft-ietf-oauth-identity-assertion-authz-grant): ID-JAG, then jwt-bearer.

        The IdP issues the ID-JAG by RFC 8693 token exchange (subject: the user's ID token);
        the service's authorization server redeems it with the RFC 7523 jwt-bearer grant.

        The ID-JAG's `audience` is the service's authorization server and its `resource` the
        service's API: an ID-JAG is only ever presented to the authorization server it names.
        """
        id_token = self.upstream.id_token(caller.user) if self.upstream is not None else None
        if id_token is None:
            raise SignInRequired(caller.user)
        audience, resource, idjag_scopes = service.base_url, service.resource, scopes
        if self.settings.defect("hop2-idjag-reused-downstream"):
            # An ID-JAG meant for this deployment's own AS (to reach the MCP server).
            audience, resource, idjag_scopes = (
                self.settings.issuer,
                self.settings.mcp_url,
                (BASIC_SCOPE,),
            )
        grant = await token_request(
            self.client,
            f"{self.settings.idp_issuer.rstrip('/')}/token",
            basic_authorization(self.settings.idp_client_id, self.settings.idp_client_secret),
            {
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "requested_token_type": ID_JAG_TYPE,
                "subject_token": id_token,
                "subject_token_type": ID_TOKEN_TYPE,
                "audience": audience,
                "resource": resource,
                "scope": " ".join(idjag_scopes),
            },
            party="identity provider",
            presented=id_token,
        )
        assertion = grant["access_token"]
        document = await token_request(
            self.client,
            service.token_endpoint,
            basic_authorization(service.client_id, service.client_secret),
            {"grant_type": JWT_BEARER_GRANT, "assertion": assertion, "scope": " ".join(scopes)},
            party=f"{service.name} authorization server",
            presented=assertion,
            dpop=self._token_request_proof(service, service.token_endpoint),
        )
        return downstream_token(document, scopes)

    # --- the API call -------------------------------------------------------------------

    async def _call_api(
        self,
        service: DownstreamService,
        caller: Caller,
        token: DownstreamToken,
        key: CacheKey | None,
    ) -> Any:
        """GET the API with the downstream token (RFC 6750 §2.1, or RFC 9449 §7.1 for a
        DPoP-bound one); record the outcome."""
        try:
            response = await self.client.get(
                service.api_url, headers=self._api_headers(service, caller, token)
            )
        except httpx.HTTPError as exc:
            self._api_failure(service, caller, token, f"unreachable ({type(exc).__name__})")
            raise DownstreamFailure(
                f"{service.name} is unavailable right now (connection failed)",
                credential=token.value,
            ) from exc
        if response.status_code == 401 and key is not None:
            self._cache.drop(key)  # RFC 6750 §3.1 invalid_token: this token is done for
        if not 200 <= response.status_code < 300:
            self._api_failure(service, caller, token, f"HTTP {response.status_code}")
            raise DownstreamFailure(
                _status_summary(service, response.status_code),
                status=response.status_code,
                body=response.text[:MAX_KEPT_BODY],
                credential=token.value,
            )
        try:
            data = response.json()
        except ValueError as exc:
            self._api_failure(service, caller, token, "response is not JSON")
            raise DownstreamFailure(
                f"{service.name} returned an unreadable response",
                status=response.status_code,
                body=response.text[:MAX_KEPT_BODY],
                credential=token.value,
            ) from exc
        self._record(
            DOWNSTREAM_CALL_EVENT,
            service,
            caller,
            token.scopes,
            SUCCESS,
            f"GET {service.api_url} -> HTTP {response.status_code}",
        )
        return data

    def _api_headers(
        self, service: DownstreamService, caller: Caller, token: DownstreamToken
    ) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if not token.dpop_bound:
            headers["Authorization"] = f"Bearer {token.value}"
            if self.settings.defect("hop2-dpop-proof-relayed"):
                # What relaying the client's proof looks like downstream: a proof made for
                # the inbound MCP request, bound to the client's own token.
                headers["DPoP"] = self.signer.proof(
                    "POST", self.settings.mcp_url, access_token=caller.token
                )
            return headers
        headers["Authorization"] = f"DPoP {token.value}"
        # RFC 9449 §4.2 / §7.1: a fresh proof for this very request (new jti and iat).
        proof = self._proofs.get(token.value)
        if proof is None:
            proof = self.signer.proof("GET", service.api_url, access_token=token.value)
            if self.settings.defect("hop2-dpop-proof-reused"):
                self._proofs[token.value] = proof
        headers["DPoP"] = proof
        return headers

    def _api_failure(
        self, service: DownstreamService, caller: Caller, token: DownstreamToken, what: str
    ) -> None:
        detail = f"GET {service.api_url} -> {what}"
        self._record(DOWNSTREAM_CALL_EVENT, service, caller, token.scopes, FAILURE, detail)

    def _record(
        self,
        event: str,
        service: DownstreamService,
        caller: Caller,
        scopes: tuple[str, ...],
        outcome: str,
        detail: str,
    ) -> None:
        self.audit.record(
            event,
            user=caller.user,
            client_id=caller.client_id,
            service=service.name,
            scopes=scopes,
            outcome=outcome,
            detail=detail,
        )

    # --- what the client sees -----------------------------------------------------------

    def error_text(self, failure: DownstreamFailure) -> str:
        """The tool error's text: the safe summary (or, as a defect, everything)."""
        text = f"{failure.summary}; no data was returned"
        if self.settings.defect("hop2-failure-leaks-detail"):
            text += f"\ndownstream response: {failure.body}\ndownstream token: {failure.credential}"
        return text


def _status_summary(service: DownstreamService, status: int) -> str:
    if status >= 500:
        return f"{service.name} is unavailable right now (HTTP {status})"
    return f"{service.name} refused the request (HTTP {status})"
