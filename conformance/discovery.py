"""Discovery from the MCP endpoint, exactly as an MCP client performs it.

Unauthenticated request -> 401 `WWW-Authenticate` `resource_metadata` (RFC 9728 §5.1) ->
protected resource metadata (RFC 9728 §3, path-inserted well-known URL, then the root one) ->
`authorization_servers` -> authorization server metadata (RFC 8414 §3.1 path insertion, then
OpenID Connect Discovery §4 in both forms, as MCP 2025-11-25 "Authorization Server Metadata
Discovery" orders them).

Discovery never judges: it records what it saw, leniently enough to continue past a defect
one check will report, so that the other checks can still run. It follows a redirect of a
metadata document as an HTTP client would, within the run's scope and redirect cap; hosts
the documents name are contacted only when the configuration puts them in scope, so a
target cannot send the suite elsewhere. A document the suite could not fetch because of its
own limits (timeout, size cap, scope) is `unjudgeable`: checks of it end as `error`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from conformance import mcp
from conformance.errors import ConnectionFailed, HarnessError
from conformance.evidence import Exchange
from conformance.http import Http, recording
from conformance.oauth.challenge import ParsedHeader, parse_www_authenticate

PRM_SUFFIX = "/.well-known/oauth-protected-resource"
OAUTH_AS_SUFFIX = "/.well-known/oauth-authorization-server"
OIDC_SUFFIX = "/.well-known/openid-configuration"


def path_inserted(identifier: str, suffix: str) -> str:
    """Insert the well-known suffix between host and path (RFC 9728 §3.1, RFC 8414 §3.1)."""
    parts = urlsplit(identifier)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"{suffix}{path}", "", ""))


def path_appended(identifier: str, suffix: str) -> str:
    """OpenID Connect Discovery §4: the suffix appended to the issuer's path."""
    parts = urlsplit(identifier)
    return urlunsplit((parts.scheme, parts.netloc, f"{parts.path.rstrip('/')}{suffix}", "", ""))


def prm_candidates(mcp_url: str) -> list[str]:
    """Well-known URLs for the MCP endpoint's metadata: path-inserted first, then root."""
    root = path_inserted(urlunsplit(urlsplit(mcp_url)[:2] + ("", "", "")), PRM_SUFFIX)
    inserted = path_inserted(mcp_url, PRM_SUFFIX)
    return [inserted] if inserted == root else [inserted, root]


def as_metadata_candidates(issuer: str) -> list[str]:
    """RFC 8414 path-inserted, OIDC path-inserted, OIDC path-appended (deduplicated)."""
    urls = [
        path_inserted(issuer, OAUTH_AS_SUFFIX),
        path_inserted(issuer, OIDC_SUFFIX),
        path_appended(issuer, OIDC_SUFFIX),
    ]
    return list(dict.fromkeys(urls))


def not_a_document(response: httpx.Response) -> str:
    """Why a body is not a JSON object, in words (for messages about metadata)."""
    content_type = response.headers.get("content-type") or "no content type"
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        return f"{content_type}, invalid JSON ({exc})"
    return f"{content_type}, JSON but not an object ({type(body).__name__})"


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object whatever the content type (checks judge the type)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@dataclass
class Fetched:
    url: str
    response: httpx.Response | None
    document: dict[str, Any] | None
    error: str | None = None
    fault: HarnessError | None = None  # what stopped the fetch, when something did

    @property
    def ok(self) -> bool:
        return (
            self.response is not None and self.response.status_code == 200 and bool(self.document)
        )

    def describe(self) -> str:
        """What the fetch got: the fault that stopped it, or the answer and why it is no
        metadata."""
        if self.response is None:
            return self.error or f"GET {self.url} got no response"
        status = self.response.status_code
        if status != 200:
            return f"GET {self.url} answered {status}"
        if self.document is None:
            return f"GET {self.url} answered 200 with {not_a_document(self.response)}"
        return f"GET {self.url} answered 200 with {'a' if self.document else 'an empty'} object"


def unjudgeable(attempts: list[Fetched]) -> str | None:
    """Why a document cannot be judged, when no attempt found it and at least one was stopped
    by the suite's own limits (a timeout, the size cap, a host out of scope): the stopped one
    might have served it. None when the attempts are a verdict on the target; a refused
    connection is one (nothing serves there)."""
    if any(a.ok for a in attempts):
        return None
    faults = [a.error for a in attempts if a.error and not isinstance(a.fault, ConnectionFailed)]
    return "; ".join(faults) if faults else None


