"""How the MCP server validates the access tokens it is given, and refuses the bad ones.

MCP 2025-11-25 authorization "Token Handling" / "Access Token Validation" (only tokens issued
for this server are accepted), RFC 9068 §4 (JWT access token validation: typ, issuer,
audience, signature, expiry; a failure answered with `invalid_token`), RFC 8725 (JWT best
practices: §2.1 and §3.1 the algorithm is pinned, §3.8 and §3.10 keys come from the issuer,
never from the token's header, §3.9 audience, §3.12 one kind of JWT is not another), RFC 8707
§2 (audience-bound tokens) and RFC 7519 §4.1.3-4.1.6 (`aud`, `exp`, `nbf`, `iat`). Every
forged token is derived from alice's real token, changing one thing; her unchanged token (or
her claims re-signed) must work first, so an outage is an error, never a pass.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from jwt import PyJWK

from conformance import mcp
from conformance.discovery import AuthorizationServer, json_object
from conformance.fixtures import AttackerIssuer, Clients, Run
from conformance.flows import Flows, TokenSet
from conformance.oauth import jwt
from conformance.oauth.challenge import bearer_challenge
from conformance.verdict import Verdict

_SKEW_MARGIN = 30  # seconds beyond the tolerated clock skew that the skew probes lie
_FAR_FUTURE = 3600  # an `iat` this far ahead is no clock skew
_OTHER_RESOURCE = "https://other-resource.invalid/api"

# --- helpers -------------------------------------------------------------------------------


def _present(run: Run, token: str, note: str) -> httpx.Response:
    """initialize, authorized with `token`: the cheapest request every MCP server answers."""
    return mcp.post(
        run.http, run.mcp_url, mcp.initialize(run.config.protocol_version), token=token, note=note
    )


def _describe(response: httpx.Response) -> str:
    challenge = response.headers.get("www-authenticate")
    return f"{response.status_code}" + (f" ({challenge})" if challenge else "")


def _require_accepted(run: Run, token: str, verdict: Verdict, what: str) -> None:
    """Known-good control: `token` must work, else the check cannot judge (error)."""
    response = _present(run, token, f"known-good: {what}")
    verdict.precondition(response.is_success, f"{what} got {_describe(response)}")


def _require_alice_works(run: Run, alice_tokens: TokenSet, verdict: Verdict) -> None:
    _require_accepted(run, alice_tokens.access_token, verdict, "alice's valid token")


def _alice_claims(alice_tokens: TokenSet) -> dict[str, Any]:
    token = alice_tokens.access_token
    if not jwt.is_jwt(token):
        pytest.skip("access tokens are not JWTs (opaque): the suite cannot forge variants")
    return jwt.claims(token)


def _fresh(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Alice's claims, currently valid, with a new `jti` (a replay cache must not interfere)."""
    now = int(time.time())
    fresh = {k: v for k, v in claims.items() if k != "nbf"}
    fresh.update(iat=now, exp=now + 300, jti=uuid.uuid4().hex)
    fresh.update(changes)
    return fresh


def _require_resigned_works(
    run: Run, claims: dict[str, Any], token_signer: Callable[..., str], verdict: Verdict
) -> None:
    """Known-good control for signer-built variants: alice's claims, re-signed, must work."""
    control = token_signer(_fresh(claims), typ="at+jwt")
    _require_accepted(run, control, verdict, "alice's claims re-signed by the test signer")


def _expect_refused(
    run: Run,
    verdict: Verdict,
    requirement: str,
    token: str,
    what: str,
    *,
    invalid_token: bool = False,
) -> None:
    """`token` must get 401 (and error="invalid_token" when asked: RFC 9068 §4 demands it)."""
    response = _present(run, token, what)
    if not verdict.expect(
        requirement, response.status_code == 401, f"{what} got {_describe(response)}, not 401"
    ):
        return
    challenge = bearer_challenge(response)
    error = challenge.get("error") if challenge else None
    if invalid_token:
        verdict.expect(
            requirement,
            error == "invalid_token",
            f"{what} got 401 with error={error!r}, not invalid_token",
        )
    elif error != "invalid_token":
        verdict.tolerate(
            requirement, f"{what} got 401 with error={error!r} (RFC 6750 §3.1: invalid_token)"
        )


def _expect_forgery_refused(
    run: Run, verdict: Verdict, requirement: str, forged: str, what: str
) -> None:
    """A token the suite forged (remembered, so reports redact it) gets 401 invalid_token."""
    run.redactor.remember(forged)
    _expect_refused(run, verdict, requirement, forged, what, invalid_token=True)


