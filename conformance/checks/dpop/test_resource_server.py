"""DPoP at the MCP server: the `DPoP` scheme, the proof checks, replay and the challenges.

RFC 9449 §7 (a DPoP-bound token travels as `Authorization: DPoP` with a proof from its key,
§7.1, and is never taken as a Bearer token, §7.2), §4.3 (the receiver's proof checks, incl.
`ath` at a resource), §11.1 (replay) and §7.1 (the `DPoP` challenge and its `algs`); RFC 9728
§2 (`dpop_signing_alg_values_supported`); the MCP DPoP extension (ext-auth `dpop-extension`,
SEP-1932: full §4.3 validation with a +-5 minute `iat` window, 401 on every failure). Every
negative check starts from a known-good request (a fresh valid proof for alice's bound token)
and changes one thing. Also MCP 2026-07-28 "Refresh Tokens" (SEP-2207): `offline_access` is not
a resource scope.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from conformance import mcp
from conformance.discovery import Discovery
from conformance.dpop_flows import DPoPFlows, DPoPTokenSet, bound_tokens
from conformance.errors import PreconditionFailed
from conformance.fixtures import Clients, Run
from conformance.oauth import jwt
from conformance.oauth.challenge import Challenge, parse_www_authenticate
from conformance.oauth.dpop import ASYMMETRIC_ALGORITHMS, DPoPKey
from conformance.races import concurrently
from conformance.verdict import Verdict

ALGS_MEMBER = "dpop_signing_alg_values_supported"
CONCURRENT_USES = 5
NONCE = "use_dpop_nonce"

# --- the DPoP context ----------------------------------------------------------------------


def _advertised_algs(document: dict[str, Any] | None) -> Any:
    return (document or {}).get(ALGS_MEMBER)


@pytest.fixture
def dpop_offered(discovery: Discovery) -> None:
    """Skips the check unless the MCP server or its AS advertises DPoP (RFC 9728 §2, RFC 9449
    §5.1): `dpop_signing_alg_values_supported` in either metadata document."""
    prm = discovery.prm.document if discovery.prm else None
    server = discovery.authorization_server.metadata if discovery.authorization_server else None
    if _advertised_algs(prm) is None and _advertised_algs(server) is None:
        # A document that could not be discovered might have advertised it.
        Verdict.precondition(
            prm is not None and server is not None,
            "cannot tell whether DPoP is offered: " + "; ".join(discovery.problems),
        )
        pytest.skip(
            f"DPoP is not offered: neither the protected resource metadata nor the "
            f"authorization server metadata lists {ALGS_MEMBER}"
        )


@pytest.fixture
def bound(dpop_offered: None, alice_dpop_tokens: DPoPTokenSet) -> DPoPTokenSet:
    """Alice's DPoP-bound token set; a token not bound to its key is a lost precondition."""
    token = alice_dpop_tokens.access_token
    if jwt.is_jwt(token):
        cnf = jwt.claims(token).get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        is_bound = jkt == alice_dpop_tokens.key.jkt
        what = f"cnf.jkt {jkt!r}"
    else:
        is_bound = alice_dpop_tokens.token_type.lower() == "dpop"
        what = f"token_type {alice_dpop_tokens.token_type!r}"
    if not is_bound:
        raise PreconditionFailed(
            f"the token issued for a DPoP proof is not bound to the proof key ({what}; "
            f"see DPOP-AS-BOUND-TOKEN)"
        )
    return alice_dpop_tokens


def _send(
    run: Run,
    access_token: str,
    proofs: list[str],
    note: str,
    *,
    scheme: str = "DPoP",
) -> httpx.Response:
    """initialize with `Authorization: <scheme> <token>` and one `DPoP` header per proof."""
    return mcp.post(
        run.http,
        run.mcp_url,
        mcp.initialize(run.config.protocol_version),
        token=access_token,
        scheme=scheme,
        extra_headers=[("DPoP", proof) for proof in proofs],
        note=note,
    )


