"""Client ID Metadata Documents: a client whose `client_id` is an https URL, registered by the
JSON document at that URL (draft-ietf-oauth-client-id-metadata-document-01; MCP 2025-11-25
"Client ID Metadata Documents"). Section numbers are those of draft -01.

This AS accepts such clients as public clients (`token_endpoint_auth_method` "none", §4.1
lets it restrict the document so). Every authorization and token request naming one
re-resolves it: from a cached document while the document's `Cache-Control: max-age` lasts
(§4.4), else by fetching it again.

The fetch is bounded (timeout, size, no redirects) and guarded against SSRF (§6.5): the host
is resolved once, every address it resolves to must be globally routable, and the request
goes to the checked address, so a second resolution cannot swap in another (DNS rebinding).
Hosts in `ReferenceSettings.cimd_allowed_hosts` are exempt from the address check (the
embedded deployment's document host is on loopback); a `cimd_loopback_only` deployment (the
embedded one) resolves no names and fetches from loopback addresses only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import ssl
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx
from starlette.requests import Request

from reference.authorization_server.context import Context
from reference.authorization_server.errors import OAuthError
from reference.authorization_server.registration import (
    _dpop_metadata,
    _grant_types,
    _response_types,
    redirect_uri_problem,
)
from reference.authorization_server.store import Client
from reference.settings import ReferenceSettings

# §6.6: "The recommended maximum response size for client metadata documents is 5 kilobytes."
MAX_DOCUMENT_BYTES = 5 * 1024
FETCH_TIMEOUT = httpx.Timeout(3.0, connect=2.0)
FETCH_DEADLINE = 5.0  # seconds for the whole fetch, however slowly the bytes come
MAX_CACHE_SECONDS = 300  # §4.4: the AS MAY bound the cache lifetime
# §4.1: no method "based around a shared symmetric secret".
SHARED_SECRET_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt")
SECRET_MEMBERS = ("client_secret", "client_secret_expires_at")
# MCP 2025-11-25 "Implementation Requirements": the members every document has.
REQUIRED_MEMBERS = ("client_id", "client_name", "redirect_uris")
# §4.1: application/json, or a more specific application/<AS-defined>+json.
_JSON_TYPE = re.compile(r"^application/([a-z0-9.+-]+\+)?json$")
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.I)


class DocumentRefused(Exception):
    """The client ID URL or its document is unusable; the message says why."""


def is_client_id_url(client_id: str | None) -> bool:
    """True for a client_id that names a document: an absolute URL. This AS's own client_ids
    never contain "://" (§6.9: generated client_ids must not start with https://)."""
    return client_id is not None and "://" in client_id


@dataclass
class _Cached:
    client: Client
    until: float  # time.monotonic()


class DocumentFetcher:
    """Fetches, validates and caches client ID metadata documents for one AS instance."""

    def __init__(self, settings: ReferenceSettings) -> None:
        self._settings = settings
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=settings.cimd_ca_file)
            if settings.cimd_ca_file
            else True
        )
        self._client: httpx.AsyncClient | None = None
        self._cache: dict[str, _Cached] = {}

    def _http(self) -> httpx.AsyncClient:
        """One client (a new one costs a TLS context per call), but a connection per fetch:
        each goes to the address just checked, and none is left open to the client's host."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=FETCH_TIMEOUT,
                verify=self._verify,
                trust_env=False,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        return self._client

    async def client(self, ctx: Context, client_id: str) -> Client:
        """The client `client_id` names (§4): cached while fresh, else fetched and validated."""
        cached = self._cache.get(client_id)
        if cached is not None and cached.until > time.monotonic():
            return cached.client
        self._cache.pop(client_id, None)
        parts = check_client_id_url(ctx, client_id)
        try:
            async with asyncio.timeout(FETCH_DEADLINE):
                document, max_age = await self._fetch(ctx, parts)
        except TimeoutError as exc:
            raise DocumentRefused(f"the document took over {FETCH_DEADLINE} s") from exc
        client = client_from_document(ctx, client_id, document)
        # §4.4: only valid documents are cached (errors and invalid documents never are).
        if max_age:
            self._cache[client_id] = _Cached(client, time.monotonic() + max_age)
        return client

    async def _fetch(self, ctx: Context, parts: SplitResult) -> tuple[Any, int]:
        """GET the document from its checked address; (parsed JSON, cache lifetime)."""
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._address(ctx, host, port)
        literal = f"[{address}]" if ":" in address else address
        pinned = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path, parts.query, ""))
        authority = f"[{host}]" if ":" in host else host
        lax = ctx.defect("cimd-fetch-lax")
        try:
            async with self._http().stream(
                "GET",
                pinned,
                headers={"Host": f"{authority}:{port}", "Accept": "application/json"},
                extensions={"sni_hostname": host},
                follow_redirects=lax,
            ) as response:
                # §4: only a 200 is a document, and redirects are not followed.
                if response.status_code != 200 and not (lax and response.status_code < 500):
                    raise DocumentRefused(f"the document URL answered {response.status_code}")
                self._check_content_type(ctx, response.headers.get("content-type", ""))
                body = await self._read(ctx, response)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise DocumentRefused(f"fetching the document failed: {reason}") from exc
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise DocumentRefused("the document is not JSON") from exc
        return document, _max_age(response.headers.get("cache-control", ""))

    async def _address(self, ctx: Context, host: str, port: int) -> str:
        """The address to connect to: §6.5, never a special-use address (RFC 6890), unless the
        host is allowlisted. A loopback-only deployment resolves no names and reaches no
        address beyond loopback, whatever the defects."""
        loopback_only = self._settings.cimd_loopback_only
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host,
                port,
                type=socket.SOCK_STREAM,
                flags=socket.AI_NUMERICHOST if loopback_only else 0,
            )
        except OSError as exc:
            raise DocumentRefused(f"the document host {host!r} does not resolve") from exc
        addresses = [str(info[4][0]) for info in infos]
        if loopback_only and not all(_ip(a).is_loopback for a in addresses):
            raise DocumentRefused(f"this deployment fetches from loopback only, not {host!r}")
        exempt = host in self._settings.cimd_allowed_hosts or ctx.defect("cimd-no-ssrf-guard")
        if not exempt:
            special = [a for a in addresses if not _globally_routable(a)]
            if special:
                raise DocumentRefused(
                    f"the document host {host!r} resolves to special-use address(es) "
                    f"{', '.join(special)}: not fetched"
                )
        return addresses[0]

    @staticmethod
    def _check_content_type(ctx: Context, content_type: str) -> None:
        media_type = content_type.split(";")[0].strip().lower()
        if not _JSON_TYPE.match(media_type) and not ctx.defect("cimd-document-structure-lax"):
            raise DocumentRefused(f"the document is served as {media_type or 'no type'}, not JSON")

    @staticmethod
    async def _read(ctx: Context, response: httpx.Response) -> bytes:
        """The body, at most MAX_DOCUMENT_BYTES (§6.6) unless `cimd-document-size-unbounded`."""
        limit = None if ctx.defect("cimd-document-size-unbounded") else MAX_DOCUMENT_BYTES
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body.extend(chunk)
            if limit is not None and len(body) > limit:
                raise DocumentRefused(f"the document is larger than {limit} bytes")
        return bytes(body)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as resolved (scope ID dropped), an IPv4-mapped IPv6 one as its IPv4 form."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _globally_routable(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved, unspecified and every
    other special-purpose address (RFC 6890), IPv4-mapped IPv6 addresses included."""
    ip = _ip(address)
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


