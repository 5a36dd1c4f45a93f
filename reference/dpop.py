"""DPoP proof validation (RFC 9449 §4.3) for the reference authorization server and MCP server.

`validate` runs the receiver's checks in the order of §4.3 and raises `InvalidProof` with the
error code to send (`invalid_dpop_proof`, or `use_dpop_nonce` for §8/§9 nonce failures).
`Rules` lets a defect switch turn one check off, so each defect breaks exactly one rule.
`JtiCache` is the §11.1 replay cache (an atomic check-and-add) and `NonceSource` the §8
server-provided nonce. The reference deliberately shares nothing with the suite.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt

ALGORITHMS = ("ES256", "RS256", "PS256")
"""Proof algorithms accepted (RFC 9449 §5.1 `dpop_signing_alg_values_supported`): asymmetric."""

PROOF_TYP = "dpop+jwt"
IAT_WINDOW = 300
"""Seconds either side of now a proof's `iat` may be (MCP DPoP extension: +-5 minutes)."""

_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class InvalidProof(Exception):
    """The proof must be refused; `error` is the code for the response (RFC 9449 §5, §7.1)."""

    def __init__(self, description: str, error: str = "invalid_dpop_proof") -> None:
        super().__init__(description)
        self.description = description
        self.error = error


@dataclass(frozen=True)
class Rules:
    """Which §4.3 checks run. Every field is on in a conformant deployment; a defect switch
    turns exactly one off."""

    single_header: bool = True  # §4.3 (1)
    typ: bool = True  # §4.3 (4)
    alg: bool = True  # §4.3 (5)
    signature: bool = True  # §4.3 (6)
    public_key_only: bool = True  # §4.3 (7)
    jwk_object: bool = True  # §4.3 (5): the jwk header is a JWK, i.e. a JSON object
    required_claims: bool = True  # §4.3 (3)
    htm: bool = True  # §4.3 (8)
    htu: bool = True  # §4.3 (9)
    iat: bool = True  # §4.3 (11)
    ath: bool = True  # §4.3 (12), resource servers only
    key_binding: bool = True  # §7.1: the proof key is the token's `cnf.jkt`


