"""DPoP at the authorization server: proofs on token requests, DPoP-bound access and refresh
tokens, server nonces and authorization code binding.

RFC 9449 §4.3 (the receiver's proof checks), §5 (token requests with a proof, `token_type`
DPoP, refresh tokens of public clients bound to the key, every grant type), §5.1 (metadata),
§5.2 (`dpop_bound_access_tokens`), §6.1 and §6.2 (`cnf.jkt` in the token and in
introspection), §8 and §11.3 (server nonces), §10 (`dpop_jkt`), §11.1 (replay), §11.5 and
§11.6 (`typ`, asymmetric algorithms); the MCP DPoP extension (ext-auth `dpop-extension`,
SEP-1932, draft). Each proof check alters one thing of a known-good DPoP token request, a
refresh (or, before the AS has issued a refresh token, an unused code) that succeeds with a
valid proof, and ends by showing that the known-good request still works.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest

from conformance.discovery import AuthorizationServer, json_object
from conformance.dpop_flows import (
    NO_DPOP,
    USE_DPOP_NONCE,
    DPoPFlows,
    DPoPTokenSet,
    Proofs,
    fixed,
    proofs,
)
from conformance.fixtures import Clients, Run, redirect_uris_for, register_client
from conformance.flows import Flows, TokenSet
from conformance.oauth import jwt
from conformance.oauth.authorization import AuthorizationRequest
from conformance.oauth.clients import (
    Client,
    registration_metadata,
    token_request,
)
from conformance.oauth.dpop import ASYMMETRIC_ALGORITHMS, DPoPKey
from conformance.oauth.token_exchange import describe, error_code, exchange_request, issued
from conformance.second_hop import ExchangeTarget
from conformance.verdict import Verdict

SUPPORTED = "DPOP-SUPPORTED"
METADATA_ALGS = "DPOP-AS-METADATA-ALGS"
BOUND_TOKEN = "DPOP-AS-BOUND-TOKEN"
TYP_ALG = "DPOP-AS-PROOF-TYP-ALG"
PROOF_KEY = "DPOP-AS-PROOF-KEY"
WELLFORMED = "DPOP-AS-PROOF-WELLFORMED"
HTM_HTU = "DPOP-AS-PROOF-HTM-HTU"
IAT = "DPOP-AS-PROOF-IAT"
JTI_REPLAY = "DPOP-AS-PROOF-JTI-REPLAY"
NONCE = "DPOP-AS-NONCE"
INVALID_PROOF_ERROR = "DPOP-AS-INVALID-PROOF-ERROR"
DPOP_JKT = "DPOP-AS-DPOP-JKT"
RT_BOUND = "DPOP-AS-RT-BOUND"
CLIENT_REQUIRES_DPOP = "DPOP-AS-CLIENT-REQUIRES-DPOP"
ALL_GRANTS = "DPOP-AS-ALL-GRANTS"

ALGS_MEMBER = "dpop_signing_alg_values_supported"
INVALID_DPOP_PROOF = "invalid_dpop_proof"
HOUR = 3600
RECENT = 30  # seconds: a proof this old is well inside any reasonable acceptance window

# --- the known-good DPoP token request -------------------------------------------------------


class ProofProbe:
    """Alice's known-good DPoP token request through the public client, for judging one altered
    proof at a time: a refresh with the current refresh token or, until the AS has issued one,
    the redemption of an unused code. A refused request leaves the refresh token (or code) for
    the next; an accepted one moves on to whatever it issued."""

    def __init__(self, dpop_flows: DPoPFlows, client: Client) -> None:
        self.dpop = dpop_flows
        self.client = client
        self.key = dpop_flows.new_key()
        self.refresh_token: str | None = None
        self._code: tuple[str, AuthorizationRequest] | None = None

    @property
    def url(self) -> str:
        return self.dpop.token_endpoint

    def valid(self, **options: Any) -> Proofs:
        """Fresh proofs by the probe's key (`options`: one alteration, see `DPoPKey.proof`)."""
        return self.dpop.proofs(self.key, **options)

    def proof(self, **options: Any) -> str:
        """One proof by the probe's key, built now (for a proof sent as it is)."""
        return self.key.proof("POST", self.url, **options)

    def send(self, dpop: Proofs, note: str, *, retry: bool = True) -> httpx.Response:
        flows = self.dpop.flows
        if self.refresh_token is not None:
            response = self.dpop.refresh(
                self.client, self.refresh_token, dpop, note=note, retry=retry
            )
        else:
            if self._code is None:
                request = flows.request(self.client)
                self._code = (flows.code_for(request, "alice"), request)
            code, request = self._code
            response = self.dpop.redeem(self.client, code, request, dpop, note=note, retry=retry)
        body = flows.token_body(response)
        if body is not None:
            self._code = None
            self.refresh_token = body.get("refresh_token") or self.refresh_token
        return response

    def require_good(self) -> dict[str, Any]:
        """The known-good request works (else nothing this check saw can be judged)."""
        response = self.send(self.valid(), "known-good: the same request with a valid proof")
        body = issued(response)
        if body is None:  # the next check starts over with a fresh code
            self.refresh_token, self._code = None, None
        Verdict.precondition(
            body, f"the known-good DPoP token request (a valid proof) got {describe(response)}"
        )
        assert body is not None
        return body

    def require_refresh_token(self) -> str:
        if self.refresh_token is None:
            self.require_good()
        if self.refresh_token is None:
            pytest.skip("the authorization server issued no refresh token to the public client")
        return self.refresh_token