def _hmac_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """A compact JWS with an HS256 MAC under `secret` (RFC 7515 §7.1, RFC 7518 §3.2), built by
    hand: JOSE libraries rightly refuse to use a public key as an HMAC secret."""
    encoded = [jwt.b64url(json.dumps(part).encode()) for part in (header, claims)]
    signing_input = ".".join(encoded)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{jwt.b64url(mac)}"


def _published_key(
    run: Run, authorization_server: AuthorizationServer, kid: str | None, verdict: Verdict
) -> dict[str, Any]:
    """The issuer's public JWK for `kid`, from its `jwks_uri` (RFC 8414 §2, RFC 7517 §5)."""
    jwks_uri = authorization_server.endpoint("jwks_uri")
    verdict.precondition(
        jwks_uri, "the authorization server metadata names no jwks_uri to read its public key from"
    )
    assert jwks_uri is not None
    response = run.http.get(
        jwks_uri, headers={"Accept": "application/json"}, note="the issuer's JWK Set"
    )
    body = json_object(response) or {}
    keys = [k for k in body.get("keys") or [] if isinstance(k, dict)]
    matching = [k for k in keys if k.get("kid") == kid] if kid else keys[:1]
    verdict.precondition(
        response.is_success and matching,
        f"the JWK Set at {jwks_uri} ({response.status_code}) has no key with kid {kid!r}, "
        f"the kid of alice's token",
    )
    return matching[0]


def _hmac_secrets(jwk: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The forms of a public key a validator trusting `alg` would hand to its HMAC routine."""
    public = PyJWK(jwk).key
    forms = [
        (
            "its PEM (SubjectPublicKeyInfo)",
            public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        )
    ]
    if isinstance(public, rsa.RSAPublicKey):
        forms.append(("its PKCS#1 PEM", public.public_bytes(Encoding.PEM, PublicFormat.PKCS1)))
    forms.append(("its JWK as JSON", json.dumps(jwk).encode()))
    return forms


def _self_signed_certificate(key: rsa.RSAPrivateKey) -> bytes:
    """A PEM certificate for `key`, signed by itself: what an `x5u` URL serves (RFC 7515 §4.1.5)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.PEM)


# --- checks --------------------------------------------------------------------------------


@pytest.mark.requirement("RS-EXPIRED-TOKEN-401")
def test_tokens_outside_validity_window_get_401(
    run: Run, alice_tokens: TokenSet, token_signer: Callable[..., str], verdict: Verdict
) -> None:
    """Tokens past exp, before nbf or without exp get 401 invalid_token (RFC 9068 §2.2, §4,
    RFC 7519 §4.1.4-5)."""
    claims = _alice_claims(alice_tokens)
    now = int(time.time())
    _require_resigned_works(run, claims, token_signer, verdict)
    expired = token_signer(_fresh(claims, iat=now - 7200, exp=now - 3600), typ="at+jwt")
    _expect_refused(
        run,
        verdict,
        "RS-EXPIRED-TOKEN-401",
        expired,
        "a token that expired an hour ago",
        invalid_token=True,
    )
    early = token_signer(_fresh(claims, nbf=now + 3600, exp=now + 7200), typ="at+jwt")
    _expect_refused(
        run,
        verdict,
        "RS-EXPIRED-TOKEN-401",
        early,
        "a token not valid before an hour from now",
        invalid_token=True,
    )
    unbounded = {k: v for k, v in _fresh(claims).items() if k != "exp"}
    _expect_refused(
        run,
        verdict,
        "RS-EXPIRED-TOKEN-401",
        token_signer(unbounded, typ="at+jwt"),
        "a token without exp",
        invalid_token=True,
    )


@pytest.mark.requirement("RS-WRONG-AUDIENCE-401")
def test_token_for_another_resource_gets_401(
    run: Run,
    flows: Flows,
    clients: Clients,
    second_resource: str,
    alice_tokens: TokenSet,
    verdict: Verdict,
) -> None:
    """A real token issued for another resource gets 401 (RFC 8707 §2, RFC 9068 §4)."""
    _require_alice_works(run, alice_tokens, verdict)
    other = flows.tokens(clients.public, resource=second_resource).access_token
    if jwt.is_jwt(other):
        aud = jwt.claims(other).get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        verdict.precondition(
            second_resource in audiences and run.mcp_url not in audiences,
            f"the token requested for {second_resource} has aud={aud!r}: the "
            f"AS did not audience-bind it (TOKEN-RESOURCE-AUDIENCE judges that)",
        )
    else:
        verdict.note("the token is opaque: its audience could not be confirmed before use")
    _expect_refused(
        run, verdict, "RS-WRONG-AUDIENCE-401", other, f"a token issued for {second_resource}"
    )


