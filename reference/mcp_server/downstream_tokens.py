"""How the MCP server gets a token for a downstream API on behalf of the calling user.

Two models, chosen per service (`DownstreamService.model`):

* `token-exchange`: RFC 8693 at the deployment's own authorization server. The MCP server
  authenticates as its confidential client and presents the user's inbound access token as
  the `subject_token` (RFC 8693 §2.1), naming the API as `resource` (RFC 8707 §2). The result
  is a new token whose audience is the API, never the inbound token itself (MCP security
  best practices §"Token Passthrough").
* `id-jag`: draft-ietf-oauth-identity-assertion-authz-grant. The MCP server asks the
  enterprise IdP for an Identity Assertion JWT Authorization Grant (ID-JAG) with the user's
  ID token as the subject (an RFC 8693 exchange with `requested_token_type` id-jag and
  `audience` = the service's authorization server), then redeems it there with the RFC 7523
  §2.1 jwt-bearer grant.

Tokens are cached per (user, service) until shortly before they expire, or until the service
refuses one (401), which the connector answers by getting a fresh token and retrying once.
Where a service requires DPoP (RFC 9449 §5), the token request carries the MCP server's own
proof and the service answers with a token bound to that key (`token_type` DPoP).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"

MAX_KEPT_BODY = 2000
"""Characters of a failed response body kept (only the leak defect ever shows them)."""

EXPIRY_MARGIN_SECONDS = 30.0
"""A cached token is dropped this long before it expires (at most a tenth of its life)."""

_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")


class DownstreamFailure(Exception):
    """A step of the second hop failed.

    `summary` is safe to show a client. `body` (the failed response) and `credential` (what
    was presented) are kept only for the `hop2-failure-leaks-detail` defect and must never
    reach a client or the audit trail otherwise.
    """

    def __init__(
        self,
        summary: str,
        *,
        status: int | None = None,
        body: str = "",
        credential: str | None = None,
        audit_detail: str | None = None,
    ) -> None:
        super().__init__(summary)
        self.summary = summary
        self.status = status
        self.body = body
        self.credential = credential
        self.audit_detail = audit_detail or summary


class SignInRequired(Exception):
    """The ID-JAG model needs the user's ID token and none is on record (or it expired)."""


@dataclass(frozen=True)
class DownstreamToken:
    """An access token for one downstream API."""

    value: str
    scopes: tuple[str, ...]
    usable_until: float | None  # epoch seconds; None: lifetime unknown (never cached)
    token_type: str = "Bearer"  # "DPoP": bound to the MCP server's key (RFC 9449 §5)

    @property
    def dpop_bound(self) -> bool:
        return self.token_type.lower() == "dpop"


def usable_until(expires_in: float | None) -> float | None:
    """When a token issued now with `expires_in` (RFC 6749 §5.1) must leave the cache."""
    if expires_in is None:
        return None
    return time.time() + expires_in - min(EXPIRY_MARGIN_SECONDS, expires_in / 10)


CacheKey = tuple[str | None, str]
"""(user, service name); the user is None under `hop2-token-cache-not-per-user`."""


class TokenCache:
    """Downstream tokens by (user, service), each kept until shortly before it expires."""

    def __init__(self) -> None:
        self._tokens: dict[CacheKey, DownstreamToken] = {}

    def get(self, key: CacheKey) -> DownstreamToken | None:
        token = self._tokens.get(key)
        if token is None:
            return None
        if token.usable_until is None or token.usable_until <= time.time():
            del self._tokens[key]
            return None
        return token

    def put(self, key: CacheKey, token: DownstreamToken) -> None:
        if token.usable_until is not None and token.usable_until > time.time():
            self._tokens[key] = token

    def drop(self, key: CacheKey) -> None:
        self._tokens.pop(key, None)


def basic_authorization(client_id: str, secret: str) -> str:
    """`client_secret_basic`: RFC 6749 §2.3.1, id and secret form-encoded before Base64."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _oauth_error_code(response: httpx.Response) -> str | None:
    """The RFC 6749 §5.2 `error` code of a refusal, when it looks like one (safe to log)."""
    try:
        document = response.json()
    except ValueError:
        return None
    code = document.get("error") if isinstance(document, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else None


def _scopes_of(document: Mapping[str, Any], requested: tuple[str, ...]) -> tuple[str, ...]:
    """Granted scopes: RFC 6749 §5.1 / RFC 8693 §2.2.1 `scope`, else the requested ones."""
    scope = document.get("scope")
    return tuple(scope.split()) if isinstance(scope, str) else requested


def _expires_in(document: Mapping[str, Any]) -> float | None:
    expires_in = document.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return None
    return float(expires_in)


async def token_request(
    client: httpx.AsyncClient,
    endpoint: str,
    authorization: str,
    form: Mapping[str, str],
    *,
    party: str,
    presented: str,
    dpop: str | None = None,
) -> Mapping[str, Any]:
    """POST a token request; return the JSON success response or raise `DownstreamFailure`.

    `party` names the server in safe messages; `presented` is the credential sent (kept on
    the failure for the leak defect only); `dpop` is a proof for this request (RFC 9449 §5).
    """
    headers = {"Authorization": authorization, "Accept": "application/json"}
    if dpop is not None:
        headers["DPoP"] = dpop
    try:
        response = await client.post(endpoint, data=dict(form), headers=headers)
    except httpx.HTTPError as exc:
        raise DownstreamFailure(
            f"the {party} could not be reached",
            credential=presented,
            audit_detail=f"{party} unreachable ({type(exc).__name__})",
        ) from exc
    if response.status_code != 200:
        code = _oauth_error_code(response)
        raise DownstreamFailure(
            f"the {party} refused the token request (HTTP {response.status_code})",
            status=response.status_code,
            body=response.text[:MAX_KEPT_BODY],
            credential=presented,
            audit_detail=f"{party} answered HTTP {response.status_code}"
            + (f" {code}" if code else ""),
        )
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("access_token"), str):
        raise DownstreamFailure(
            f"the {party} returned no usable token",
            status=response.status_code,
            body=response.text[:MAX_KEPT_BODY],
            credential=presented,
        )
    return document


def downstream_token(document: Mapping[str, Any], requested: tuple[str, ...]) -> DownstreamToken:
    token_type = document.get("token_type")
    return DownstreamToken(
        value=document["access_token"],
        scopes=_scopes_of(document, requested),
        usable_until=usable_until(_expires_in(document)),
        token_type=token_type if isinstance(token_type, str) else "Bearer",
    )