@pytest.fixture(scope="module")
def probe(dpop_flows: DPoPFlows, clients: Clients) -> ProofProbe:
    return ProofProbe(dpop_flows, clients.public)


# --- helpers -----------------------------------------------------------------------------------


def _expect_refused(
    verdict: Verdict, requirement: str, response: httpx.Response, what: str
) -> bool:
    """`what` is refused: a 4xx without a token. Which error code is DPOP-AS-INVALID-PROOF-ERROR's
    to judge, so that one wrong code does not fail every proof check."""
    return verdict.expect(
        requirement,
        issued(response) is None and 400 <= response.status_code < 500,
        f"{what}: got {describe(response)}, expected a refusal (4xx, no token)",
    )


def _send_each(
    verdict: Verdict, requirement: str, probe: ProofProbe, cases: list[tuple[str, Proofs]]
) -> None:
    """Each altered request is refused; then the known-good one still works."""
    for what, dpop in cases:
        _expect_refused(verdict, requirement, probe.send(dpop, what), what)
    probe.require_good()


def _jkt(document: dict[str, Any] | None) -> Any:
    cnf = (document or {}).get("cnf")
    return cnf.get("jkt") if isinstance(cnf, dict) else None


def _introspected(flows: Flows, clients: Clients, token: str) -> dict[str, Any] | None:
    """The RFC 7662 introspection of `token`, or None when the AS offers none (or the suite
    has no confidential client to call it with)."""
    endpoint = flows.server.endpoint("introspection_endpoint")
    if not endpoint or clients.confidential is None:
        return None
    response = token_request(
        flows.http, endpoint, clients.confidential, [("token", token)], note="introspect"
    )
    body = json_object(response)
    Verdict.precondition(
        response.status_code == 200 and body and body.get("active") is True,
        f"introspection of a fresh access token got {describe(response)}",
    )
    return body


def _expect_bound(
    verdict: Verdict,
    requirement: str,
    flows: Flows,
    clients: Clients,
    body: dict[str, Any],
    key: DPoPKey,
    what: str,
    *,
    introspect_jwt: bool = False,
) -> None:
    """The access token in `body` is bound to `key` (§6): a JWT names it as `cnf.jkt` (§6.1);
    the introspection response does (§6.2), with `token_type` DPoP if it says one. An opaque
    token (or, with `introspect_jwt`, any token) is introspected; where nothing shows the
    binding, `token_type` is all there is to judge."""
    token = str(body["access_token"])
    seen = jwt.is_jwt(token)
    if seen:
        found = _jkt(jwt.claims(token))
        verdict.expect(
            requirement,
            found == key.jkt,
            f"{what}: cnf.jkt is {found!r}, not the proof key's thumbprint {key.jkt}",
        )
    info = _introspected(flows, clients, token) if introspect_jwt or not seen else None
    if info is not None:
        seen = True
        found, token_type = _jkt(info), info.get("token_type")
        verdict.expect(
            requirement,
            found == key.jkt,
            f"{what}: introspection cnf.jkt is {found!r}, not the proof key's {key.jkt}",
        )
        verdict.expect(
            requirement,
            token_type is None or str(token_type).lower() == "dpop",
            f"{what}: introspection says token_type {token_type!r} for a DPoP-bound token",
        )
    if not seen:
        verdict.note(f"{what} is opaque and cannot be introspected: judged by token_type alone")
        token_type = str(body.get("token_type", ""))
        verdict.expect(
            requirement, token_type.lower() == "dpop", f"{what}: token_type {token_type!r}"
        )


