"""PKCE (RFC 7636): verifiers and S256 challenges."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass


def new_verifier() -> str:
    """A 43-character verifier with 256 bits of entropy (RFC 7636 §4.1)."""
    return secrets.token_urlsafe(32)


def s256(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str
    method: str = "S256"

    @classmethod
    def s256(cls) -> Pkce:
        verifier = new_verifier()
        return cls(verifier, s256(verifier))
