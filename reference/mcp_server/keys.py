"""Verification keys: the authorization server's JWK Set, fetched over HTTP and cached.

RFC 9068 §4 (the resource server validates the signature with keys published by the issuer)
and RFC 8414 §2 (`jwks_uri`). Keys are looked up by `kid`; an unknown `kid` triggers one
refetch, so a key rotation at the AS is picked up without restarting the MCP server. Keys a
token's own header offers (RFC 7515 §4.1.2-4.1.5) are read only under a defect switch.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from reference.tls import default_tls_context

HTTP_TIMEOUT = 5.0
"""Seconds allowed for any metadata or JWKS fetch."""


class KeyFetchError(Exception):
    """The JWK Set (or the metadata naming it) could not be fetched or parsed."""


class UnknownKeyError(Exception):
    """No key in the JWK Set matches the token's `kid`, even after a refetch."""


NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
"""Send small requests at once on reused connections (no Nagle wait for a delayed ACK)."""


def new_http_client() -> httpx.AsyncClient:
    """An HTTP client for outgoing calls (5 s timeout, no redirects, no proxies from the env)."""
    return httpx.AsyncClient(
        timeout=HTTP_TIMEOUT,
        trust_env=False,
        follow_redirects=False,
        transport=httpx.AsyncHTTPTransport(
            trust_env=False, socket_options=NO_DELAY, verify=default_tls_context()
        ),
    )


def is_loopback_http_url(url: str) -> bool:
    """True for an absolute http(s) URL whose host is a loopback name or address."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_jwks(document: Any) -> dict[str | None, jwt.PyJWK]:
    """Usable RSA signing keys of a JWK Set, by `kid` (RFC 7517 §5)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeyFetchError("the JWKS document has no `keys` array")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            keys[entry.get("kid")] = jwt.PyJWK(entry, algorithm="RS256")
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
    return keys


async def _get(client: httpx.AsyncClient, url: str, accept: str) -> httpx.Response:
    """GET `url`; a transport failure or a status other than 200 becomes `KeyFetchError`."""
    try:
        response = await client.get(url, headers={"Accept": accept})
    except httpx.HTTPError as exc:
        raise KeyFetchError(f"GET {url} failed: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise KeyFetchError(f"GET {url} answered {response.status_code}")
    return response


async def fetch_json(client: httpx.AsyncClient, url: str) -> Any:
    """GET `url` and return its JSON body; any failure becomes `KeyFetchError`."""
    response = await _get(client, url, "application/json")
    try:
        return response.json()
    except ValueError as exc:
        raise KeyFetchError(f"GET {url} did not return JSON") from exc


class JwksCache:
    """The JWK Set at one `jwks_uri`, fetched lazily and refetched once on an unknown `kid`."""

    def __init__(self, jwks_uri: str, client: httpx.AsyncClient) -> None:
        self.jwks_uri = jwks_uri
        self._client = client
        self._keys: dict[str | None, jwt.PyJWK] | None = None
        self._lock = asyncio.Lock()

    async def _refresh(self) -> dict[str | None, jwt.PyJWK]:
        async with self._lock:
            self._keys = _parse_jwks(await fetch_json(self._client, self.jwks_uri))
            return self._keys

    @staticmethod
    def _select(keys: dict[str | None, jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return keys.get(kid)
        # No `kid` in the header: usable only when the set holds exactly one key.
        return next(iter(keys.values())) if len(keys) == 1 else None

    async def get_key(self, kid: str | None) -> jwt.PyJWK:
        """The verification key for `kid`, refetching the set once when it is not cached."""
        cached = self._keys
        key = self._select(cached if cached is not None else await self._refresh(), kid)
        if key is None and cached is not None:
            key = self._select(await self._refresh(), kid)
        if key is None:
            raise UnknownKeyError(f"no signing key with kid {kid!r}")
        return key


class KeyStore:
    """Owns the HTTP client and the JWKS cache of the configured authorization server."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._client: httpx.AsyncClient | None = None
        self._issuer_jwks: JwksCache | None = None
        self._idp_jwks: JwksCache | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_http_client()
        return self._client

    @property
    def issuer_jwks(self) -> JwksCache:
        """The JWK Set of the configured issuer, at `{issuer}/jwks`."""
        if self._issuer_jwks is None:
            self._issuer_jwks = JwksCache(f"{self.issuer.rstrip('/')}/jwks", self.client)
        return self._issuer_jwks

    async def jwks_for_untrusted_issuer(self, iss: str) -> JwksCache:
        """Discover a JWK Set from whatever issuer a token names (RFC 8414 §3).

        Only used by the `rs-trusts-token-issuer` defect; restricted to loopback http URLs
        so the reference deployment never reaches off the machine.
        """
        if not is_loopback_http_url(iss):
            raise KeyFetchError("token issuer is not a loopback URL")
        metadata = await fetch_json(
            self.client, f"{iss.rstrip('/')}/.well-known/oauth-authorization-server"
        )
        jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
        if not isinstance(jwks_uri, str) or not is_loopback_http_url(jwks_uri):
            raise KeyFetchError("token issuer metadata names no loopback jwks_uri")
        return JwksCache(jwks_uri, self.client)

    async def key_from_header(self, header: Mapping[str, Any]) -> jwt.PyJWK | None:
        """The key a token's header offers: `jwk`, or fetched from `jku` or `x5u`.

        Only used by the `rs-trusts-header-keys` defect. RFC 8725 §3.8 has the validator use
        keys that belong to the issuer, and §3.10 warns that following `jku`/`x5u` is a
        server-side request forgery; these keys belong to whoever made the token. Restricted
        to loopback URLs so the reference deployment never reaches off the machine.
        """
        jwk, jku, x5u = header.get("jwk"), header.get("jku"), header.get("x5u")
        try:
            if isinstance(jwk, dict):
                return jwt.PyJWK(jwk, algorithm="RS256")
            if isinstance(jku, str) and is_loopback_http_url(jku):
                kid = header.get("kid")
                return await JwksCache(jku, self.client).get_key(
                    kid if isinstance(kid, str) else None
                )
            if isinstance(x5u, str) and is_loopback_http_url(x5u):
                pem = (await _get(self.client, x5u, "application/pem-certificate-chain")).content
                public_key = x509.load_pem_x509_certificate(pem).public_key()
                if not isinstance(public_key, rsa.RSAPublicKey):
                    raise KeyFetchError("the certificate at x5u holds no RSA key")
                return jwt.PyJWK(RSAAlgorithm.to_jwk(public_key, as_dict=True), algorithm="RS256")
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise KeyFetchError("the token header names no usable key") from exc
        except UnknownKeyError as exc:
            raise KeyFetchError("the JWK Set at jku has no key for the token") from exc
        return None

    async def idp_jwks(self, idp_issuer: str) -> JwksCache:
        """The enterprise IdP's JWK Set, found by OpenID Connect Discovery 1.0 §4 (`jwks_uri`).

        Only used by the `rs-accepts-idp-assertions` defect: a conformant MCP server trusts
        its own authorization server's keys alone.
        """
        if self._idp_jwks is None:
            metadata = await fetch_json(
                self.client, f"{idp_issuer.rstrip('/')}/.well-known/openid-configuration"
            )
            jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
            if not isinstance(jwks_uri, str) or not is_loopback_http_url(jwks_uri):
                raise KeyFetchError("the IdP's discovery document names no loopback jwks_uri")
            self._idp_jwks = JwksCache(jwks_uri, self.client)
        return self._idp_jwks

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._issuer_jwks = None
            self._idp_jwks = None
