"""Keys: the service AS's own signing key, and the JWK Sets of the issuers it trusts.

The own key is a fresh RSA key per app (`mock_idp.keys`, shared with the mock IdP). Trusted
issuers' keys are fetched over HTTP from their `jwks_uri` (RFC 8414 section 2), found by
RFC 8414 section 3 / OIDC Discovery 1.0 section 4 when not configured, cached, and fetched
once more when a token names an unknown `kid`, so key rotation needs no restart.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt

from mock_saas.settings import TrustedIssuer

HTTP_TIMEOUT = 5.0
"""Seconds allowed for any metadata or JWKS fetch."""

ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "PS256", "ES256"})
"""RFC 8725 section 3.1: an allow-list; never `none`, never a MAC (HS*) with a public key."""

_KTY_OF_ALGORITHM = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}


class KeyUnavailable(Exception):
    """No usable verification key: fetch failed, or no key matches the token's `kid`."""


def new_http_client() -> httpx.AsyncClient:
    """The client for key and metadata fetches: 5 s timeout, no redirects, no env proxies."""
    return httpx.AsyncClient(
        timeout=HTTP_TIMEOUT, follow_redirects=False, trust_env=False, verify=_tls_context()
    )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Built once: each context loads the CA bundle (~50 ms) and the mock makes many clients."""
    return httpx.create_ssl_context()


async def fetch_json(client: httpx.AsyncClient, url: str) -> Any:
    """GET `url` and return its JSON body; any failure becomes `KeyUnavailable`."""
    try:
        response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise KeyUnavailable(f"GET {url} failed: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise KeyUnavailable(f"GET {url} answered {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise KeyUnavailable(f"GET {url} did not return JSON") from exc


def metadata_urls(issuer: str) -> tuple[str, str]:
    """RFC 8414 section 3.1 (well-known segment inserted before the issuer's path), then
    OIDC Discovery 1.0 section 4 (appended to the issuer)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = urlunsplit(parts._replace(path=f"/.well-known/oauth-authorization-server{path}"))
    return rfc8414, f"{issuer.rstrip('/')}/.well-known/openid-configuration"


async def discover_jwks_uri(client: httpx.AsyncClient, issuer: str) -> str:
    """The `jwks_uri` of `issuer`'s metadata, whose `issuer` must match (RFC 8414 3.3)."""
    failures: list[str] = []
    for url in metadata_urls(issuer):
        try:
            metadata = await fetch_json(client, url)
        except KeyUnavailable as exc:
            failures.append(str(exc))
            continue
        if not isinstance(metadata, dict) or metadata.get("issuer") != issuer:
            failures.append(f"{url} names another issuer")
            continue
        jwks_uri = metadata.get("jwks_uri")
        if isinstance(jwks_uri, str):
            return jwks_uri
        failures.append(f"{url} has no jwks_uri")
    raise KeyUnavailable("; ".join(failures))


def verification_key(jwks: dict[str, Any], kid: str | None, alg: str) -> jwt.PyJWK | None:
    """The key of a JWK Set (RFC 7517 section 5) for a token's `kid` and `alg`.

    A key must be of the algorithm's type, for signatures, and of that `alg` if it names
    one. Without a `kid` the set must hold exactly one such key.
    """
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        return None
    candidates = [
        entry
        for entry in entries
        if isinstance(entry, dict)
        and entry.get("kty") == _KTY_OF_ALGORITHM.get(alg)
        and entry.get("use", "sig") == "sig"
        and entry.get("alg", alg) == alg
        and (kid is None or entry.get("kid") == kid)
    ]
    if len(candidates) != 1:
        return None
    try:
        return jwt.PyJWK(candidates[0], algorithm=alg)
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        return None


class IssuerKeys:
    """The JWK Set of one trusted issuer, fetched lazily and refetched once on a miss."""

    def __init__(self, trusted: TrustedIssuer, client: httpx.AsyncClient) -> None:
        self.trusted = trusted
        self._client = client
        self._jwks_uri = trusted.jwks_uri
        self._jwks: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self) -> dict[str, Any]:
        async with self._lock:
            if self._jwks_uri is None:
                self._jwks_uri = await discover_jwks_uri(self._client, self.trusted.issuer)
            document = await fetch_json(self._client, self._jwks_uri)
            if not isinstance(document, dict):
                raise KeyUnavailable(f"{self._jwks_uri} is not a JWK Set")
            self._jwks = document
            return document

    async def key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The verification key for `kid` and `alg`, refetching the set once if needed."""
        cached = self._jwks
        key = verification_key(cached if cached is not None else await self._fetch(), kid, alg)
        if key is None and cached is not None:
            key = verification_key(await self._fetch(), kid, alg)
        if key is None:
            raise KeyUnavailable(f"{self.trusted.issuer} publishes no {alg} key with kid {kid!r}")
        return key


class TrustStore:
    """The keys of the issuers one part of the service trusts.

    Remote issuers' JWK Sets are fetched over one HTTP client (one `IssuerKeys` each);
    `local` issuers (the service's own AS) are given their JWK Set up front.
    """

    def __init__(
        self, issuers: tuple[TrustedIssuer, ...], local: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self._issuers = {t.issuer: t for t in issuers}
        self._local = dict(local or {})
        self._client: httpx.AsyncClient | None = None
        self._keys: dict[str, IssuerKeys] = {}

    def trusts(self, issuer: object) -> bool:
        return isinstance(issuer, str) and (issuer in self._issuers or issuer in self._local)

    async def key(self, issuer: str, kid: str | None, alg: str) -> jwt.PyJWK:
        """The key `issuer` (which must be trusted) signs with under `kid` and `alg`."""
        if issuer in self._local:
            key = verification_key(self._local[issuer], kid, alg)
            if key is None:
                raise KeyUnavailable(f"{issuer} has no {alg} key with kid {kid!r}")
            return key
        keys = self._keys.get(issuer)
        if keys is None:
            if self._client is None:
                self._client = new_http_client()
            keys = self._keys[issuer] = IssuerKeys(self._issuers[issuer], self._client)
        return await keys.key(kid, alg)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._keys.clear()