@pytest.mark.requirement("RS-WRONG-ISSUER-401")
def test_token_from_untrusted_issuer_gets_401(
    run: Run, alice_tokens: TokenSet, attacker_issuer: AttackerIssuer, verdict: Verdict
) -> None:
    """A token signed by an issuer the server does not list gets 401 (RFC 9068 §4)."""
    claims = _alice_claims(alice_tokens)
    _require_alice_works(run, alice_tokens, verdict)
    before = len(attacker_issuer.fetches)
    forged = attacker_issuer.key.sign(_fresh(claims, iss=attacker_issuer.issuer))
    run.redactor.remember(forged)
    _expect_refused(
        run,
        verdict,
        "RS-WRONG-ISSUER-401",
        forged,
        f"a token from the untrusted issuer {attacker_issuer.issuer}",
    )
    fetched = attacker_issuer.fetches[before:]
    verdict.note(
        f"the server fetched from the untrusted issuer: {', '.join(fetched)}"
        if fetched
        else "the server made no request to the untrusted issuer"
    )


@pytest.mark.requirement("RS-ALG-NONE-401")
def test_unsigned_alg_none_tokens_get_401(
    run: Run, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """alice's token re-headed alg none (any case), no signature, gets 401 (RFC 8725 §3.1)."""
    _alice_claims(alice_tokens)
    _require_alice_works(run, alice_tokens, verdict)
    for alg in ("none", "None", "NONE"):
        _expect_refused(
            run,
            verdict,
            "RS-ALG-NONE-401",
            jwt.unsigned(alice_tokens.access_token, alg),
            f"alice's token with alg {alg!r} and no signature",
        )


@pytest.mark.requirement("RS-TAMPERED-TOKEN-401")
def test_tampered_tokens_get_401(run: Run, alice_tokens: TokenSet, verdict: Verdict) -> None:
    """alice's token with a changed claim or a flipped signature bit gets 401 (RFC 9068 §4)."""
    _require_alice_works(run, alice_tokens, verdict)
    token = alice_tokens.access_token
    if not jwt.is_jwt(token):  # opaque: change one character
        middle = len(token) // 2
        changed = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
        _expect_refused(
            run,
            verdict,
            "RS-TAMPERED-TOKEN-401",
            changed,
            "alice's opaque token with one character changed",
        )
        return
    claims = jwt.claims(token)
    variants = [
        (
            jwt.with_claims(token, sub=f"{claims.get('sub')}-admin"),
            "alice's token with `sub` changed, original signature",
        )
    ]
    privileged = run.config.privileged_scope
    if privileged:
        scope = f"{claims.get('scope') or ''} {privileged}".strip()
        variants.append(
            (
                jwt.with_claims(token, scope=scope),
                f"alice's token with {privileged} added to `scope`, original signature",
            )
        )
    variants.append((jwt.flip_signature_bit(token), "alice's token with one signature bit flipped"))
    alg = jwt.header(token).get("alg")
    variants.append(
        (jwt.unsigned(token, str(alg)), f"alice's token with its signature stripped (alg {alg!r})")
    )
    for forged, what in variants:
        _expect_refused(run, verdict, "RS-TAMPERED-TOKEN-401", forged, what)


@pytest.mark.requirement("RS-TYP-AT-JWT")
def test_jwt_not_typed_at_jwt_gets_401(
    run: Run, alice_tokens: TokenSet, token_signer: Callable[..., str], verdict: Verdict
) -> None:
    """A JWT with typ "JWT" instead of at+jwt gets 401 (RFC 9068 §2.1, §4)."""
    claims = _fresh(_alice_claims(alice_tokens))
    control = token_signer(claims, typ="at+jwt")
    _require_accepted(run, control, verdict, "alice's claims signed with typ at+jwt")
    mistyped = token_signer({**claims, "jti": uuid.uuid4().hex}, typ="JWT")
    _expect_refused(run, verdict, "RS-TYP-AT-JWT", mistyped, "alice's claims signed with typ JWT")


# --- signatures and keys (RFC 8725 §2.1, §3.1, §3.8, §3.10; RFC 7515 §4.1) -----------------


@pytest.mark.requirement("RS-ALG-CONFUSION-401")
def test_hmac_keyed_with_public_key_gets_401(
    run: Run,
    alice_tokens: TokenSet,
    authorization_server: AuthorizationServer,
    verdict: Verdict,
) -> None:
    """alice's claims as HS256, the MAC keyed with the AS public key, get 401 (RFC 8725 §2.1)."""
    claims = _alice_claims(alice_tokens)
    _require_alice_works(run, alice_tokens, verdict)
    kid = jwt.header(alice_tokens.access_token).get("kid")
    jwk = _published_key(run, authorization_server, kid, verdict)
    header = {"alg": "HS256", "typ": "at+jwt", **({"kid": kid} if kid else {})}
    for form, secret in _hmac_secrets(jwk):
        _expect_forgery_refused(
            run,
            verdict,
            "RS-ALG-CONFUSION-401",
            _hmac_signed(header, _fresh(claims), secret),
            f"alice's claims as HS256 keyed with the AS public key ({form})",
        )


@pytest.mark.requirement("RS-UNKNOWN-KID-401")
def test_token_under_unknown_kid_gets_401(
    run: Run, alice_tokens: TokenSet, attacker_issuer: AttackerIssuer, verdict: Verdict
) -> None:
    """alice's claims signed by another key under a kid the AS does not publish get 401
    (RFC 9068 §4: the keys provided by the authorization server)."""
    claims = _alice_claims(alice_tokens)
    _require_alice_works(run, alice_tokens, verdict)
    kid = f"unknown-{uuid.uuid4().hex[:12]}"
    _expect_forgery_refused(
        run,
        verdict,
        "RS-UNKNOWN-KID-401",
        attacker_issuer.key.sign(_fresh(claims), kid=kid),
        f"alice's claims signed by an attacker key under the unknown kid {kid!r}",
    )


@pytest.mark.requirement("RS-ISSUER-KEY-CONFUSION-401")
def test_keys_offered_by_token_header_are_not_trusted(
    run: Run, alice_tokens: TokenSet, attacker_issuer: AttackerIssuer, verdict: Verdict
) -> None:
    """alice's claims signed by an attacker key that the header offers as `jwk`, `jku` or `x5u`
    get 401, and the URLs should not be fetched (RFC 8725 §3.8, §3.10; RFC 7515 §4.1.2-4.1.5)."""
    rid = "RS-ISSUER-KEY-CONFUSION-401"
    claims = _alice_claims(alice_tokens)
    _require_alice_works(run, alice_tokens, verdict)
    # The attacker's key goes by the issuer's own kid: a validator that prefers the header's
    # key finds it, and one that looks the kid up in the issuer's set finds the wrong key.
    kid = jwt.header(alice_tokens.access_token).get("kid")
    jwk = {**attacker_issuer.key.jwks()["keys"][0], "kid": kid}
    tag = uuid.uuid4().hex[:12]
    jku = attacker_issuer.serve(
        f"/keys/{tag}.json", json.dumps({"keys": [jwk]}).encode(), "application/json"
    )
    x5u = attacker_issuer.serve(
        f"/certs/{tag}.pem",
        _self_signed_certificate(attacker_issuer.key.private_key),
        "application/pem-certificate-chain",
    )
    before = len(attacker_issuer.fetches)
    for what, offered in (
        ("an embedded jwk header with the attacker's public key", {"jwk": jwk}),
        (f"a jku header naming {jku}", {"jku": jku}),
        (f"an x5u header naming {x5u}", {"x5u": x5u}),
    ):
        _expect_forgery_refused(
            run,
            verdict,
            rid,
            attacker_issuer.key.sign(_fresh(claims), kid=kid, **offered),
            f"alice's claims signed by an attacker key, with {what}",
        )
    for url in (u for u in attacker_issuer.fetches[before:] if u.startswith((jku, x5u))):
        verdict.tolerate(
            rid,
            f"the server fetched {url}, a URL only the token's header named "
            f"(RFC 8725 §3.10: server-side request forgery)",
        )


# --- time, audience and kind of token (RFC 7519 §4.1, RFC 9068 §4, RFC 8725 §3.9-3.12) -----


@pytest.mark.requirement("RS-CLOCK-SKEW-BOUNDED")
def test_clock_skew_is_bounded(
    run: Run, alice_tokens: TokenSet, token_signer: Callable[..., str], verdict: Verdict
) -> None:
    """Tokens expired, or not yet valid, by more than the tolerated skew get 401 (RFC 9068 §4:
    leeway "usually no more than a few minutes"; RFC 7519 §4.1.4-4.1.6)."""
    rid = "RS-CLOCK-SKEW-BOUNDED"
    claims = _alice_claims(alice_tokens)
    _require_resigned_works(run, claims, token_signer, verdict)
    skew = run.config.lifetimes.clock_skew
    beyond, now = skew + _SKEW_MARGIN, int(time.time())
    for what, changes in (
        (f"a token that expired {beyond} s ago", {"iat": now - beyond - 300, "exp": now - beyond}),
        (
            f"a token not valid before {beyond} s from now",
            {"nbf": now + beyond, "exp": now + beyond + 300},
        ),
    ):
        token = token_signer(_fresh(claims, **changes), typ="at+jwt")
        _expect_refused(
            run, verdict, rid, token, f"{what} (skew allowed: {skew} s)", invalid_token=True
        )
    # RFC 7519 §4.1.6 sets no rule for iat: refusing a token issued in the future is the
    # strict reading, so accepting one is only tolerated.
    what = f"a token issued (iat) {_FAR_FUTURE} s from now"
    response = _present(
        run, token_signer(_fresh(claims, iat=now + _FAR_FUTURE), typ="at+jwt"), what
    )
    if response.status_code != 401:
        verdict.tolerate(rid, f"{what} got {_describe(response)}, not 401")


@pytest.mark.requirement("RS-AUD-ARRAY-401")
def test_audience_array_without_mcp_server_gets_401(
    run: Run, alice_tokens: TokenSet, token_signer: Callable[..., str], verdict: Verdict
) -> None:
    """A token whose aud array lacks the MCP server, or is empty, gets 401 (RFC 9068 §4,
    RFC 8725 §3.9, MCP "Access Token Privilege Restriction")."""
    claims = _alice_claims(alice_tokens)
    _require_resigned_works(run, claims, token_signer, verdict)
    other = run.config.second_resource or _OTHER_RESOURCE
    for audience in ([other], [other, f"{_OTHER_RESOURCE}/v2"], []):
        _expect_refused(
            run,
            verdict,
            "RS-AUD-ARRAY-401",
            token_signer(_fresh(claims, aud=audience), typ="at+jwt"),
            f"alice's claims with aud {audience!r}",
            invalid_token=True,
        )
    # RFC 9068 §4 asks only that aud contain the server: an array naming it and another
    # resource is conformant either way, so it is reported, not judged.
    shared = [run.mcp_url, other]
    response = _present(
        run, token_signer(_fresh(claims, aud=shared), typ="at+jwt"), f"aud {shared!r}"
    )
    verdict.note(f"a token with aud {shared!r} got {_describe(response)}")


@pytest.mark.requirement("RS-ID-TOKEN-REFUSED")
def test_id_token_of_the_as_gets_401(
    run: Run,
    alice_tokens: TokenSet,
    clients: Clients,
    token_signer: Callable[..., str],
    verdict: Verdict,
) -> None:
    """An ID token for alice, signed by the AS key, gets 401 (RFC 9068 §4, RFC 8725 §3.12)."""
    claims = _alice_claims(alice_tokens)
    _require_resigned_works(run, claims, token_signer, verdict)
    client_id = str(claims.get("client_id") or clients.public.client_id)
    now = int(time.time())
    id_token = {
        "iss": claims.get("iss"),
        "sub": claims.get("sub"),
        "aud": client_id,
        "azp": client_id,
        "nonce": uuid.uuid4().hex,
        "auth_time": claims.get("auth_time", now),
        "iat": now,
        "exp": now + 300,
    }
    for typ in ("JWT", None):
        _expect_refused(
            run,
            verdict,
            "RS-ID-TOKEN-REFUSED",
            token_signer(id_token, typ=typ),
            f"an ID token for alice (aud {client_id!r}, typ {typ!r}) signed by the AS",
            invalid_token=True,
        )


@pytest.mark.requirement("RS-REJECT-FOREIGN-TOKEN")
def test_token_for_downstream_service_gets_401(
    run: Run, alice_tokens: TokenSet, token_signer: Callable[..., str], verdict: Verdict
) -> None:
    """alice's claims addressed to a downstream service the MCP server calls get 401 (MCP
    "Token Handling": accept no other tokens; Security Best Practices "Token Passthrough")."""
    claims = _alice_claims(alice_tokens)
    if not run.config.downstream:
        pytest.skip("no downstream services configured ([[downstream]])")
    _require_resigned_works(run, claims, token_signer, verdict)
    for service in run.config.downstream:
        _expect_refused(
            run,
            verdict,
            "RS-REJECT-FOREIGN-TOKEN",
            token_signer(_fresh(claims, aud=service.resource), typ="at+jwt"),
            f"alice's claims for {service.name} (aud {service.resource})",
            invalid_token=True,
        )
