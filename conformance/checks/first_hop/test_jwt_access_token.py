"""JWT access tokens the authorization server issues for the MCP server (RFC 9068).

RFC 9068 §2.1 (typed `at+jwt`, asymmetrically signed by a key in the AS JWK Set), §2.2 (the
required claims) and §4 (validation by the resource server), RFC 8707 and MCP authorization
"Token Audience Binding and Validation" (`aud` names the MCP server), and OAuth 2.1 §7.1.3.5
(short lifetimes). JWT-only checks skip when access tokens are opaque.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from conformance.discovery import AuthorizationServer
from conformance.fixtures import Clients, Run
from conformance.flows import Flows, TokenSet
from conformance.oauth import jwt as jwts
from conformance.oauth.jwks import JwkSet, fetch_jwk_set
from conformance.verdict import Verdict

_ASYMMETRIC_PREFIXES = ("RS", "PS", "ES")
_EDDSA = ("EdDSA", "Ed25519", "Ed448")
_TYPES = ("at+jwt", "application/at+jwt")
MAX_LIFETIME = 3600  # seconds: the suite's default ceiling for AT-SHORT-LIVED


def _jwt_or_skip(token: str) -> str:
    if not jwts.is_jwt(token):
        pytest.skip("access tokens are opaque (not JWTs): RFC 9068 does not apply")
    return token


def _asymmetric(alg: Any) -> bool:
    return isinstance(alg, str) and (
        alg in _EDDSA or (alg[:2] in _ASYMMETRIC_PREFIXES and alg[2:].isdigit())
    )


def _signing_keys(run: Run, server: AuthorizationServer, verdict: Verdict) -> JwkSet:
    """The AS JWK Set; without one the token's key cannot be checked (ASM-JWKS-URI judges it)."""
    url = server.endpoint("jwks_uri")
    verdict.precondition(url, "the AS metadata has no jwks_uri (see ASM-JWKS-URI)")
    assert url is not None
    jwk_set = fetch_jwk_set(run.http, url)
    verdict.precondition(
        jwk_set.keys is not None,
        f"GET {url} answered {jwk_set.response.status_code} without a JWK Set",
    )
    return jwk_set


@pytest.mark.requirement("JWTAT-HEADER")
def test_access_token_is_typed_and_asymmetrically_signed(
    run: Run, authorization_server: AuthorizationServer, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """typ at+jwt, an asymmetric alg, and a signature by a key in the JWK Set (RFC 9068 §2.1)."""
    token = _jwt_or_skip(alice_tokens.access_token)
    head = jwts.header(token)
    typ, alg, kid = head.get("typ"), head.get("alg"), head.get("kid")
    verdict.expect(
        "JWTAT-HEADER",
        isinstance(typ, str) and typ.lower() in _TYPES,
        f"the access token's typ is {typ!r}, not at+jwt",
    )
    if not verdict.expect(
        "JWTAT-HEADER",
        _asymmetric(alg),
        f"the access token's alg is {alg!r}, not an asymmetric algorithm",
    ):
        return  # never verify with a public key as an HMAC secret
    jwk_set = _signing_keys(run, authorization_server, verdict)
    jwk = jwk_set.key_for(kid)
    if kid is None and jwk is not None:
        verdict.note("the access token names no kid; the JWK Set's only key is used")
    if not verdict.expect(
        "JWTAT-HEADER",
        jwk is not None,
        f"the access token's kid {kid!r} is not in the AS JWK Set (kids: {jwk_set.kids})",
    ):
        return
    assert jwk is not None
    verdict.expect(
        "JWTAT-HEADER",
        jwk.get("alg") in (None, alg),
        f"the token is signed with {alg!r}, its key {kid!r} is for {jwk.get('alg')!r}",
    )
    try:
        key = jwt.PyJWK(jwk, algorithm=None if jwk.get("alg") else alg).key
        jwt.decode(
            token,
            key,
            algorithms=[str(alg)],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_iss": False,
            },
        )
    except jwt.PyJWTError as exc:
        verdict.fail("JWTAT-HEADER", f"the signature does not verify with key {kid!r}: {exc}")