def _proof(
    run: Run, bound: DPoPTokenSet, *, method: str = "POST", url: str = "", **changes: Any
) -> str:
    """A valid proof for alice's bound token at the MCP endpoint (RFC 9449 §4.2, §7),
    changed as asked."""
    changes.setdefault("access_token", bound.access_token)
    return bound.key.proof(method, url or run.mcp_url, **changes)


def _require_no_nonce(response: httpx.Response, verdict: Verdict) -> None:
    """A server-provided nonce (RFC 9449 §9) is not something these checks send yet: the
    refusal of a proof without one is a lost precondition, not a finding."""
    challenge = _dpop_challenge(response)
    verdict.precondition(
        not (response.status_code == 401 and challenge and challenge.get("error") == NONCE),
        f"the MCP server demands a DPoP nonce ({NONCE}, RFC 9449 §9); the resource server "
        f"checks do not send server nonces",
    )


def _valid_request(run: Run, bound: DPoPTokenSet, verdict: Verdict, note: str) -> httpx.Response:
    """The DPoP scheme, alice's bound token and a fresh valid proof (RFC 9449 §7.1)."""
    response = _send(run, bound.access_token, [_proof(run, bound)], note)
    _require_no_nonce(response, verdict)
    return response


def _require_served(run: Run, bound: DPoPTokenSet, verdict: Verdict) -> None:
    """Known-good control: a fresh valid proof opens the door (else the check is an error)."""
    response = _valid_request(
        run, bound, verdict, "known-good: DPoP scheme, alice's bound token, a valid proof"
    )
    verdict.precondition(
        response.is_success,
        f"alice's DPoP-bound token with a valid proof got {mcp.describe(response)}",
    )


def _expect_refused(
    run: Run, bound: DPoPTokenSet, verdict: Verdict, requirement: str, proofs: list[str], what: str
) -> None:
    """The DPoP request with `proofs` must get 401 (RFC 9449 §7.1, MCP DPoP extension)."""
    response = _send(run, bound.access_token, proofs, f"DPoP scheme, {what}")
    verdict.expect(
        requirement,
        response.status_code == 401,
        f"alice's bound token with {what} got {mcp.describe(response)}"
        + (" (served)" if response.is_success else ", not 401"),
    )


def _dpop_challenge(response: httpx.Response) -> Challenge | None:
    return parse_www_authenticate(response.headers.get_list("www-authenticate")).scheme("DPoP")


def _symmetric_or_none(algs: list[Any]) -> list[Any]:
    """Members that are not asymmetric JWS algorithms (RFC 9449 §11.6: never `none` or MACs)."""
    return [alg for alg in algs if alg not in ASYMMETRIC_ALGORITHMS]


# --- metadata ------------------------------------------------------------------------------


@pytest.mark.requirement("DPOP-RS-METADATA-ALGS")
def test_metadata_lists_asymmetric_proof_algorithms(
    dpop_offered: None, discovery: Discovery, verdict: Verdict
) -> None:
    """PRM `dpop_signing_alg_values_supported`: asymmetric algorithms only (RFC 9728 §2)."""
    verdict.attach(discovery.exchanges)
    verdict.precondition(
        discovery.prm is not None and discovery.prm.document is not None,
        "no protected resource metadata could be discovered",
    )
    assert discovery.prm is not None and discovery.prm.document is not None
    algs = discovery.prm.document.get(ALGS_MEMBER)
    if not verdict.expect(
        "DPOP-RS-METADATA-ALGS",
        isinstance(algs, list) and algs and all(isinstance(a, str) for a in algs),
        f"the protected resource metadata has {ALGS_MEMBER}={algs!r}, not a non-empty "
        f"array of algorithm names, though DPoP is offered",
    ):
        return
    assert isinstance(algs, list)
    weak = _symmetric_or_none(algs)
    verdict.expect(
        "DPOP-RS-METADATA-ALGS", not weak, f"{ALGS_MEMBER} lists non-asymmetric algorithms {weak}"
    )


