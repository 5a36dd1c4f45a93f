"""DPoP (RFC 9449) at a mock service: proofs judged, recorded, and required where configured.

A service with `require_dpop` binds the tokens its own AS issues to the key of the proof sent
with the token request (§5, `cnf.jkt` per §6.1) and accepts at its API only
`Authorization: DPoP` with a proof for that very request (§7.1: `htm`, `htu`, `ath`, the
token's key). Any service judges and records a `DPoP` header it receives, so the suite can see
what the MCP server sent (and whether it relayed its client's proof).

Proofs are checked with the suite's `conformance.oauth.dpop.verify_proof`. A reused `jti` is
recorded, never refused: replay caches are optional for servers (§11.1), and the suite judges
the sender's `jti` uniqueness from the records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from conformance.oauth.dpop import ProofError, verify_proof

ALGORITHMS = ("ES256", "RS256", "PS256")
"""Proof algorithms accepted (§5.1 `dpop_signing_alg_values_supported`): asymmetric only."""

CHALLENGE_ALGS = " ".join(ALGORITHMS)
JTI_MEMORY_SECONDS = 600.0
MAX_JTIS = 10_000


@dataclass
class ProofCheck:
    """What a `DPoP` header held and what the service made of it.

    `verdict` is "valid", a reason the proof fails (RFC 9449 §4.3), or None (no proof).
    """

    proof: str | None
    header: dict[str, Any] | None = None
    claims: dict[str, Any] | None = None
    verdict: str | None = None
    jkt: str | None = None
    jti_reused: bool | None = None

    @property
    def valid(self) -> bool:
        return self.verdict == "valid"

    def note(self, record: dict[str, Any]) -> None:
        """Put the decoded proof and the verdict on a record."""
        record.update(
            dpop_header=self.header,
            dpop_claims=self.claims,
            dpop_verdict=self.verdict,
            dpop_jti_reused=self.jti_reused,
        )


def _decoded(proof: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    try:
        return (
            jwt.get_unverified_header(proof),
            jwt.decode(proof, options={"verify_signature": False}),
        )
    except jwt.PyJWTError:
        return None, None


class ProofLog:
    """The proof `jti`s a service has seen lately (recorded as reuse, never refused)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def reused(self, jti: Any) -> bool:
        now = time.time()
        if len(self._seen) >= MAX_JTIS or any(
            t < now - JTI_MEMORY_SECONDS for t in self._seen.values()
        ):
            cutoff = now - JTI_MEMORY_SECONDS
            self._seen = {j: t for j, t in self._seen.items() if t >= cutoff}
        key = str(jti)
        seen = key in self._seen
        if len(self._seen) < MAX_JTIS:
            self._seen[key] = now
        return seen


def check_proof(
    values: list[str],
    log: ProofLog,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    jkt: str | None = None,
) -> ProofCheck:
    """Judge the `DPoP` header values of one request (§4.3; §7.1 with `access_token`/`jkt`)."""
    if not values:
        return ProofCheck(None)
    proof = values[0].strip()
    header, claims = _decoded(proof)
    check = ProofCheck(proof, header, claims)
    if claims is not None and "jti" in claims:
        check.jti_reused = log.reused(claims["jti"])
    if len(values) > 1:
        check.verdict = "more than one DPoP header"  # §4.3 item 1
        return check
    if header is not None and header.get("alg") not in ALGORITHMS:
        check.verdict = f"alg {header.get('alg')!r} is not one of {CHALLENGE_ALGS}"
        return check
    try:
        verified = verify_proof(proof, method=method, url=url, access_token=access_token, jkt=jkt)
    except (ProofError, UnicodeEncodeError) as exc:  # a non-ASCII token has no `ath`
        check.verdict = str(exc)
        return check
    check.verdict, check.jkt = "valid", verified.jkt
    return check


def bound_key(claims: dict[str, Any] | None) -> str | None:
    """The `cnf.jkt` an access token is bound to (RFC 9449 §6.1), if any."""
    cnf = (claims or {}).get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) and jkt else None
