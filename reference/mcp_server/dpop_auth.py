"""DPoP at the MCP server: the `DPoP` authentication scheme of RFC 9449 §7.

The MCP DPoP extension (ext-auth `dpop-extension`, SEP-1932, "MCP Server Validation") has the
MCP server validate every proof by RFC 9449 §4.3 with an `iat` window of +-5 minutes and refuse
any failure with 401 and a `DPoP` challenge (§7.1). This server accepts both schemes:

* `Authorization: DPoP <token>` needs a DPoP-bound token (`cnf.jkt`, §6.1) and exactly one
  valid proof whose key is that token's key and whose `ath` is the token's hash (§7.1). A
  DPoP scheme carrying an unbound token is refused: §7.1 defines the scheme for DPoP-bound
  tokens only, and a proof would bind nothing (the strict reading).
* `Authorization: Bearer <token>` is kept for unbound tokens; a DPoP-bound token presented
  as Bearer is refused, with or without a proof (§7.2: no downgrade).

Each server keeps a `jti` cache (§11.1), so a replayed proof is refused too. Defect switches
turn single checks off (`rules_for`), each breaking exactly one requirement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reference.dpop import ALGORITHMS, InvalidProof, JtiCache, Rules, validate
from reference.mcp_server.token_validation import AccessToken
from reference.settings import ReferenceSettings

BEARER = "bearer"
DPOP = "dpop"
SCHEMES = (BEARER, DPOP)

ALGS_PARAM = " ".join(ALGORITHMS)
"""RFC 9449 §7.1 `algs`: the proof algorithms this server accepts, space-delimited."""


@dataclass(frozen=True)
class Credentials:
    """What the `Authorization` header carried: the scheme (lower-case) and the token."""

    scheme: str
    token: str


class Refusal(Exception):
    """A DPoP failure: 401 with `error` in the `DPoP` challenge (RFC 9449 §7.1).

    `invalid_token` (the token and the scheme or key do not go together) or
    `invalid_dpop_proof` (the proof itself failed a §4.3 check)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def parse_authorization(value: str) -> Credentials | None:
    """`<scheme> <token>` for the Bearer and DPoP schemes; scheme names are case-insensitive
    (RFC 9110 §11.1). Any other scheme counts as no credentials."""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() not in SCHEMES:
        return None
    return Credentials(scheme.lower(), token.strip())


def rules_for(settings: ReferenceSettings) -> Rules:
    """The §4.3 checks this deployment runs: all of them, bar the defect switches."""
    malformed = settings.defect("rs-dpop-claims-unchecked")
    return Rules(
        single_header=not malformed,
        public_key_only=not malformed,
        required_claims=not malformed,
        typ=not settings.defect("rs-dpop-typ-unchecked"),
        htu=not settings.defect("rs-dpop-htu-unchecked"),
        iat=not settings.defect("rs-dpop-iat-unchecked"),
        ath=not settings.defect("rs-dpop-ath-ignored"),
        key_binding=not settings.defect("rs-dpop-key-binding-ignored"),
    )


def bound_key(token: AccessToken) -> str | None:
    """The thumbprint the token is bound to; `Refusal` when `cnf` names no usable `jkt`."""
    cnf = token.claims.get("cnf")
    if cnf is None:
        return None
    jkt = token.jkt
    if not isinstance(cnf, Mapping) or jkt is None:
        raise Refusal("invalid_token", "the token's cnf names no jkt this server can check")
    return jkt


class DPoPGuard:
    """Decides whether the credentials of one request may be used (RFC 9449 §7)."""

    def __init__(self, settings: ReferenceSettings) -> None:
        self.settings = settings
        self.rules = rules_for(settings)
        self.jti_cache = JtiCache()

    async def check(
        self, credentials: Credentials, token: AccessToken, proofs: list[str], method: str, url: str
    ) -> None:
        """Raise `Refusal` unless `token` may be used with this scheme and these proofs."""
        jkt = bound_key(token)
        if credentials.scheme == BEARER:
            if jkt is not None and not self.settings.defect("rs-dpop-bearer-downgrade"):
                raise Refusal(
                    "invalid_token",
                    "the access token is DPoP-bound: present it with the DPoP scheme and a proof",
                )
            return
        if jkt is None:
            raise Refusal("invalid_token", "the DPoP scheme needs a DPoP-bound access token")
        try:
            proof = validate(
                proofs,
                method=method,
                url=url,
                rules=self.rules,
                access_token=token.raw,
                jkt=jkt,
            )
        except InvalidProof as exc:
            raise Refusal(exc.error, exc.description) from exc
        if self.settings.defect("rs-dpop-jti-replay"):
            return
        racy = self.settings.defect("rs-dpop-jti-race")
        if not await self.jti_cache.first_use(proof, racy=racy):
            raise Refusal("invalid_dpop_proof", "the proof's jti has been used before")