@pytest.mark.requirement("JWTAT-CLAIMS")
def test_access_token_carries_required_claims(
    flows: Flows,
    authorization_server: AuthorizationServer,
    alice_tokens: TokenSet,
    verdict: Verdict,
) -> None:
    """iss, exp, aud (the MCP server), sub, client_id, iat, jti (RFC 9068 §2.2, RFC 8707)."""
    claims = jwts.claims(_jwt_or_skip(alice_tokens.access_token))
    issuer = authorization_server.identifier
    verdict.expect(
        "JWTAT-CLAIMS",
        claims.get("iss") == issuer,
        f"iss is {claims.get('iss')!r}, not the AS identifier {issuer!r}",
    )
    for name in ("exp", "iat"):
        verdict.expect(
            "JWTAT-CLAIMS",
            isinstance(claims.get(name), int | float),
            f"{name} is missing or not a NumericDate: {claims.get(name)!r}",
        )
    if isinstance(claims.get("exp"), int | float) and isinstance(claims.get("iat"), int | float):
        verdict.expect(
            "JWTAT-CLAIMS",
            claims["exp"] > claims["iat"],
            f"exp {claims['exp']} is not after iat {claims['iat']}",
        )
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    verdict.expect(
        "JWTAT-CLAIMS",
        flows.mcp_url in audiences,
        f"aud is {aud!r}, which does not name the MCP server {flows.mcp_url!r}",
    )
    for name in ("sub", "jti"):
        verdict.expect(
            "JWTAT-CLAIMS",
            isinstance(claims.get(name), str) and claims[name],
            f"{name} is missing or not a non-empty string: {claims.get(name)!r}",
        )
    client_id = alice_tokens.client.client_id
    verdict.expect(
        "JWTAT-CLAIMS",
        claims.get("client_id") == client_id,
        f"client_id is {claims.get('client_id')!r}, not the requesting client {client_id!r}",
    )
    if not isinstance(claims.get("scope"), str):
        verdict.tolerate(
            "JWTAT-CLAIMS",
            f"no space-delimited scope claim (scope={claims.get('scope')!r}, "
            f"scp={claims.get('scp')!r}); RFC 9068 §2.2.3 puts granted scopes there",
        )


@pytest.mark.requirement("JWTAT-CLAIMS")
def test_access_token_jti_is_unique(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """Every access token has its own jti (RFC 9068 §2.2, RFC 7519 §4.1.7)."""
    first = _jwt_or_skip(alice_tokens.access_token)
    tokens = [first, *(flows.tokens(clients.public).access_token for _ in range(2))]
    jtis = [jwts.claims(t).get("jti") if jwts.is_jwt(t) else None for t in tokens]
    verdict.expect(
        "JWTAT-CLAIMS",
        all(jtis) and len(set(jtis)) == len(jtis),
        f"three access tokens for alice carry the jti values {jtis}",
    )


@pytest.mark.requirement("AT-SHORT-LIVED")
def test_access_token_is_short_lived(alice_tokens: TokenSet, verdict: Verdict) -> None:
    """expires_in and exp - iat are at most an hour (OAuth 2.1 §7.1.3.5, MCP Token Theft)."""
    lifetimes: dict[str, Any] = {}
    if "expires_in" in alice_tokens.body:
        lifetimes["expires_in"] = alice_tokens.body["expires_in"]
    token = alice_tokens.access_token
    if jwts.is_jwt(token):
        claims = jwts.claims(token)
        if isinstance(claims.get("exp"), int | float):
            iat = claims.get("iat")
            lifetimes["exp - iat"] = claims["exp"] - iat if isinstance(iat, int | float) else None
    if not verdict.expect(
        "AT-SHORT-LIVED", bool(lifetimes), "the access token never expires (no expires_in, no exp)"
    ):
        return
    for source, seconds in lifetimes.items():
        verdict.expect(
            "AT-SHORT-LIVED",
            isinstance(seconds, int | float) and 0 < seconds <= MAX_LIFETIME,
            f"{source} is {seconds!r} s, over the {MAX_LIFETIME} s ceiling",
        )
