"""How the MCP server validates the access tokens it is given, and refuses the bad ones.

MCP 2025-11-25 authorization "Token Handling" / "Access Token Validation" (only tokens issued
for this server are accepted), RFC 9068 §4 (JWT access token validation: typ, issuer,
audience, signature, expiry), RFC 8725 §3.1 (no `alg: none`), RFC 8707 §2 (audience-bound
tokens) and RFC 7519 §4.1.4-4.1.5 (`exp`, `nbf`). Every forged token is derived from alice's
real token, changing one thing; her unchanged token must work first, so an outage is an error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conformance import mcp
from conformance.fixtures import AttackerIssuer, Clients, Run
from conformance.flows import Flows, TokenSet
from conformance.oauth import jwt
from conformance.oauth.challenge import bearer_challenge
from conformance.verdict import Verdict

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


def _expect_refused(
    run: Run,
    verdict: Verdict,
    requirement: str,
    token: str,
    what: str,
    *,
    invalid_token: bool = False,
) -> None:
    """`token` must get 401 (and error="invalid_token" when asked)."""
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


# --- checks --------------------------------------------------------------------------------


@pytest.mark.requirement("RS-EXPIRED-TOKEN-401")
def test_tokens_outside_validity_window_get_401(
    run: Run, alice_tokens: TokenSet, token_signer: Callable[..., str], verdict: Verdict
) -> None:
    """Tokens past exp or before nbf get 401 invalid_token (RFC 9068 §4, RFC 7519 §4.1.4-5)."""
    claims = _alice_claims(alice_tokens)
    now = int(time.time())
    control = token_signer(_fresh(claims), typ="at+jwt")
    _require_accepted(run, control, verdict, "alice's claims re-signed with a fresh exp")
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