def _max_age(cache_control: str) -> int:
    """§4.4: the document may be cached for its `max-age` (bounded), never with no-store or
    no-cache."""
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0
    match = _MAX_AGE.search(cache_control)
    return min(int(match.group(1)), MAX_CACHE_SECONDS) if match else 0


def check_client_id_url(ctx: Context, client_id: str) -> SplitResult:
    """§3: an https URL with a path, no single- or double-dot segments, no fragment, no
    username or password (under `cimd-url-form-not-checked`, any http(s) URL with a host)."""
    try:
        parts = urlsplit(client_id)
        host = parts.hostname
    except ValueError as exc:
        raise DocumentRefused("the client_id is not a valid URL") from exc
    lax = ctx.defect("cimd-url-form-not-checked")
    if parts.scheme not in (("http", "https") if lax else ("https",)) or not host:
        raise DocumentRefused("a client_id URL must be an https URL")
    if lax:
        return parts
    if not parts.path:
        raise DocumentRefused("a client_id URL must contain a path")
    if {".", ".."} & set(parts.path.split("/")):
        raise DocumentRefused("a client_id URL must not contain dot segments")
    if "#" in client_id:
        raise DocumentRefused("a client_id URL must not contain a fragment")
    if "@" in parts.netloc:
        raise DocumentRefused("a client_id URL must not contain a username or password")
    return parts


