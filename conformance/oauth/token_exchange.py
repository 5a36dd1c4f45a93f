"""RFC 8693 token exchange and the ID-JAG profile of it: names and request shapes.

RFC 8693 §2.1 (request parameters), §2.2.1 (response), §3 (token type identifiers);
RFC 7523 §2.1 (the jwt-bearer grant that redeems an assertion);
draft-ietf-oauth-identity-assertion-authz-grant (ID-JAG: token type, JWT `typ`, grant profile).
"""

from __future__ import annotations

from typing import Any

import httpx

from conformance.discovery import json_object

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
ID_JAG_TYP = "oauth-id-jag+jwt"
ID_JAG_GRANT_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"


def error_code(response: httpx.Response) -> str | None:
    """The RFC 6749 §5.2 `error` of a response, if it has one."""
    body = json_object(response)
    value = body.get("error") if body else None
    return value if isinstance(value, str) else None


def describe(response: httpx.Response) -> str:
    """Status and what the body says, short enough for a finding's message."""
    body = json_object(response)
    if response.is_success and body and body.get("access_token"):
        return f"{response.status_code} with a token"
    code = error_code(response)
    if code:
        return f"{response.status_code} error={code}"
    media = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    return f"{response.status_code} ({media})"


def issued(response: httpx.Response) -> dict[str, Any] | None:
    """The body of a successful token response, else None."""
    body = json_object(response)
    if response.status_code != 200 or not body or not isinstance(body.get("access_token"), str):
        return None
    return body


def scopes(value: Any) -> set[str]:
    """A `scope` claim or member as a set (space-delimited string, or a list)."""
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {str(v) for v in value}
    return set()


def audiences(value: Any) -> list[str]:
    """An `aud` claim as a list (RFC 7519 §4.1.3: a string or an array of strings)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def exchange_request(
    subject_token: str, resource: str, scope: str | None = None
) -> list[tuple[str, str]]:
    """A token exchange (RFC 8693 §2.1) of an access token for one for `resource`."""
    params = [
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", subject_token),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("resource", resource),
    ]
    if scope:
        params.append(("scope", scope))
    return params