# --- the scheme and the binding ------------------------------------------------------------


@pytest.mark.requirement("DPOP-RS-SCHEME-AND-PROOF")
def test_bound_token_needs_proof_from_its_key(
    run: Run, bound: DPoPTokenSet, verdict: Verdict
) -> None:
    """Served with a valid proof; refused without one or with another key's (RFC 9449 §7.1)."""
    response = _valid_request(
        run, bound, verdict, "DPoP scheme, alice's bound token, a valid proof"
    )
    if not verdict.expect(
        "DPOP-RS-SCHEME-AND-PROOF",
        response.is_success,
        f"alice's DPoP-bound token with a valid proof from its key got {mcp.describe(response)}",
    ):
        return
    _expect_refused(run, bound, verdict, "DPOP-RS-SCHEME-AND-PROOF", [], "no DPoP header")
    other = DPoPKey(bound.key.alg)
    _expect_refused(
        run,
        bound,
        verdict,
        "DPOP-RS-SCHEME-AND-PROOF",
        [_proof(run, bound, signer=other, jwk=other.jwk)],
        "a valid proof (correct ath) from another key",
    )


@pytest.mark.requirement("DPOP-RS-ATH")
def test_proof_ath_must_hash_the_token(
    run: Run, bound: DPoPTokenSet, dpop_flows: DPoPFlows, clients: Clients, verdict: Verdict
) -> None:
    """`ath` is required at a resource and must hash the presented token (RFC 9449 §4.3)."""
    _require_served(run, bound, verdict)
    _expect_refused(
        run, bound, verdict, "DPOP-RS-ATH", [_proof(run, bound, access_token=None)], "no ath"
    )
    # Alice's second token, bound to the same key: only `ath` tells the two apart.
    second = bound_tokens(dpop_flows, clients.public, "alice", bound.key)
    _expect_refused(
        run,
        bound,
        verdict,
        "DPOP-RS-ATH",
        [_proof(run, bound, access_token=second.access_token)],
        "the ath of her other token (same key)",
    )


@pytest.mark.requirement("DPOP-RS-BEARER-DOWNGRADE")
def test_bound_token_refused_as_bearer(run: Run, bound: DPoPTokenSet, verdict: Verdict) -> None:
    """A DPoP-bound token sent as Bearer, with or without a proof, gets 401 (RFC 9449 §7.2)."""
    _require_served(run, bound, verdict)
    for proofs, what in (([], "no proof"), ([_proof(run, bound)], "a valid proof beside it")):
        response = _send(
            run,
            bound.access_token,
            proofs,
            f"Bearer scheme, alice's bound token, {what}",
            scheme="Bearer",
        )
        verdict.expect(
            "DPOP-RS-BEARER-DOWNGRADE",
            response.status_code == 401,
            f"'Authorization: Bearer <alice's DPoP-bound token>' with {what} got "
            f"{mcp.describe(response)}"
            + (": the binding was bypassed" if response.is_success else ""),
        )


# --- the proof checks (RFC 9449 §4.3) ------------------------------------------------------


@pytest.mark.requirement("DPOP-RS-PROOF-TYP-ALG")
def test_proof_type_and_algorithm_checked(run: Run, bound: DPoPTokenSet, verdict: Verdict) -> None:
    """Proofs typed other than dpop+jwt, or with alg none or HS256, get 401 (§4.3, §11.6)."""
    _require_served(run, bound, verdict)
    for changes, what in (
        ({"typ": "JWT"}, "a proof typed JWT"),
        ({"typ": None}, "a proof without typ"),
        ({"alg": "none"}, "an unsigned proof (alg none)"),
        ({"alg": "HS256"}, "a proof MACed with its public jwk (HS256)"),
    ):
        _expect_refused(
            run, bound, verdict, "DPOP-RS-PROOF-TYP-ALG", [_proof(run, bound, **changes)], what
        )