def _redirect_uris(ctx: Context, document: dict[str, Any]) -> list[str]:
    uris = document.get("redirect_uris")
    if isinstance(uris, str) and ctx.defect("cimd-document-structure-lax"):
        uris = [uris]
    if not isinstance(uris, list) or not uris:
        raise DocumentRefused("redirect_uris must be a non-empty array")
    for uri in uris:
        problem = redirect_uri_problem(uri)
        if problem:
            raise DocumentRefused(problem)
    return list(uris)


def _auth_method(ctx: Context, document: dict[str, Any]) -> str:
    """§4.1: no shared-secret method and no secret; this AS takes public clients only."""
    method = document.get("token_endpoint_auth_method", "none")
    if ctx.defect("cimd-shared-secret-accepted"):
        return "none"  # the defect: whatever the document declares, a public client
    if method in SHARED_SECRET_METHODS:
        raise DocumentRefused(f"token_endpoint_auth_method {method!r} needs a shared secret")
    if present := [m for m in SECRET_MEMBERS if m in document]:
        raise DocumentRefused(f"a client ID metadata document must not carry {present}")
    if method != "none":
        raise DocumentRefused(f"token_endpoint_auth_method {method!r} is not supported here")
    return "none"


def client_from_document(ctx: Context, client_id: str, document: Any) -> Client:
    """Validate a fetched document (§4.1; MCP 2025-11-25 "Implementation Requirements") and
    build the public client it registers."""
    if not isinstance(document, dict):
        raise DocumentRefused("the document is not a JSON object")
    if document.get("client_id") != client_id and not ctx.defect("cimd-client-id-not-checked"):
        raise DocumentRefused(
            f"the document's client_id {document.get('client_id')!r} is not its URL"
        )
    lax = ctx.defect("cimd-document-structure-lax")  # the defect: client_name is optional
    missing = [
        m for m in REQUIRED_MEMBERS if m not in document and not (lax and m == "client_name")
    ]
    if missing:
        raise DocumentRefused(f"the document lacks {', '.join(missing)}")
    if not isinstance(document.get("client_name", ""), str):
        raise DocumentRefused("client_name must be a string")
    redirect_uris = _redirect_uris(ctx, document)
    method = _auth_method(ctx, document)
    try:
        grant_types = _grant_types(ctx, {"grant_types": ["authorization_code"], **document})
        response_types = _response_types(document)
        extra = _dpop_metadata(document)
    except OAuthError as err:
        raise DocumentRefused(err.description) from err
    if "client_name" in document:
        extra["client_name"] = document["client_name"]
    return Client(
        client_id=client_id,
        redirect_uris=redirect_uris,
        token_endpoint_auth_method=method,
        grant_types=grant_types,
        response_types=response_types,
        metadata=extra,
    )


def fetcher(request: Request) -> DocumentFetcher:
    documents: DocumentFetcher = request.app.state.client_documents
    return documents


async def find_client(
    request: Request, ctx: Context, client_id: str | None, redirect_uri: str | None
) -> tuple[Client | None, str]:
    """The client an authorization request names, or None and why (OAuth 2.1 §4.1.2.1: the
    caller refuses without redirecting). A URL client_id is resolved from its document, which
    this AS can do unless `cimd-unsupported`."""
    if not is_client_id_url(client_id) or ctx.defect("cimd-unsupported"):
        client = ctx.store.clients.get(client_id or "")
        return client, "unknown client_id"
    assert client_id is not None
    try:
        client = await fetcher(request).client(ctx, client_id)
    except DocumentRefused as exc:
        ctx.store.clients.pop(client_id, None)
        return None, f"client ID metadata document refused: {exc}"
    if (
        ctx.defect("cimd-redirect-uri-not-checked")
        and redirect_uri is not None
        and redirect_uri not in client.redirect_uris
    ):  # the defect: whatever redirect URI the request names counts as registered
        client = replace(client, redirect_uris=[*client.redirect_uris, redirect_uri])
    ctx.store.clients[client_id] = client
    return client, ""


async def refresh_client(request: Request, ctx: Context, client_id: str | None) -> None:
    """Before a token request: a URL client_id is resolved again, so the client the token
    endpoint finds is the one its document registers now (`invalid_client` otherwise)."""
    if not is_client_id_url(client_id) or ctx.defect("cimd-unsupported"):
        return
    assert client_id is not None
    ctx.store.clients.pop(client_id, None)
    if ctx.defect("cimd-token-endpoint-unaware"):
        return  # the defect: the token endpoint knows only registered clients
    try:
        ctx.store.clients[client_id] = await fetcher(request).client(ctx, client_id)
    except DocumentRefused as exc:
        reason = f"client ID metadata document refused: {exc}"
        raise OAuthError("invalid_client", reason, 401) from exc
