"""The access-token signing key (generated at startup) and its public JWK Set."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt.utils import base64url_encode

ALGORITHM = "RS256"


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair with its key id."""

    private_key: rsa.RSAPrivateKey
    kid: str

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK only: no private members (`d`, `p`, `q`, ...)."""
        jwk = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {
            "kty": "RSA",
            "n": jwk["n"],
            "e": jwk["e"],
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }


def _thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256 over the canonical required members), used as `kid`."""
    jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64url_encode(digest).decode()


def generate_signing_key() -> SigningKey:
    """A fresh 2048-bit RSA key for RS256."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(private_key, _thumbprint(private_key.public_key()))


def jwks(key: SigningKey) -> dict[str, Any]:
    """The JWK Set published at `jwks_uri` (RFC 8414 §2, RFC 7517 §5)."""
    return {"keys": [key.public_jwk()]}