@pytest.mark.requirement("DPOP-RS-PROOF-WELLFORMED")
def test_proof_single_wellformed_and_complete(
    run: Run, bound: DPoPTokenSet, verdict: Verdict
) -> None:
    """One DPoP header, a JWT, a public jwk that verifies it, every claim (§4.3 (1)-(7))."""
    _require_served(run, bound, verdict)
    other = DPoPKey(bound.key.alg)
    cases: list[tuple[list[str], str]] = [
        ([_proof(run, bound), _proof(run, bound)], "two valid DPoP headers"),
        (["not-a-jwt"], "a DPoP header that is not a JWT"),
        ([_proof(run, bound, include_private_key=True)], "a jwk with its private key"),
        ([_proof(run, bound, signer=other)], "a signature by another key than the jwk's"),
    ]
    cases += [
        ([_proof(run, bound, claims={claim: None})], f"a proof without {claim}")
        for claim in ("jti", "htm", "htu", "iat")
    ]
    for proofs, what in cases:
        _expect_refused(run, bound, verdict, "DPOP-RS-PROOF-WELLFORMED", proofs, what)


@pytest.mark.requirement("DPOP-RS-PROOF-HTM-HTU")
def test_proof_method_and_uri_match_request(
    run: Run, bound: DPoPTokenSet, verdict: Verdict
) -> None:
    """`htm` and `htu` must name this request's method and URI (§4.3 (8), (9))."""
    _require_served(run, bound, verdict)
    elsewhere = run.mcp_url.rstrip("/") + "/elsewhere"
    for proof, what in (
        (_proof(run, bound, method="GET"), "htm GET on a POST"),
        (_proof(run, bound, url=elsewhere), f"htu {elsewhere}"),
    ):
        _expect_refused(run, bound, verdict, "DPOP-RS-PROOF-HTM-HTU", [proof], what)


@pytest.mark.requirement("DPOP-RS-PROOF-IAT")
def test_proof_iat_within_five_minutes(run: Run, bound: DPoPTokenSet, verdict: Verdict) -> None:
    """`iat` six minutes off either way gets 401; a minute old is served (MCP DPoP ext.)."""
    _require_served(run, bound, verdict)
    now = int(time.time())
    for offset in (-360, 360):
        _expect_refused(
            run,
            bound,
            verdict,
            "DPOP-RS-PROOF-IAT",
            [_proof(run, bound, iat=now + offset)],
            f"a proof with iat {offset:+d} s",
        )
    recent = _send(
        run, bound.access_token, [_proof(run, bound, iat=now - 60)], "DPoP scheme, iat -60 s"
    )
    if not recent.is_success:
        verdict.tolerate(
            "DPOP-RS-PROOF-IAT",
            f"a proof made 60 s ago got {mcp.describe(recent)}: a window tighter than the "
            f"extension's +-5 minutes",
        )


# --- replay (RFC 9449 §11.1) ---------------------------------------------------------------


def _replayed(run: Run, bound: DPoPTokenSet, verdict: Verdict) -> httpx.Response:
    """Send one proof twice in a row; the first use must be served. Returns the second."""
    proof = _proof(run, bound)
    first = _send(run, bound.access_token, [proof], "DPoP scheme, a fresh proof")
    verdict.precondition(
        first.is_success, f"alice's bound token with a fresh proof got {mcp.describe(first)}"
    )
    return _send(run, bound.access_token, [proof], "DPoP scheme, the same proof again")


@pytest.mark.requirement("DPOP-RS-PROOF-JTI-REPLAY")
def test_replayed_proof_refused(run: Run, bound: DPoPTokenSet, verdict: Verdict) -> None:
    """The same proof (same jti) sent twice: the second use gets 401 (§11.1)."""
    again = _replayed(run, bound, verdict)
    verdict.expect(
        "DPOP-RS-PROOF-JTI-REPLAY",
        again.status_code == 401,
        f"the same proof sent a second time got {mcp.describe(again)}",
    )