@dataclass
class AuthorizationServer:
    identifier: str  # the issuer identifier discovery started from
    metadata_url: str
    metadata: dict[str, Any]

    def endpoint(self, name: str) -> str | None:
        value = self.metadata.get(name)
        return value if isinstance(value, str) else None


@dataclass
class Discovery:
    mcp_url: str
    unauthenticated: httpx.Response | None = None
    challenge: ParsedHeader | None = None
    resource_metadata_url: str | None = None  # as named by the challenge
    prm_attempts: list[Fetched] = field(default_factory=list)
    prm: Fetched | None = None
    issuers: list[str] = field(default_factory=list)
    issuer_source: str = ""
    as_attempts: dict[str, list[Fetched]] = field(default_factory=dict)
    authorization_server: AuthorizationServer | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _fetch(http: Http, url: str, note: str) -> Fetched:
    try:
        response = http.get_following(url, headers={"Accept": "application/json"}, note=note)
    except HarnessError as exc:
        return Fetched(url, None, None, str(exc), exc)
    return Fetched(url, response, json_object(response))


def discover(
    http: Http, mcp_url: str, protocol_version: str, issuer_hint: str | None = None
) -> Discovery:
    found = Discovery(mcp_url)
    with recording(found.exchanges):
        _challenge(http, found, protocol_version)
        _resource_metadata(http, found)
        _issuers(found, issuer_hint)
        # Every listed issuer is resolved (a check judges each); the first that resolves is used.
        # An issuer on a host outside the run's scope is refused, not contacted.
        for issuer in found.issuers:
            attempts = [_fetch(http, url, "AS metadata") for url in as_metadata_candidates(issuer)]
            found.as_attempts[issuer] = attempts
            hit = next((a for a in attempts if a.ok), None)
            if hit and hit.document is not None and found.authorization_server is None:
                found.authorization_server = AuthorizationServer(issuer, hit.url, hit.document)
        if found.authorization_server is None:
            tried = "; ".join(_first_of(found.as_attempts[issuer]) for issuer in found.issuers)
            found.problems.append(
                f"no authorization server metadata found ({tried or 'no issuer is listed'})"
            )
    return found


def _challenge(http: Http, found: Discovery, protocol_version: str) -> None:
    response = mcp.post(
        http, found.mcp_url, mcp.initialize(protocol_version), note="unauthenticated initialize"
    )
    found.unauthenticated = response
    found.challenge = parse_www_authenticate(response.headers.get_list("www-authenticate"))
    for challenge in found.challenge.challenges:
        if challenge.get("resource_metadata"):
            found.resource_metadata_url = challenge.get("resource_metadata")
            break


def _resource_metadata(http: Http, found: Discovery) -> None:
    urls = [found.resource_metadata_url] if found.resource_metadata_url else []
    urls += [u for u in prm_candidates(found.mcp_url) if u not in urls]
    for url in urls:
        if not http.scope.allows(url):
            found.problems.append(f"resource_metadata {url} is outside the run's scope")
            continue
        attempt = _fetch(http, url, "protected resource metadata")
        found.prm_attempts.append(attempt)
        if attempt.ok:
            found.prm = attempt
            return
    tried = _first_of(found.prm_attempts) if found.prm_attempts else "no URL in scope"
    found.problems.append(f"no protected resource metadata found ({tried})")


def _first_of(attempts: list[Fetched]) -> str:
    """The first failed attempt described, and how many more failed."""
    more = f" (and {len(attempts) - 1} more URLs)" if len(attempts) > 1 else ""
    return attempts[0].describe() + more


def _issuers(found: Discovery, issuer_hint: str | None) -> None:
    listed = (
        found.prm.document.get("authorization_servers")
        if found.prm and found.prm.document
        else None
    )
    if isinstance(listed, list) and listed and all(isinstance(i, str) for i in listed):
        found.issuers, found.issuer_source = list(listed), "resource metadata"
    if issuer_hint and issuer_hint not in found.issuers:
        found.issuers.append(issuer_hint)
        found.issuer_source = found.issuer_source or "target config"
