"""Reading and forging JWTs with PyJWT (the suite never hand-rolls JOSE)."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def is_jwt(token: str) -> bool:
    try:
        jwt.get_unverified_header(token)
        return token.count(".") == 2
    except jwt.PyJWTError:
        return False


def header(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def claims(token: str) -> dict[str, Any]:
    """The payload, unverified: for inspecting what a server issued, never for trusting it."""
    return jwt.decode(token, options={"verify_signature": False})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(token: str, alg: str = "none") -> str:
    """The same header (with `alg` replaced) and claims, and an empty signature (RFC 7519 §6)."""
    head = {**header(token), "alg": alg}
    return f"{b64url(json.dumps(head).encode())}.{token.split('.')[1]}."


def with_claims(token: str, **changes: Any) -> str:
    """The token with changed claims and its original signature (which no longer matches)."""
    head, _, signature = token.split(".")
    body = {**claims(token), **changes}
    return f"{head}.{b64url(json.dumps(body).encode())}.{signature}"


def flip_signature_bit(token: str) -> str:
    head, body, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{b64url(bytes(raw))}"


class SigningKey:
    """An RSA key the suite owns (an "attacker" key, or a key for an attacker issuer)."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def sign(self, payload: dict[str, Any], typ: str = "at+jwt", **headers: Any) -> str:
        return jwt.encode(
            payload,
            self.private_key,
            algorithm="RS256",
            headers={"typ": typ, "kid": self.kid, **headers},
        )

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}