@pytest.mark.requirement("DPOP-RS-JTI-RACE")
def test_concurrent_uses_of_one_proof(run: Run, bound: DPoPTokenSet, verdict: Verdict) -> None:
    """Five simultaneous uses of one fresh proof: at most one is served (§11.1, derived)."""
    if _replayed(run, bound, verdict).is_success:
        pytest.skip("the server does not refuse a sequentially replayed proof: no jti tracking")
    proof = _proof(run, bound)
    responses = concurrently(
        CONCURRENT_USES,
        lambda i: _send(
            run, bound.access_token, [proof], f"DPoP scheme, concurrent use {i + 1} of one proof"
        ),
    )
    served = sum(response.is_success for response in responses)
    verdict.expect(
        "DPOP-RS-JTI-RACE",
        served <= 1,
        f"{served} of {CONCURRENT_USES} simultaneous uses of one proof were served, "
        f"though a sequential replay is refused",
    )


# --- challenges (RFC 9449 §7.1) ------------------------------------------------------------


def _judge_algs(verdict: Verdict, challenge: Challenge, what: str) -> None:
    algs = (challenge.get("algs") or "").split()
    if verdict.expect(
        "DPOP-RS-CHALLENGE", algs, f"the DPoP challenge {what} has no algs parameter"
    ):
        weak = _symmetric_or_none(algs)
        verdict.expect(
            "DPOP-RS-CHALLENGE", not weak, f"the DPoP challenge {what} offers algs {weak}"
        )


@pytest.mark.requirement("DPOP-RS-CHALLENGE")
def test_challenges_offer_dpop_with_algs(
    run: Run, bound: DPoPTokenSet, discovery: Discovery, verdict: Verdict
) -> None:
    """401s carry a DPoP challenge with `algs`; an error code only when a proof failed."""
    verdict.attach(discovery.exchanges)
    response = discovery.unauthenticated
    values = response.headers.get_list("www-authenticate") if response is not None else []
    if not values:
        verdict.note("the request without credentials got no WWW-Authenticate header at all")
    else:
        challenge = _dpop_challenge(response) if response is not None else None
        if verdict.expect(
            "DPOP-RS-CHALLENGE",
            challenge is not None,
            f"the 401 to a request without credentials offers no DPoP challenge: {values!r}",
        ):
            assert challenge is not None
            _judge_algs(verdict, challenge, "to a request without credentials")
            verdict.expect(
                "DPOP-RS-CHALLENGE",
                challenge.get("error") is None,
                f"the DPoP challenge to a request without credentials carries "
                f"error={challenge.get('error')!r} (RFC 9449 §7.1: only when a token was sent)",
            )
    _require_served(run, bound, verdict)
    other = DPoPKey(bound.key.alg)
    refused = _send(
        run,
        bound.access_token,
        [_proof(run, bound, signer=other)],
        "DPoP scheme, a proof whose signature does not verify with its jwk",
    )
    verdict.precondition(
        refused.status_code == 401,
        f"a proof with a bad signature got {mcp.describe(refused)} (see DPOP-RS-PROOF-WELLFORMED)",
    )
    challenge = _dpop_challenge(refused)
    if not verdict.expect(
        "DPOP-RS-CHALLENGE",
        challenge is not None,
        f"the 401 for a bad proof offers no DPoP challenge: "
        f"{refused.headers.get_list('www-authenticate')!r}",
    ):
        return
    assert challenge is not None
    _judge_algs(verdict, challenge, "for a bad proof")
    verdict.expect(
        "DPOP-RS-CHALLENGE",
        challenge.get("error") == "invalid_dpop_proof",
        f"the DPoP challenge for a bad proof has error={challenge.get('error')!r}, "
        f"not invalid_dpop_proof",
    )
