"""DPoP (RFC 9449): the suite's own proofs, and the checks a receiver makes on a proof.

`DPoPKey` builds proofs (§4.2) the way a conforming client would, and, for negative checks,
the malformed variants a server must refuse (wrong `typ`, `alg: none`, HS256 keyed with the
public JWK, a private `jwk`, a proof signed by another key). `verify_proof` applies the
receiver's checks of §4.3 and is what the bundled mock SaaS uses to judge the MCP server's
proofs. Signing and verification are PyJWT's; only the RFC 7638 thumbprint (a hash over a
canonical JSON object) and the RFC 9449 `ath` hash are computed here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conformance.oauth.jwt import b64url

PROOF_TYPE = "dpop+jwt"
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# RFC 7638 §3.2: the members that make up the thumbprint input, per key type.
_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 JWK thumbprint, base64url-encoded (RFC 9449 §6.1 `jkt`)."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise ValueError(f"no thumbprint members for key type {jwk.get('kty')!r}")
    canonical = json.dumps(
        {name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the token's ASCII bytes."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def normalise_uri(url: str) -> str:
    """The `htu` comparison form (RFC 9449 §4.3 item 9, RFC 3986 §6.2.2-6.2.3): scheme and
    host lower-cased, default port dropped, empty path as `/`, no query or fragment."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = (
        host
        if port is None or (scheme, port) in (("http", 80), ("https", 443))
        else f"{host}:{port}"
    )
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def public_jwk(key: Any) -> dict[str, Any]:
    """The public JWK of a cryptography private or public key."""
    public = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(public, rsa.RSAPublicKey):
        return dict(json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public)))
    return dict(json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public)))


def _private_jwk(key: Any) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        return dict(json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key)))
    return dict(json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key)))


class DPoPKey:
    """A client's proof-of-possession key pair (ES256 by default, RS256 as a variant)."""

    def __init__(self, alg: str = "ES256") -> None:
        if alg == "ES256":
            self.private_key: Any = ec.generate_private_key(ec.SECP256R1())
        elif alg in ("RS256", "PS256"):
            self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(f"unsupported proof algorithm {alg}")
        self.alg = alg
        self.jwk = public_jwk(self.private_key)
        self.jkt = thumbprint(self.jwk)

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: int | None = None,
        jti: str | None = None,
        typ: str | None = PROOF_TYPE,
        alg: str | None = None,
        jwk: Mapping[str, Any] | None = None,
        signer: DPoPKey | None = None,
        include_private_key: bool = False,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A proof for `method url` (RFC 9449 §4.2): `htu` without query or fragment, a
        fresh `jti`, `iat` now, `ath` when `access_token` is given, `nonce` when given.

        Negative variants: `typ=None` omits the type; `alg="none"` leaves the signature
        empty; `alg="HS256"` MACs with the public JWK's JSON as the secret; `jwk` shows
        another key in the header; `signer` signs with another key; `include_private_key`
        puts the private members in `jwk`; `claims` overrides claims (`None` removes one).
        """
        body: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": method,
            "htu": url.split("?", 1)[0].split("#", 1)[0],
            "iat": int(time.time()) if iat is None else iat,
        }
        if access_token is not None:
            body["ath"] = access_token_hash(access_token)
        if nonce is not None:
            body["nonce"] = nonce
        for name, value in (claims or {}).items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        shown = dict(jwk) if jwk is not None else dict(self.jwk)
        if include_private_key:
            shown = _private_jwk(self.private_key)
        algorithm = alg or (signer or self).alg
        # PyJWT drops a `typ` of None from the header (and adds "JWT" when none is given).
        header: dict[str, Any] = {"typ": typ, "alg": algorithm, "jwk": shown}
        if algorithm == "none" or algorithm.startswith("HS"):
            signing_input = (
                f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}"
            )
            if algorithm == "none":
                return f"{signing_input}."
            # The key-confusion attack (RFC 8725 §2.1): PyJWT rightly refuses a JWK as an HMAC
            # secret, so this deliberately invalid proof is MACed with the standard library.
            secret = json.dumps(shown, sort_keys=True).encode()
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{b64url(mac)}"
        key = (signer or self).private_key
        return jwt.encode(body, key, algorithm=algorithm, headers=header, sort_headers=False)


class ProofError(ValueError):
    """A proof a receiver must refuse; the message says which RFC 9449 §4.3 check failed."""


@dataclass(frozen=True)
class VerifiedProof:
    header: dict[str, Any]
    claims: dict[str, Any]
    jkt: str


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    jkt: str | None = None,
    window: int = 300,
    now: int | None = None,
) -> VerifiedProof:
    """RFC 9449 §4.3 checks on one proof: a JWT typed `dpop+jwt`, an asymmetric `alg`, a
    public `jwk` that verifies the signature, `jti`/`htm`/`htu`/`iat` present, `htm` and `htu`
    matching the request, `iat` within `window` seconds, and, at a resource, `ath` matching
    `access_token` and the key matching the token's `jkt` (§7.1). Replay is the caller's."""
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError as exc:
        raise ProofError(f"not a JWS: {exc}") from exc
    if header.get("typ") != PROOF_TYPE:
        raise ProofError(f"typ is {header.get('typ')!r}, not {PROOF_TYPE}")
    alg = header.get("alg")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise ProofError(f"alg {alg!r} is not an asymmetric algorithm")
    key = header.get("jwk")
    if not isinstance(key, dict):
        raise ProofError("no jwk header")
    if _PRIVATE_MEMBERS & key.keys():
        raise ProofError("the jwk header carries private key material")
    try:
        verifying_key = jwt.PyJWK(key, algorithm=alg).key
        claims = jwt.decode(
            proof,
            verifying_key,
            algorithms=[alg],
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise ProofError(f"the signature does not verify with the jwk: {exc}") from exc
    for name in ("jti", "htm", "htu", "iat"):
        if name not in claims:
            raise ProofError(f"the proof has no {name}")
    if claims["htm"] != method:
        raise ProofError(f"htm {claims['htm']!r} is not {method}")
    if not isinstance(claims["htu"], str) or normalise_uri(claims["htu"]) != normalise_uri(url):
        raise ProofError(f"htu {claims['htu']!r} is not {url}")
    current = int(time.time()) if now is None else now
    if not isinstance(claims["iat"], int | float) or abs(current - claims["iat"]) > window:
        raise ProofError(f"iat {claims['iat']!r} is outside +-{window} s")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise ProofError("ath does not match the access token")
    key_thumbprint = thumbprint(key)
    if jkt is not None and key_thumbprint != jkt:
        raise ProofError("the proof key is not the key the token is bound to")
    return VerifiedProof(header, claims, key_thumbprint)
