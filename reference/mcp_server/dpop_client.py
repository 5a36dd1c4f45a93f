"""The MCP server as a DPoP client of downstream services (RFC 9449 §4, §5, §7.1).

The MCP server proves possession of a key of its own, never its client's: it is a separate
OAuth client at the downstream service. One key per server process (ES256); each proof is a
fresh JWT for exactly one request: a new `jti`, `iat` now, `htm` and `htu` of that request and,
when a token goes with it, `ath` over that token (§4.2). Built with PyJWT and cryptography
only (the thumbprint and `ath` come from `reference.dpop`); the reference shares nothing with
the suite.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from reference.dpop import PROOF_TYP, access_token_hash, thumbprint

ALGORITHM = "ES256"


def target_uri(url: str) -> str:
    """§4.2 `htu`: the request URI without query and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class DPoPSigner:
    """The MCP server's proof-of-possession key and the proofs it signs."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        self.jwk: dict[str, Any] = {n: public[n] for n in ("kty", "crv", "x", "y")}
        self.jkt = thumbprint(self.jwk)

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A proof for one `method url` request, bound to `access_token` when given."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": target_uri(url),
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        headers = {"typ": PROOF_TYP, "alg": ALGORITHM, "jwk": self.jwk}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers=headers)