# --- metadata (§5.1) -------------------------------------------------------------------------


@pytest.mark.requirement(SUPPORTED)
def test_authorization_server_offers_dpop(
    authorization_server: AuthorizationServer, verdict: Verdict
) -> None:
    """RFC 9449 §5.1: an AS that supports DPoP lists its proof algorithms in its metadata. DPoP
    itself is optional (a MAY); the dpop profile requires it."""
    verdict.expect(
        SUPPORTED,
        authorization_server.metadata.get(ALGS_MEMBER),
        f"the AS metadata has no {ALGS_MEMBER}: the deployment does not offer DPoP",
    )


@pytest.mark.requirement(METADATA_ALGS)
def test_proof_algorithms_are_advertised_asymmetric_only(
    authorization_server: AuthorizationServer, verdict: Verdict
) -> None:
    """RFC 9449 §5.1, §11.6; MCP DPoP extension "Authorization Server Metadata": a JSON array
    of JWS algorithms, asymmetric only, never `none`."""
    algorithms = authorization_server.metadata.get(ALGS_MEMBER)
    if algorithms is None:
        pytest.skip(NO_DPOP)
    well_formed = (
        isinstance(algorithms, list)
        and algorithms
        and all(isinstance(a, str) and a for a in algorithms)
    )
    if not verdict.expect(
        METADATA_ALGS,
        well_formed,
        f"{ALGS_MEMBER} is {algorithms!r}, not a non-empty array of algorithm names",
    ):
        return
    symmetric = [a for a in algorithms if a.lower() == "none" or a.upper().startswith("HS")]
    verdict.expect(
        METADATA_ALGS,
        not symmetric,
        f"{ALGS_MEMBER} lists {symmetric}: none and MAC algorithms are never acceptable",
    )
    unknown = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS and a not in symmetric]
    if unknown:
        verdict.note(f"{ALGS_MEMBER} also lists {unknown}, algorithms the suite does not know")


# --- the bound token (§5, §6) ----------------------------------------------------------------


@pytest.mark.requirement(BOUND_TOKEN)
def test_token_request_with_proof_gets_a_bound_token(
    flows: Flows, clients: Clients, alice_dpop_tokens: DPoPTokenSet, verdict: Verdict
) -> None:
    """RFC 9449 §5: `token_type` DPoP; §6.1: the JWT's `cnf.jkt` is the proof key's RFC 7638
    thumbprint; §6.2: so is the introspection response's, whose `token_type` is DPoP."""
    tokens = alice_dpop_tokens
    verdict.attach(tokens.exchanges)
    verdict.expect(
        BOUND_TOKEN,
        tokens.token_type.lower() == "dpop",
        f"a code redeemed with a valid proof got token_type {tokens.token_type!r}, not DPoP",
    )
    _expect_bound(
        verdict,
        BOUND_TOKEN,
        flows,
        clients,
        tokens.body,
        tokens.key,
        "the token",
        introspect_jwt=True,
    )


# --- the proof checks (§4.3) -----------------------------------------------------------------


