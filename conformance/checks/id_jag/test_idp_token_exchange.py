"""The enterprise IdP issuing ID-JAGs by token exchange (the IdP role of ID-JAG).

draft-ietf-oauth-identity-assertion-authz-grant ("IDJAG"): §3 (the ID-JAG: `typ`
`oauth-id-jag+jwt`, required claims, `client_id` at the resource AS), §4.3 (the RFC 8693
exchange: `audience` required, processing rules, response with `issued_token_type` id-jag and
`token_type` N_A), §7 (metadata) and §8.3 (the IdP never redeems its own ID-JAGs); MCP
enterprise-managed authorization ("MCP-EMA") §4 (`resource` is the MCP server), §7.4.2
(short-lived) and §7.7 (client authentication); RFC 8693 §2.1, §2.2.1 and §2.2.2.

Every check starts from one known-good exchange: alice's ID token, issued to the suite's IdP
client, exchanged by that client for an ID-JAG addressed to the resource AS. The module shares
that exchange; a negative check changes exactly one thing in it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from conformance.discovery import json_object
from conformance.evidence import Exchange
from conformance.fixtures import AttackerIssuer, Run
from conformance.flows import Flows
from conformance.http import recording
from conformance.idp import EnterpriseIdp, id_token, request_id_jag
from conformance.oauth import jwt as jwts
from conformance.oauth.clients import Client, token_request
from conformance.oauth.jwks import fetch_jwk_set
from conformance.oauth.token_exchange import (
    ID_JAG_TOKEN_TYPE,
    ID_JAG_TYP,
    JWT_BEARER,
    TOKEN_EXCHANGE,
    audiences,
    describe,
    issued,
    scopes,
)
from conformance.oauth.token_responses import cache_directives, expect_refused
from conformance.second_hop import IdJagClients, IdJagRequest
from conformance.verdict import Verdict

_REQUIRED_CLAIMS = ("iss", "sub", "aud", "client_id", "jti", "exp", "iat")
_ASYMMETRIC_PREFIXES = ("RS", "PS", "ES")
_EDDSA = ("EdDSA", "Ed25519", "Ed448")
_DENIED_SCOPE = "conformance:denied"
_UNKNOWN_AUDIENCE = "https://unknown-as.invalid"
_SHORT = 300  # seconds: the lifetime IDJAG's examples use
_CEILING = 3600  # seconds: beyond this an ID-JAG is not short-lived by any reading

# --- helpers -------------------------------------------------------------------------------


@dataclass
class Exchanged:
    """One token exchange at the IdP, as it was answered (judged by the checks, not here)."""

    response: httpx.Response
    exchanges: list[Exchange]

    @property
    def body(self) -> dict[str, Any] | None:
        return issued(self.response)


def _exchange(
    run: Run,
    idp: EnterpriseIdp,
    client: Client,
    subject: str,
    target: IdJagRequest,
    note: str,
    **changes: Any,
) -> httpx.Response:
    """The known-good ID-JAG request (IDJAG §4.3), with `changes` to its parameters."""
    params: dict[str, Any] = {
        "audience": target.audience,
        "resource": target.resource,
        "scope": target.scope,
        **changes,
    }
    return request_id_jag(run.http, idp, client, subject, note=note, **params)


@pytest.fixture(scope="module")
def known_good(
    run: Run,
    enterprise_idp: EnterpriseIdp,
    id_jag_clients: IdJagClients,
    alice_id_token: str,
    id_jag_request: IdJagRequest,
) -> Exchanged:
    """Known-good: alice's ID token exchanged by the suite's IdP client (read-only: shared)."""
    with recording() as exchanges:
        response = _exchange(
            run,
            enterprise_idp,
            id_jag_clients.idp,
            alice_id_token,
            id_jag_request,
            "known-good: exchange alice's ID token for an ID-JAG",
        )
    return Exchanged(response, exchanges)


def _id_jag(known_good: Exchanged, verdict: Verdict) -> str:
    """The known-good ID-JAG; without one nothing here can be judged (error)."""
    verdict.attach(known_good.exchanges)
    body = known_good.body
    token = body.get("access_token") if body else None
    verdict.precondition(
        isinstance(token, str) and jwts.is_jwt(token),
        f"the known-good ID-JAG request got {describe(known_good.response)}"
        + ("" if token is None else ", and the token is not a JWT"),
    )
    assert isinstance(token, str)
    return token


def _asymmetric(alg: Any) -> bool:
    return isinstance(alg, str) and (
        alg in _EDDSA or (alg[:2] in _ASYMMETRIC_PREFIXES and alg[2:].isdigit())
    )


def _signature_problem(run: Run, idp: EnterpriseIdp, token: str, alg: str) -> str | None:
    """Why the ID-JAG's signature does not verify with a key from the IdP `jwks_uri`
    (IDJAG §3: signed by the IdP), or None when it does. PyJWT does the verifying."""
    url = idp.metadata.get("jwks_uri")
    if not isinstance(url, str):
        return "the IdP metadata has no jwks_uri to verify it with"
    jwk_set = fetch_jwk_set(run.http, url)
    if jwk_set.keys is None:
        return f"GET {url} answered {jwk_set.response.status_code} without a JWK Set"
    kid = jwts.header(token).get("kid")
    jwk = jwk_set.key_for(kid)
    if jwk is None:
        return f"its kid {kid!r} is not in the IdP JWK Set (kids: {jwk_set.kids})"
    try:
        key = jwt.PyJWK(jwk, algorithm=None if jwk.get("alg") else alg).key
        jwt.decode(
            token,
            key,
            algorithms=[alg],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_iss": False,
            },
        )
    except jwt.PyJWTError as exc:
        return f"it does not verify with key {kid!r}: {exc}"
    return None


def _optional_signer(request: pytest.FixtureRequest) -> Callable[..., str] | None:
    """The IdP test signer, or None when the target offers none."""
    try:
        signer: Callable[..., str] = request.getfixturevalue("idp_signer")
    except pytest.skip.Exception:
        return None
    return signer


# --- discovery (IDJAG §7) ------------------------------------------------------------------


@pytest.mark.requirement("IDJAG-IDP-METADATA")
def test_idp_metadata_advertises_id_jag(
    run: Run, enterprise_idp: EnterpriseIdp, verdict: Verdict
) -> None:
    """The IdP metadata lists the id-jag token type and the token-exchange grant (IDJAG §7)."""
    response = run.http.get(
        enterprise_idp.metadata_url, headers={"Accept": "application/json"}, note="IdP metadata"
    )
    metadata = json_object(response)
    verdict.precondition(
        response.status_code == 200 and metadata,
        f"GET {enterprise_idp.metadata_url} answered {response.status_code} without JSON",
    )
    assert metadata is not None
    types = metadata.get("identity_chaining_requested_token_types_supported")
    verdict.expect(
        "IDJAG-IDP-METADATA",
        isinstance(types, list) and ID_JAG_TOKEN_TYPE in types,
        f"identity_chaining_requested_token_types_supported is {types!r}, "
        f"without {ID_JAG_TOKEN_TYPE}",
    )
    grants = metadata.get("grant_types_supported")
    verdict.expect(
        "IDJAG-IDP-METADATA",
        isinstance(grants, list) and TOKEN_EXCHANGE in grants,
        f"grant_types_supported is {grants!r}, without {TOKEN_EXCHANGE}",
    )


# --- the response and the ID-JAG (IDJAG §3, §4.3) ------------------------------------------


@pytest.mark.requirement("IDJAG-IDP-ISSUES")
def test_idp_issues_id_jag(known_good: Exchanged, verdict: Verdict) -> None:
    """200 with issued_token_type id-jag, token_type N_A and no-store (IDJAG §4.3, RFC 8693
    §2.2.1)."""
    verdict.attach(known_good.exchanges)
    response, body = known_good.response, known_good.body
    if not verdict.expect(
        "IDJAG-IDP-ISSUES",
        body is not None,
        f"a valid ID-JAG request got {describe(response)}, expected 200 with the ID-JAG",
    ):
        return
    assert body is not None
    verdict.expect(
        "IDJAG-IDP-ISSUES",
        body.get("issued_token_type") == ID_JAG_TOKEN_TYPE,
        f"issued_token_type is {body.get('issued_token_type')!r}, not {ID_JAG_TOKEN_TYPE}",
    )
    verdict.expect(
        "IDJAG-IDP-ISSUES",
        body.get("token_type") == "N_A",  # case-sensitive: RFC 8693 §2.2.1
        f"token_type is {body.get('token_type')!r}, not N_A (an ID-JAG is not an access token)",
    )
    verdict.expect(
        "IDJAG-IDP-ISSUES",
        "no-store" in cache_directives(response),
        f"the response has Cache-Control {response.headers.get('cache-control')!r}, "
        "without no-store",
    )
    if "expires_in" not in body:
        verdict.tolerate(
            "IDJAG-IDP-ISSUES", "the response has no expires_in (RECOMMENDED, RFC 8693 §2.2.1)"
        )
    if "refresh_token" in body:
        verdict.tolerate(
            "IDJAG-IDP-ISSUES", "the response carries a refresh_token (IDJAG §4.3.4: SHOULD NOT)"
        )


@pytest.mark.requirement("IDJAG-IDP-JWT-FORMAT")
def test_id_jag_is_a_typed_signed_jwt(
    run: Run, enterprise_idp: EnterpriseIdp, known_good: Exchanged, verdict: Verdict
) -> None:
    """typ oauth-id-jag+jwt, the seven required claims, iss the IdP, asymmetrically signed by
    a key of the IdP jwks_uri (IDJAG §3)."""
    token = _id_jag(known_good, verdict)
    rid = "IDJAG-IDP-JWT-FORMAT"
    head, claims = jwts.header(token), jwts.claims(token)
    verdict.expect(
        rid,
        head.get("typ") == ID_JAG_TYP,
        f"the header typ is {head.get('typ')!r}, not {ID_JAG_TYP}",
    )
    missing = [name for name in _REQUIRED_CLAIMS if claims.get(name) in (None, "", [])]
    verdict.expect(rid, not missing, f"the ID-JAG lacks the claims {missing}")
    issuer = enterprise_idp.metadata.get("issuer") or enterprise_idp.issuer
    verdict.expect(
        rid,
        claims.get("iss") == issuer,
        f"iss is {claims.get('iss')!r}, not the IdP issuer {issuer!r}",
    )
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, int | float) and isinstance(iat, int | float):
        verdict.expect(rid, exp > iat, f"exp {exp} is not after iat {iat}")
    else:
        verdict.fail(rid, f"exp {exp!r} and iat {iat!r} are not both NumericDates")
    if "scope" in claims:
        verdict.expect(
            rid,
            isinstance(claims["scope"], str),
            f"scope is {claims['scope']!r}, not a space-delimited string",
        )
    alg = head.get("alg")
    if not verdict.expect(
        rid, _asymmetric(alg), f"the ID-JAG alg is {alg!r}, not an asymmetric algorithm"
    ):
        return  # never verify with a public key as an HMAC secret
    problem = _signature_problem(run, enterprise_idp, token, str(alg))
    verdict.expect(rid, problem is None, f"the ID-JAG signature: {problem}")


@pytest.mark.requirement("IDJAG-IDP-CLIENT-ID")
def test_id_jag_names_client_at_resource_as(
    id_jag_clients: IdJagClients, known_good: Exchanged, verdict: Verdict
) -> None:
    """client_id is the client's id at the resource AS, not at the IdP (IDJAG §3,
    "Cross-Domain Client ID Handling")."""
    claims = jwts.claims(_id_jag(known_good, verdict))
    expected, idp_side = id_jag_clients.ras.client_id, id_jag_clients.idp.client_id
    if expected == idp_side:
        verdict.note(f"the client has the same id {expected!r} at the IdP and the resource AS")
    found = claims.get("client_id")
    verdict.expect(
        "IDJAG-IDP-CLIENT-ID",
        found == expected,
        f"client_id is {found!r}, not the client's id at the resource AS {expected!r}"
        + (" (it is the IdP-side id)" if found == idp_side else ""),
    )


# --- the subject token (IDJAG §4.3 processing rules) ---------------------------------------


@pytest.mark.requirement("IDJAG-IDP-SUBJECT-VALIDATED")
def test_invalid_subject_tokens_are_refused(
    request: pytest.FixtureRequest,
    run: Run,
    enterprise_idp: EnterpriseIdp,
    id_jag_clients: IdJagClients,
    alice_id_token: str,
    id_jag_request: IdJagRequest,
    attacker_issuer: AttackerIssuer,
    known_good: Exchanged,
    verdict: Verdict,
) -> None:
    """Expired, foreign-signed, tampered or garbage subject tokens yield no ID-JAG (IDJAG
    §4.3: the IdP validates the subject token)."""
    _id_jag(known_good, verdict)
    claims = jwts.claims(alice_id_token)
    variants: list[tuple[str, str]] = []
    signer = _optional_signer(request)
    if signer is None:
        verdict.note("no IdP test signer (id_jag.idp_test_signer): the expired case is skipped")
    else:
        now = int(time.time())
        expired = {**claims, "iat": now - 7200, "exp": now - 3600}
        variants.append(
            ("an ID token of alice that expired an hour ago", signer(expired, typ="JWT"))
        )
    foreign = attacker_issuer.key.sign(claims, typ="JWT")
    variants += [
        ("alice's ID-token claims signed by a key the IdP never published", foreign),
        ("alice's ID token with sub changed to bob", jwts.with_claims(alice_id_token, sub="bob")),
        ("a subject_token that is not a JWT", f"not-a-jwt-{secrets.token_urlsafe(16)}"),
    ]
    for what, subject in variants:
        run.redactor.remember(subject)
        response = _exchange(
            run,
            enterprise_idp,
            id_jag_clients.idp,
            subject,
            id_jag_request,
            f"exchange {what}",
        )
        expect_refused(
            verdict,
            "IDJAG-IDP-SUBJECT-VALIDATED",
            response,
            f"an exchange of {what}",
            ("invalid_grant", "invalid_request"),
        )


@pytest.mark.requirement("IDJAG-IDP-SUBJECT-AUD")
def test_subject_token_of_another_client_is_refused(
    run: Run,
    flows: Flows,
    enterprise_idp: EnterpriseIdp,
    id_jag_clients: IdJagClients,
    id_jag_request: IdJagRequest,
    known_good: Exchanged,
    verdict: Verdict,
) -> None:
    """An ID token issued to another client is not exchanged by this one (IDJAG §4.3: its
    audience is the authenticated client)."""
    other = id_jag_clients.other_idp
    if other is None:
        pytest.skip("no second IdP client configured (id_jag.other_idp_client)")
    _id_jag(known_good, verdict)
    foreign = id_token(flows, enterprise_idp, other, "alice")
    response = _exchange(
        run,
        enterprise_idp,
        id_jag_clients.idp,
        foreign,
        id_jag_request,
        f"exchange alice's ID token issued to {other.client_id}",
    )
    expect_refused(
        verdict,
        "IDJAG-IDP-SUBJECT-AUD",
        response,
        f"{id_jag_clients.idp.client_id} exchanging alice's ID token issued to {other.client_id}",
        ("invalid_grant", "invalid_request"),
    )


# --- audience, scope and resource (IDJAG §3, §4.3; MCP-EMA §4) -----------------------------


@pytest.mark.requirement("IDJAG-IDP-AUDIENCE")
def test_audience_is_required_and_resolved(
    run: Run,
    enterprise_idp: EnterpriseIdp,
    id_jag_clients: IdJagClients,
    alice_id_token: str,
    id_jag_request: IdJagRequest,
    known_good: Exchanged,
    verdict: Verdict,
) -> None:
    """`audience` is required, becomes the ID-JAG `aud`, and an unknown AS is refused
    (IDJAG §4.3, RFC 8693 §2.2.2)."""
    rid = "IDJAG-IDP-AUDIENCE"
    aud = jwts.claims(_id_jag(known_good, verdict)).get("aud")
    verdict.expect(
        rid,
        audiences(aud) == [id_jag_request.audience],
        f"an ID-JAG requested with audience={id_jag_request.audience} has aud {aud!r}",
    )
    cases: list[tuple[str, str | None, tuple[str, ...]]] = [
        ("an ID-JAG request without audience", None, ("invalid_request",)),
        (
            f"an ID-JAG request with audience={_UNKNOWN_AUDIENCE}",
            _UNKNOWN_AUDIENCE,
            ("invalid_target",),
        ),
    ]
    for what, audience, codes in cases:
        response = _exchange(
            run,
            enterprise_idp,
            id_jag_clients.idp,
            alice_id_token,
            id_jag_request,
            what,
            audience=audience,
        )
        expect_refused(verdict, rid, response, what, codes)


@pytest.mark.requirement("IDJAG-IDP-GRANTED-REFLECTED")
def test_narrowed_scope_is_stated(
    run: Run,
    enterprise_idp: EnterpriseIdp,
    id_jag_clients: IdJagClients,
    alice_id_token: str,
    id_jag_request: IdJagRequest,
    known_good: Exchanged,
    verdict: Verdict,
) -> None:
    """A scope policy denies is left out of the ID-JAG and the response says what was granted,
    or the request is refused with invalid_scope (IDJAG §4.3, RFC 8693 §2.2.1)."""
    if not id_jag_request.scope:
        pytest.skip("no scope for ID-JAG requests (id_jag.scope or target.basic_scope)")
    _id_jag(known_good, verdict)
    rid = "IDJAG-IDP-GRANTED-REFLECTED"
    requested = f"{id_jag_request.scope} {_DENIED_SCOPE}"
    what = f"an ID-JAG request for scope {requested!r}"
    response = _exchange(
        run,
        enterprise_idp,
        id_jag_clients.idp,
        alice_id_token,
        id_jag_request,
        what,
        scope=requested,
    )
    body = issued(response)
    if body is None:
        expect_refused(verdict, rid, response, what, ("invalid_scope",))
        return
    stated = body.get("scope")
    if verdict.expect(
        rid,
        isinstance(stated, str),
        f"{what} was answered without a `scope` member ({stated!r}), so the client cannot "
        "know what was granted",
    ):
        verdict.expect(
            rid,
            _DENIED_SCOPE not in scopes(stated),
            f"the response grants {_DENIED_SCOPE!r} (scope {stated!r})",
        )
    token = str(body["access_token"])
    carried = jwts.claims(token).get("scope") if jwts.is_jwt(token) else None
    if not verdict.expect(
        rid,
        _DENIED_SCOPE not in scopes(carried),
        f"the ID-JAG carries {_DENIED_SCOPE!r} (scope {carried!r})",
    ):
        return
    if isinstance(stated, str) and carried is not None:
        verdict.expect(
            rid,
            scopes(stated) == scopes(carried),
            f"the response states scope {stated!r}, the ID-JAG carries {carried!r}",
        )


@pytest.mark.requirement("IDJAG-IDP-RESOURCE")
def test_id_jag_carries_requested_resource(
    id_jag_request: IdJagRequest, known_good: Exchanged, verdict: Verdict
) -> None:
    """The ID-JAG `resource` is the MCP server requested (MCP-EMA §4, §4.3; IDJAG §3)."""
    resource = jwts.claims(_id_jag(known_good, verdict)).get("resource")
    verdict.expect(
        "IDJAG-IDP-RESOURCE",
        resource == id_jag_request.resource or resource == [id_jag_request.resource],
        f"an ID-JAG requested with resource={id_jag_request.resource} has resource {resource!r}",
    )


# --- client authentication, lifetime, cross-domain use (MCP-EMA §7; IDJAG §8.3) ------------


@pytest.mark.requirement("IDJAG-IDP-CLIENT-AUTH")
def test_exchange_requires_client_authentication(
    run: Run,
    enterprise_idp: EnterpriseIdp,
    id_jag_clients: IdJagClients,
    alice_id_token: str,
    id_jag_request: IdJagRequest,
    known_good: Exchanged,
    verdict: Verdict,
) -> None:
    """The known-good request naming the client without its secret gets no ID-JAG (MCP-EMA
    §7.7, IDJAG §4.3)."""
    if id_jag_clients.idp.client_secret is None:
        pytest.skip("the suite's IdP client has no secret to leave out")
    _id_jag(known_good, verdict)
    what = "the known-good ID-JAG request with client_id only (no client secret)"
    response = _exchange(
        run,
        enterprise_idp,
        id_jag_clients.idp.without_secret(),
        alice_id_token,
        id_jag_request,
        what,
    )
    expect_refused(
        verdict, "IDJAG-IDP-CLIENT-AUTH", response, what, ("invalid_client",), (401, 400)
    )


@pytest.mark.requirement("IDJAG-IDP-SHORT-LIVED")
def test_id_jag_is_short_lived(known_good: Exchanged, verdict: Verdict) -> None:
    """exp - iat is at most 300 s; up to an hour is tolerated (MCP-EMA §7.4.2 gives no number)."""
    claims = jwts.claims(_id_jag(known_good, verdict))
    exp, iat = claims.get("exp"), claims.get("iat")
    if not verdict.expect(
        "IDJAG-IDP-SHORT-LIVED",
        isinstance(exp, int | float),
        f"the ID-JAG has exp {exp!r}: it never expires",
    ):
        return
    assert isinstance(exp, int | float)
    if not isinstance(iat, int | float):
        verdict.note(f"the ID-JAG has iat {iat!r}; its lifetime is counted from now")
        iat = time.time()
    lifetime = int(exp - iat)
    if lifetime <= _SHORT:
        return
    if lifetime <= _CEILING:
        verdict.tolerate(
            "IDJAG-IDP-SHORT-LIVED",
            f"the ID-JAG lives {lifetime} s, more than the {_SHORT} s of the IDJAG examples",
        )
        verdict.note("the spec gives no number for 'short-lived'; the suite passes up to 300 s")
        return
    verdict.fail(
        "IDJAG-IDP-SHORT-LIVED",
        f"the ID-JAG lives {lifetime} s, more than the {_CEILING} s ceiling",
    )


@pytest.mark.requirement("IDJAG-IDP-NOT-SELF-REDEEMABLE")
def test_idp_does_not_redeem_its_own_id_jag(
    run: Run,
    enterprise_idp: EnterpriseIdp,
    id_jag_clients: IdJagClients,
    known_good: Exchanged,
    verdict: Verdict,
) -> None:
    """The IdP grants no access token for an ID-JAG it issued (IDJAG §8.3, cross-domain use)."""
    token = _id_jag(known_good, verdict)
    what = "the IdP's own ID-JAG presented at its token endpoint (jwt-bearer)"
    response = token_request(
        run.http,
        enterprise_idp.endpoint("token_endpoint"),
        id_jag_clients.idp,
        [("grant_type", JWT_BEARER), ("assertion", token)],
        note=what,
    )
    body = issued(response)
    if body:
        run.redactor.remember(body["access_token"])
    expect_refused(
        verdict,
        "IDJAG-IDP-NOT-SELF-REDEEMABLE",
        response,
        what,
        ("invalid_grant", "unsupported_grant_type", "unauthorized_client"),
    )
