"""ASGI middleware that makes the MCP endpoint an OAuth 2.1 protected resource.

Every request to the MCP endpoint authenticates on its own (MCP 2025-11-25 authorization
§"Access Token Usage"; MCP security best practices "Session Hijacking"): the token comes only
from the `Authorization` header (OAuth 2.1 §5.1, RFC 6750 §2.1), the scheme is matched
case-insensitively (RFC 9110 §11.1), failures get RFC 6750 §3 challenges with RFC 9728 §5.1
`resource_metadata`, and `tools/call` of a tool needing more scope gets 403
`insufficient_scope` (MCP 2025-11-25 §"Scope Challenge Handling"). DPoP-bound tokens are
taken with the `DPoP` scheme and a proof (RFC 9449 §7, `dpop_auth.py`), and every challenge
is offered in a `DPoP` variant with `algs` beside the Bearer one (RFC 9449 §7.1).

The middleware also attaches `connectors.RequestFlags` to each request it lets through, so a
connector tool can ask for the whole HTTP response to be replaced (a defect switch), and,
under `hop2-outage-blocks-other-calls`, lets one failing downstream service block the server.
"""

from __future__ import annotations

import json
import traceback
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken as SdkAccessToken
from starlette.authentication import AuthCredentials
from starlette.datastructures import URL, Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reference.mcp_server.challenges import Challenge, challenge_response
from reference.mcp_server.connectors import REQUEST_FLAGS, Connectors, RequestFlags
from reference.mcp_server.dpop_auth import (
    ALGS_PARAM,
    BEARER,
    Credentials,
    DPoPGuard,
    Refusal,
    parse_authorization,
)
from reference.mcp_server.metadata import OFFLINE_ACCESS, metadata_url
from reference.mcp_server.token_validation import (
    AccessToken,
    MalformedTokenError,
    TokenValidationError,
    TokenValidator,
)
from reference.mcp_server.tools import BASE_SCOPES, TOOL_SCOPES, required_scopes_for_tool
from reference.settings import ReferenceSettings

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body buffered for the scope check (the SDK's own limit)."""

MAX_REMEMBERED_SESSIONS = 1024


class Reject(Exception):
    """Stop processing and send `response` instead of calling the MCP app."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


SESSION_SETUP = frozenset({"initialize", "notifications/initialized"})
"""The messages that open an MCP session (MCP 2025-11-25 lifecycle §"Initialization")."""


def jsonrpc_messages(body: bytes) -> list[dict[str, Any]]:
    """The JSON-RPC message objects of a request body (one message or a batch)."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    messages = message if isinstance(message, list) else [message]
    return [item for item in messages if isinstance(item, dict)]


def jsonrpc_tool_names(body: bytes) -> list[str | None]:
    """Names of the tools a JSON-RPC message (or batch) calls with `tools/call`."""
    names: list[str | None] = []
    for item in jsonrpc_messages(body):
        if item.get("method") == "tools/call":
            params = item.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            names.append(name if isinstance(name, str) else None)
    return names


def union_in_order(groups: Iterable[Iterable[str]]) -> tuple[str, ...]:
    """All scopes of `groups`, first occurrence order, without duplicates."""
    return tuple(dict.fromkeys(scope for group in groups for scope in group))


def sdk_user(token: AccessToken, resource: str) -> AuthenticatedUser:
    """The SDK's user object, so its session manager binds sessions to this principal."""
    return AuthenticatedUser(
        SdkAccessToken(
            token=token.raw,
            client_id=token.client_id or "",
            scopes=sorted(token.scopes),
            expires_at=token.expires_at,
            resource=resource,
            subject=token.subject,
            claims=dict(token.claims),
        )
    )


async def read_body(receive: Receive) -> bytes:
    """Buffer the whole request body (so it can be inspected and then replayed)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Reject(Response(status_code=400))
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Reject(PlainTextResponse("request body too large", status_code=413))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying_receive(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the buffered body once, then defers to the real one."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def transport_failure_send(send: Send, flags: RequestFlags) -> Send:
    """A `send` that turns the response into a bare 500 once a tool set the flag.

    Only `hop2-failure-as-transport-error` sets it; the SDK answers in JSON mode, so the
    flag is set before the response starts.
    """
    replaced = False

    async def sending(message: Message) -> None:
        nonlocal replaced
        if message["type"] == "http.response.start" and flags.transport_failure:
            replaced = True
            body = b"Internal Server Error"
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if replaced and message["type"] == "http.response.body":
            return
        await send(message)

    return sending


class BearerAuthMiddleware:
    """Guards `protected_path` (all methods); every other path passes straight through."""

    def __init__(
        self,
        app: ASGIApp,
        settings: ReferenceSettings,
        validator: TokenValidator,
        protected_path: str,
        tool_scopes: Mapping[str, tuple[str, ...]] = TOOL_SCOPES,
        connectors: Connectors | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.validator = validator
        self.protected_path = protected_path.rstrip("/")
        self.tool_scopes = tool_scopes
        self.connectors = connectors
        self.resource_metadata = metadata_url(settings)
        self.dpop = DPoPGuard(settings)
        # Only filled under the `rs-session-authenticates` defect.
        self._sessions: OrderedDict[str, AuthenticatedUser | None] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != self.protected_path:
            await self.app(scope, receive, send)
            return
        try:
            await self._guard(scope, receive, send)
        except Reject as rejection:
            await rejection.response(scope, receive, send)

    # --- the decision -------------------------------------------------------------------

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        credentials = self._presented_credentials(scope, headers)
        body: bytes | None = None
        if credentials is None and self._form_encoded(scope, headers):
            body = await read_body(receive)
            credentials = self._form_credentials(body)
            receive = replaying_receive(body, receive)
        if credentials is None:
            await self._serve_without_token(scope, receive, send, headers)
            return
        access_token = await self._validate(credentials.token)
        await self._check_possession(scope, headers, credentials, access_token)
        if body is None:
            body = await read_body(receive) if scope["method"] == "POST" else b""
        self._check_scopes(access_token, body)
        self._check_outage(body)
        user = sdk_user(access_token, self.settings.mcp_url)
        scope["user"] = user
        scope["auth"] = AuthCredentials(sorted(access_token.scopes))
        flags = RequestFlags()
        scope[REQUEST_FLAGS] = flags
        inner_receive = replaying_receive(body, receive) if scope["method"] == "POST" else receive
        inner_send = self._remembering_send(transport_failure_send(send, flags), user)
        await self.app(scope, inner_receive, inner_send)

    def _presented_credentials(self, scope: Scope, headers: Headers) -> Credentials | None:
        """The access token of the request, `None` when there is none (OAuth 2.1 §5.1)."""
        authorizations = headers.getlist("authorization")
        query_tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(
            "access_token", []
        )
        if len(authorizations) > 1 or (authorizations and query_tokens):
            # OAuth 2.1 §5.1 / RFC 6750 §2: a client MUST NOT use more than one method.
            raise Reject(self._error(400, "invalid_request", "more than one access token"))
        if authorizations:
            return self._credentials(authorizations[0])
        if query_tokens and self.settings.defect("rs-accepts-query-token"):
            return Credentials(BEARER, query_tokens[0])
        # OAuth 2.1 §5.1.1: URI query tokens are not accepted; treated as no token at all.
        return None

    def _form_encoded(self, scope: Scope, headers: Headers) -> bool:
        """A form-encoded POST, read for a token only under the `rs-accepts-form-token` defect.

        OAuth 2.1 §5.1.2 lets a resource server accept an `access_token` body parameter (MAY);
        MCP clients must use the `Authorization` header (MCP "Token Requirements"), so this
        server takes the token from the header alone and a body token counts as none.
        """
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        return (
            scope["method"] == "POST"
            and content_type == "application/x-www-form-urlencoded"
            and self.settings.defect("rs-accepts-form-token")
        )

    @staticmethod
    def _form_credentials(body: bytes) -> Credentials | None:
        tokens = parse_qs(body.decode("latin-1")).get("access_token", [])
        return Credentials(BEARER, tokens[0]) if tokens else None

    def _credentials(self, header_value: str) -> Credentials | None:
        """RFC 6750 §2.1 or RFC 9449 §7.1 credentials; the scheme is case-insensitive
        (RFC 9110 §11.1). Another scheme counts as no token at all."""
        credentials = parse_authorization(header_value)
        scheme = header_value.strip().partition(" ")[0]
        if (
            credentials is not None
            and credentials.scheme == BEARER
            and scheme != "Bearer"
            and self.settings.defect("rs-scheme-case-sensitive")
        ):
            raise Reject(self._invalid_token("unsupported authorization scheme"))
        return credentials

    async def _check_possession(
        self, scope: Scope, headers: Headers, credentials: Credentials, token: AccessToken
    ) -> None:
        """RFC 9449 §7.1/§7.2: the scheme fits the token and any proof is valid for this
        request (`htu` is the URL the client called, without query and fragment)."""
        url = str(URL(scope=scope).replace(query="", fragment=""))
        try:
            await self.dpop.check(credentials, token, headers.getlist("dpop"), scope["method"], url)
        except Refusal as refusal:
            raise Reject(self._dpop_refusal(refusal)) from refusal

    async def _serve_without_token(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers
    ) -> None:
        """No token: 401 with a challenge (RFC 6750 §3.1: no error code), bar defects."""
        session_id = headers.get("mcp-session-id")
        if (
            session_id is not None
            and session_id in self._sessions
            and self.settings.defect("rs-session-authenticates")
        ):
            user = self._sessions[session_id]
            if user is not None:
                scope["user"] = user
                scope["auth"] = AuthCredentials(user.scopes)
            await self.app(scope, receive, send)
            return
        if self.settings.defect("rs-accepts-missing-token"):
            await self.app(scope, receive, send)
            return
        raise Reject(self._missing_token())

    async def _validate(self, token: str) -> AccessToken:
        try:
            return await self.validator.validate(token)
        except MalformedTokenError as exc:
            if self.settings.defect("rs-malformed-token-crash"):
                raise Reject(PlainTextResponse(traceback.format_exc(), status_code=500)) from exc
            raise Reject(self._invalid_token(exc.description)) from exc
        except TokenValidationError as exc:
            raise Reject(self._invalid_token(exc.description)) from exc

    def _check_scopes(self, token: AccessToken, body: bytes) -> None:
        """Base scope on every request; per-tool scopes on `tools/call` (RFC 6750 §3.1)."""
        needed = BASE_SCOPES
        if self.settings.defect("rs-jsonrpc-batch-crash") and body.lstrip()[:1] == b"[":
            json.loads(body).get("method")  # the body read as one object: a batch raises
        if not self.settings.defect("rs-no-scope-check"):
            per_tool = [
                required_scopes_for_tool(name, self.tool_scopes)
                for name in jsonrpc_tool_names(body)
            ]
            needed = union_in_order([BASE_SCOPES, *per_tool])
        missing = [scope for scope in needed if scope not in token.scopes]
        if missing:
            raise Reject(self._insufficient_scope(needed, missing))

    def _check_outage(self, body: bytes) -> None:
        """`hop2-outage-blocks-other-calls`: one failing service takes the server down.

        Every request but a `tools/call` of a failing service's tool gets 503, except the
        messages that open a session, so that a client can still make the recovery call
        whose success clears the outage. The conformant server isolates a downstream
        failure in that tool's result.
        """
        if self.connectors is None or not self.settings.defect("hop2-outage-blocks-other-calls"):
            return
        failing = self.connectors.failing_tools()
        if not failing or failing.intersection(jsonrpc_tool_names(body)):
            return
        methods = {message.get("method") for message in jsonrpc_messages(body)}
        if not methods or not methods <= SESSION_SETUP:
            raise Reject(PlainTextResponse("service unavailable", status_code=503))

    # --- session memory (rs-session-authenticates) ---------------------------------------

    def _remembering_send(self, send: Send, user: AuthenticatedUser) -> Send:
        if not self.settings.defect("rs-session-authenticates"):
            return send

        async def remembering(message: Message) -> None:
            if message["type"] == "http.response.start":
                session_id = Headers(raw=message.get("headers", [])).get("mcp-session-id")
                if session_id:
                    self._remember(session_id, user)
            await send(message)

        return remembering

    def _remember(self, session_id: str, user: AuthenticatedUser | None) -> None:
        self._sessions[session_id] = user
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > MAX_REMEMBERED_SESSIONS:
            self._sessions.popitem(last=False)

    # --- responses -----------------------------------------------------------------------

    def _metadata_param(self) -> str | None:
        if self.settings.defect("rs-challenge-without-resource-metadata"):
            return None
        return self.resource_metadata

    def _dpop_variant(self, challenge: Challenge) -> Challenge:
        """The DPoP challenge beside a Bearer one: the same parameters plus `algs`
        (RFC 9449 §7.1: SHOULD)."""
        if self.settings.defect("rs-dpop-challenge-without-algs"):
            return challenge
        return replace(challenge, algs=ALGS_PARAM)

    def _missing_token(self) -> Response:
        """401 for a request with no token: `Bearer resource_metadata=..., scope=...` and
        `DPoP algs=..., ...`, without error codes (RFC 6750 §3.1, RFC 9449 §7.1)."""
        description = "an access token is required"
        if self.settings.defect("rs-401-without-challenge"):
            return challenge_response(401, None, description)
        scopes = BASE_SCOPES
        if self.settings.defect("prm-lists-offline-access"):
            scopes = (*scopes, OFFLINE_ACCESS)
        scope: str | None = " ".join(scopes)
        if self.settings.defect("rs-challenge-without-scope"):
            scope = None
        challenge = Challenge(scope=scope, resource_metadata=self._metadata_param())
        return challenge_response(401, challenge, description, self._dpop_variant(challenge))

    def _invalid_token(self, description: str) -> Response:
        """RFC 6750 §3.1 `invalid_token`: 401."""
        return self._error(401, "invalid_token", description)

    def _dpop_refusal(self, refusal: Refusal) -> Response:
        """RFC 9449 §7.1: 401; a proof failure names its error in the DPoP challenge only."""
        if refusal.error == "invalid_token":
            return self._invalid_token(refusal.description)
        bearer = Challenge(resource_metadata=self._metadata_param())
        dpop = Challenge(
            error=refusal.error,
            error_description=refusal.description,
            resource_metadata=self._metadata_param(),
        )
        return challenge_response(401, bearer, refusal.description, self._dpop_variant(dpop))

    def _error(self, status: int, error: str, description: str) -> Response:
        challenge = Challenge(
            error=error,
            error_description=description,
            resource_metadata=self._metadata_param() if status == 401 else self.resource_metadata,
        )
        dpop = self._dpop_variant(challenge) if status == 401 else None
        return challenge_response(status, challenge, description, dpop)

    def _insufficient_scope(self, needed: tuple[str, ...], missing: list[str]) -> Response:
        """RFC 6750 §3.1 `insufficient_scope`: 403 naming every scope the operation needs."""
        description = f"this operation needs scope {' '.join(missing)}"
        challenge = Challenge(
            error="insufficient_scope",
            error_description=description,
            scope=" ".join(needed),
            resource_metadata=self.resource_metadata,
        )
        return challenge_response(403, challenge, description, self._dpop_variant(challenge))