@pytest.mark.requirement(TYP_ALG)
def test_proof_type_and_algorithm_are_checked(probe: ProofProbe, verdict: Verdict) -> None:
    """RFC 9449 §4.3 (4), (5), §11.5, §11.6: `typ` dpop+jwt, an asymmetric `alg`, never
    `none`, never a MAC (here keyed with the proof's own public JWK)."""
    _send_each(
        verdict,
        TYP_ALG,
        probe,
        [
            ("a proof typed JWT", probe.valid(typ="JWT")),
            ("a proof without typ", probe.valid(typ=None)),
            ("an unsigned proof (alg none)", probe.valid(alg="none")),
            ("a proof MACed with HS256 keyed by its jwk", probe.valid(alg="HS256")),
        ],
    )


@pytest.mark.requirement(PROOF_KEY)
def test_proof_key_is_public_and_signed_the_proof(
    probe: ProofProbe, dpop_flows: DPoPFlows, verdict: Verdict
) -> None:
    """RFC 9449 §4.3 (6), (7): the signature verifies with the `jwk` header, which holds no
    private key."""
    _send_each(
        verdict,
        PROOF_KEY,
        probe,
        [
            ("a proof whose jwk holds the private key", probe.valid(include_private_key=True)),
            (
                "a proof signed by another key than its jwk",
                probe.valid(signer=dpop_flows.new_key()),
            ),
        ],
    )


@pytest.mark.requirement(WELLFORMED)
def test_one_well_formed_proof_with_every_claim(probe: ProofProbe, verdict: Verdict) -> None:
    """RFC 9449 §4.3 (1)-(3), §4.2: one `DPoP` header, one JWT, with jti, htm, htu and iat."""
    one, another = probe.valid(), probe.valid()
    cases: list[tuple[str, Proofs]] = [
        ("two DPoP headers, each a valid proof", lambda nonce: [*one(nonce), *another(nonce)]),
        ("a DPoP header that is not a JWT", fixed("not-a-dpop-proof")),
    ]
    cases += [
        (f"a proof without {claim}", probe.valid(claims={claim: None}))
        for claim in ("jti", "htm", "htu", "iat")
    ]
    _send_each(verdict, WELLFORMED, probe, cases)


@pytest.mark.requirement(HTM_HTU)
def test_proof_method_and_uri_must_match(probe: ProofProbe, flows: Flows, verdict: Verdict) -> None:
    """RFC 9449 §4.3 (8), (9): `htm` is the request's method, `htu` its URI, disregarding
    query and fragment (so an `htu` with a query still matches)."""
    for what, dpop in (
        ("a proof for GET", probe.valid(claims={"htm": "GET"})),
        (
            "a proof for the authorization endpoint",
            probe.valid(claims={"htu": flows.authorization_endpoint}),
        ),
    ):
        _expect_refused(verdict, HTM_HTU, probe.send(dpop, what), what)
    what = "a proof whose htu adds a query to the token endpoint"
    response = probe.send(probe.valid(claims={"htu": f"{probe.url}?dpop-check=1"}), what)
    if issued(response) is None:
        verdict.tolerate(
            HTM_HTU, f"{what} got {describe(response)}: the query should have been ignored"
        )
    probe.require_good()


@pytest.mark.requirement(IAT)
def test_proof_is_accepted_only_near_its_iat(probe: ProofProbe, verdict: Verdict) -> None:
    """RFC 9449 §4.3 (11), §11.1: proofs are accepted only for a limited time after their
    creation; clocks a little apart still work."""
    now = int(time.time())
    for what, iat in (("a proof created an hour ago", now - HOUR), ("an hour ahead", now + HOUR)):
        _expect_refused(verdict, IAT, probe.send(probe.valid(iat=iat), what), what)
    what = f"a proof created {RECENT} s ago"
    response = probe.send(probe.valid(iat=int(time.time()) - RECENT), what)
    if issued(response) is None:
        verdict.tolerate(IAT, f"{what} got {describe(response)}: the window is too strict")
    probe.require_good()


@pytest.mark.requirement(JTI_REPLAY)
def test_proof_is_accepted_once(probe: ProofProbe, dpop_flows: DPoPFlows, verdict: Verdict) -> None:
    """RFC 9449 §11.1: a server that tracks `jti` per URI declines a proof seen before."""
    probe.require_good()  # and so holds the server's current nonce
    proof = probe.proof(nonce=dpop_flows.nonce(probe.url))
    first = probe.send(fixed(proof), "a valid proof", retry=False)
    Verdict.precondition(issued(first), f"a valid proof got {describe(first)}")
    what = "the same proof with the next token request"
    _expect_refused(verdict, JTI_REPLAY, probe.send(fixed(proof), what, retry=False), what)
    probe.require_good()