@dataclass(frozen=True)
class Proof:
    jkt: str  # RFC 7638 thumbprint of the proof key
    jti: str
    htu: str
    iat: int
    nonce: str | None
    claims: dict[str, Any]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, without whitespace."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(name not in jwk for name in members):
        raise InvalidProof("the jwk is not a supported public key")
    canonical = json.dumps({n: jwk[n] for n in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def access_token_hash(token: str) -> str:
    """RFC 9449 §4.2 `ath`."""
    return b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


def normalise_uri(url: str) -> str:
    """RFC 9449 §4.3 (9): compare `htu` without query and fragment, after RFC 3986 §6.2.2
    syntax-based and §6.2.3 scheme-based normalisation."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    default = port is None or (scheme, port) in (("http", 80), ("https", 443))
    netloc = host if default else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def validate(
    values: list[str],
    *,
    method: str,
    url: str,
    rules: Rules = Rules(),
    access_token: str | None = None,
    jkt: str | None = None,
    window: int = IAT_WINDOW,
) -> Proof:
    """Check the `DPoP` header values of one request. `access_token` (at a resource server)
    makes `ath` required; `jkt` is the key the presented token is bound to."""
    if not values:
        raise InvalidProof("a DPoP proof is required")
    if len(values) > 1 and rules.single_header:
        raise InvalidProof("more than one DPoP header")
    proof = values[0].strip()
    try:
        header = jwt.get_unverified_header(proof)
        unverified = jwt.decode(proof, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidProof("the DPoP proof is not a well-formed JWT") from exc
    if rules.typ and header.get("typ") != PROOF_TYP:
        raise InvalidProof("the proof's typ is not dpop+jwt")
    alg = header.get("alg")
    if rules.alg and alg not in ALGORITHMS:
        raise InvalidProof("the proof's alg is not an accepted asymmetric algorithm")
    key = header.get("jwk")
    if key is None or (rules.jwk_object and not isinstance(key, dict)):
        raise InvalidProof("the proof carries no jwk")
    if rules.public_key_only and _PRIVATE_MEMBERS & key.keys():
        raise InvalidProof("the proof's jwk holds private key material")
    claims = unverified
    if rules.signature:
        try:
            public = jwt.PyJWK({n: v for n, v in key.items() if n not in _PRIVATE_MEMBERS}, alg)
            claims = jwt.decode(
                proof,
                public.key,
                algorithms=list(ALGORITHMS),
                options={"verify_exp": False, "verify_iat": False, "verify_aud": False},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidProof("the proof signature does not verify with its jwk") from exc
    if rules.required_claims:
        missing = [n for n in ("jti", "htm", "htu", "iat") if n not in claims]
        if missing:
            raise InvalidProof(f"the proof lacks {', '.join(missing)}")
    if rules.htm and claims.get("htm") != method:
        raise InvalidProof("htm does not match the request method")
    htu = claims.get("htu")
    if rules.htu and (not isinstance(htu, str) or normalise_uri(htu) != normalise_uri(url)):
        raise InvalidProof("htu does not match the request URI")
    iat = claims.get("iat")
    iat_value = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None
    if rules.iat and (iat_value is None or abs(time.time() - iat_value) > window):
        raise InvalidProof("the proof's iat is outside the accepted window")
    if (
        access_token is not None
        and rules.ath
        and claims.get("ath") != access_token_hash(access_token)
    ):
        raise InvalidProof("ath does not match the access token")
    key_jkt = thumbprint(key)
    if jkt is not None and rules.key_binding and key_jkt != jkt:
        raise InvalidProof("the proof key is not the key the token is bound to")
    return Proof(
        jkt=key_jkt,
        jti=str(claims.get("jti", "")),
        htu=str(htu),
        iat=int(iat_value or 0),
        nonce=claims.get("nonce") if isinstance(claims.get("nonce"), str) else None,
        claims=dict(claims),
    )


class JtiCache:
    """RFC 9449 §11.1: the `jti` values seen per URI, kept for the proof validity window.

    `first_use` checks and records in one step with no await in between, so concurrent
    requests on the event loop cannot both pass. `racy` (a defect switch) awaits a simulated
    shared-cache round trip between the check and the record: the check-then-act bug.
    """

    def __init__(self, window: int = IAT_WINDOW, max_entries: int = 100_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._seen: dict[tuple[str, str], float] = {}

    def _prune(self) -> None:
        cutoff = time.time() - 2 * self.window
        if len(self._seen) > self.max_entries or any(t < cutoff for t in self._seen.values()):
            self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}

    async def first_use(self, proof: Proof, *, racy: bool = False) -> bool:
        key = (normalise_uri(proof.htu), proof.jti)
        self._prune()
        if key in self._seen:
            return False
        if racy:
            await asyncio.sleep(0.05)
        self._seen[key] = time.time()
        return True


class NonceSource:
    """RFC 9449 §8: server-provided nonces. A fresh random value every `period` seconds;
    the current and the previous one are accepted, so a nonce handed out just before a
    rotation still works once."""

    def __init__(self, period: int = 60) -> None:
        self.period = period
        self._epoch = -1
        self._current = ""
        self._previous = ""

    def _rotate(self) -> None:
        epoch = int(time.time()) // self.period
        if epoch != self._epoch:
            self._previous = self._current if epoch == self._epoch + 1 else ""
            self._current = secrets.token_urlsafe(24)
            self._epoch = epoch

    def current(self) -> str:
        self._rotate()
        return self._current

    def valid(self, nonce: str | None) -> bool:
        self._rotate()
        return nonce is not None and nonce in {self._current, self._previous} - {""}
