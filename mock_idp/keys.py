"""The IdP's signing key: generated fresh per app, published as a JWK set, used via pyjwt."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ALGORITHM = "RS256"
_PUBLIC_RSA_MEMBERS = ("kty", "n", "e")


@dataclass(frozen=True)
class SigningKey:
    """An RSA private key plus its key ID."""

    kid: str
    private_key: rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK (RFC 7517 section 4), with only public RSA members."""
        full = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk = {name: full[name] for name in _PUBLIC_RSA_MEMBERS}
        jwk.update(kid=self.kid, use="sig", alg=ALGORITHM)
        return jwk

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        """A compact JWS over `claims`, header carrying `kid` and `typ`."""
        return jwt.encode(
            claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": typ}
        )


def generate_signing_key() -> SigningKey:
    """A new 2048-bit RSA key whose `kid` is its RFC 7638 JWK thumbprint."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(kid=_thumbprint(private_key.public_key()), private_key=private_key)


def jwks(*keys: SigningKey) -> dict[str, Any]:
    """A JWK Set document (RFC 7517 section 5) holding the public keys."""
    return {"keys": [key.public_jwk() for key in keys]}


def _thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 section 3: SHA-256 over the required members, sorted, no whitespace."""
    full = json.loads(RSAAlgorithm.to_jwk(public_key))
    canonical = json.dumps(
        {name: full[name] for name in sorted(_PUBLIC_RSA_MEMBERS)}, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