@pytest.mark.requirement(NONCE)
def test_demanded_nonce_is_enforced(
    probe: ProofProbe, dpop_flows: DPoPFlows, verdict: Verdict
) -> None:
    """RFC 9449 §8: `use_dpop_nonce` with exactly one `DPoP-Nonce`, the retry with it
    accepted, a nonce the AS did not supply refused; §11.3: once a nonce was supplied, a
    proof without one is refused."""
    supplied = dpop_flows.nonce(probe.url) is not None
    first = probe.send(fixed(probe.proof()), "a valid proof without nonce", retry=False)
    if error_code(first) != USE_DPOP_NONCE:
        if issued(first) is None:
            Verdict.precondition(False, f"a valid proof without nonce got {describe(first)}")
        if not supplied and "dpop-nonce" not in first.headers:
            pytest.skip("the authorization server demands no DPoP nonce (RFC 9449 §8: optional)")
        verdict.expect(
            NONCE,
            not supplied,
            "a proof without nonce was accepted after the AS had supplied a DPoP-Nonce",
        )
    else:
        nonces = first.headers.get_list("dpop-nonce")
        verdict.expect(
            NONCE,
            first.status_code == 400 and len(nonces) == 1,
            f"use_dpop_nonce came with status {first.status_code} and {len(nonces)} DPoP-Nonce "
            f"headers, expected 400 and exactly one",
        )
        if not nonces:
            return
        what = "the retry with the supplied nonce"
        retried = probe.send(fixed(probe.proof(nonce=nonces[-1])), what, retry=False)
        verdict.expect(NONCE, issued(retried), f"{what} got {describe(retried)}")
    for what, nonce in (
        ("a proof with a nonce the AS never supplied", secrets.token_urlsafe(24)),
        ("a proof without nonce, after the AS supplied one", None),
    ):
        response = probe.send(fixed(probe.proof(nonce=nonce)), what, retry=False)
        _expect_refused(verdict, NONCE, response, what)
    probe.require_good()


@pytest.mark.requirement(INVALID_PROOF_ERROR)
def test_invalid_proof_gets_invalid_dpop_proof(probe: ProofProbe, verdict: Verdict) -> None:
    """RFC 9449 §5: an invalid proof is answered per RFC 6749 §5.2 with `invalid_dpop_proof`."""
    what = "a DPoP header that is not a JWT"
    response = probe.send(fixed("not-a-dpop-proof"), what)
    verdict.expect(
        INVALID_PROOF_ERROR,
        response.status_code == 400 and error_code(response) == INVALID_DPOP_PROOF,
        f"{what}: got {describe(response)}, expected 400 {INVALID_DPOP_PROOF}",
    )
    probe.require_good()


# --- binding the code (§10), the refresh token (§5) and the client (§5.2) --------------------


@pytest.mark.requirement(DPOP_JKT)
def test_code_bound_with_dpop_jkt_needs_that_key(
    flows: Flows, clients: Clients, dpop_flows: DPoPFlows, verdict: Verdict
) -> None:
    """RFC 9449 §10: the AS compares the proof key's thumbprint with the authorization
    request's `dpop_jkt` and MUST refuse a mismatch (and so a redemption without a proof)."""
    key = dpop_flows.new_key()
    client = clients.public
    request = flows.request(client).with_param("dpop_jkt", key.jkt)
    code = flows.code_for(request)
    refused = [
        _expect_refused(
            verdict, DPOP_JKT, dpop_flows.redeem(client, code, request, dpop, note=what), what
        )
        for what, dpop in (
            ("the code redeemed without a proof", fixed()),
            (
                "the code redeemed with a proof of another key",
                dpop_flows.proofs(dpop_flows.new_key()),
            ),
        )
    ]
    if all(refused):
        what = "known-good: the code redeemed with a proof of the dpop_jkt key"
        good = dpop_flows.redeem(client, code, request, dpop_flows.proofs(key), note=what)
        Verdict.precondition(flows.token_body(good), f"{what} got {describe(good)}")


@pytest.mark.requirement(RT_BOUND)
def test_public_client_refresh_token_needs_its_key(
    probe: ProofProbe, dpop_flows: DPoPFlows, verdict: Verdict
) -> None:
    """RFC 9449 §5: a refresh token issued to a public client with a valid proof is bound to
    that key; every refresh needs a proof of the same key."""
    probe.require_refresh_token()
    _send_each(
        verdict,
        RT_BOUND,
        probe,
        [
            ("a refresh without a proof", fixed()),
            ("a refresh with a proof of another key", dpop_flows.proofs(dpop_flows.new_key())),
        ],
    )


@pytest.mark.requirement(CLIENT_REQUIRES_DPOP)
def test_client_registered_for_dpop_gets_no_token_without_proof(
    run: Run,
    flows: Flows,
    dpop_flows: DPoPFlows,
    registration_endpoint: str | None,
    verdict: Verdict,
) -> None:
    """RFC 9449 §5.2, MCP DPoP extension "Client Registration Metadata": for a client
    registered with `dpop_bound_access_tokens: true`, token requests without a proof are
    refused."""
    if run.config.registration == "preregistered" or not registration_endpoint:
        pytest.skip("needs dynamic client registration (RFC 7591) to register a DPoP client")
    metadata = registration_metadata(redirect_uris_for(run), "none", dpop_bound_access_tokens=True)
    registration = register_client(
        run,
        registration_endpoint,
        metadata,
        "register a public client with dpop_bound_access_tokens true",
    )
    Verdict.precondition(
        registration.client,
        f"registering a client with dpop_bound_access_tokens got {describe(registration.response)}",
    )
    assert registration.client is not None and registration.body is not None
    if registration.body.get("dpop_bound_access_tokens") is not True:
        verdict.note("the registration response does not echo dpop_bound_access_tokens: true")
    client = registration.client
    request = flows.request(client)
    code = flows.code_for(request)
    what = "the client's code redeemed without a proof"
    if _expect_refused(
        verdict, CLIENT_REQUIRES_DPOP, flows.redeem(client, code, request, note=what), what
    ):
        what = "known-good: the same code redeemed with a valid proof"
        good = dpop_flows.redeem(
            client, code, request, dpop_flows.proofs(dpop_flows.new_key()), note=what
        )
        Verdict.precondition(flows.token_body(good), f"{what} got {describe(good)}")


# --- every grant binds (§5) ------------------------------------------------------------------


@pytest.mark.requirement(ALL_GRANTS)
def test_refresh_with_proof_gets_a_bound_token(
    probe: ProofProbe, flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """RFC 9449 §5: proofs apply to every token request, the refresh-token grant included."""
    probe.require_refresh_token()
    body = probe.require_good()
    _expect_bound(verdict, ALL_GRANTS, flows, clients, body, probe.key, "the refreshed token")


@pytest.mark.requirement(ALL_GRANTS)
def test_token_exchange_with_proof_gets_a_bound_token(
    run: Run,
    flows: Flows,
    clients: Clients,
    dpop_flows: DPoPFlows,
    alice_tokens: TokenSet,
    exchange_client: Client,
    exchange_endpoint: str,
    exchange_target: ExchangeTarget,
    verdict: Verdict,
) -> None:
    """RFC 9449 §5 (extension grants too), RFC 8693 §2.1: an exchange with a valid proof."""
    verdict.attach(alice_tokens.exchanges)
    key = dpop_flows.new_key()
    params = exchange_request(
        alice_tokens.access_token, exchange_target.resource, exchange_target.scope
    )
    what = "token exchange with a DPoP proof"
    response = dpop_flows.send(
        exchange_endpoint,
        lambda headers: token_request(
            run.http, exchange_endpoint, exchange_client, params, note=what, headers=headers
        ),
        proofs(key, exchange_endpoint),
    )
    body = flows.token_body(response)
    Verdict.precondition(body, f"{what} got {describe(response)}")
    assert body is not None
    _expect_bound(verdict, ALL_GRANTS, flows, clients, body, key, "the exchanged token")
