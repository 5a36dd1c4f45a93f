"""The resource authorization server redeeming ID-JAGs (RFC 7523 jwt-bearer grant), and the
MCP server refusing the IdP's assertions as access tokens.

draft-ietf-oauth-identity-assertion-authz-grant ("IDJAG"): §3 (the ID-JAG claims), §4.4
(the access token request), §4.4.1 (processing rules: `typ`, `aud`, `client_id`, scope and
resource), §4.4.3 (the response, no refresh token) and §7 (metadata); RFC 7523 §2.1 and §3
(signature, issuer, audience, validity window, `jti`), §3.1 (`invalid_grant`); MCP
enterprise-managed authorization ("MCP-EMA") §5, §5.1 and §7.4.2 (replay detection), and MCP
authorization "Token Handling" (the MCP server accepts only access tokens issued for it).

Every check first redeems a known-good ID-JAG: a fresh one from the IdP (alice's ID token,
exchanged by the suite's IdP client), presented by the client it names. A negative changes
exactly one thing. ID-JAGs are single-use at a conforming resource AS, so checks that redeem
mint their own; forged variants get a fresh `jti` so replay detection cannot hide a defect.
Replay detection is also raced: several redemptions of one ID-JAG released at once
(`conformance.races`), of which at most one may succeed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conformance import mcp
from conformance.discovery import AuthorizationServer, json_object
from conformance.evidence import Exchange
from conformance.fixtures import AttackerIssuer, Run
from conformance.http import recording
from conformance.idp import EnterpriseIdp, minted_id_jag
from conformance.oauth import jwt
from conformance.oauth.clients import Client, token_request
from conformance.oauth.token_exchange import (
    ID_JAG_GRANT_PROFILE,
    ID_JAG_TYP,
    JWT_BEARER,
    audiences,
    describe,
    issued,
    scopes,
)
from conformance.oauth.token_responses import cache_directives, expect_refused
from conformance.races import concurrently
from conformance.second_hop import IdJagClients, IdJagRequest
from conformance.verdict import Verdict

_BEARER_TYPES = ("bearer", "dpop")
_OTHER_AS = "https://other-as.invalid"
_NOT_SERVED = "https://not-served.invalid/mcp"
_EXTRA_SCOPE = "conformance:extra"
_HOUR = 3600
_RACERS = 5

# --- helpers -------------------------------------------------------------------------------


@dataclass
class Grants:
    """Mints ID-JAGs at the IdP (IDJAG §4.3) and redeems them at the resource AS (§4.4)."""

    run: Run
    idp: EnterpriseIdp
    clients: IdJagClients
    subject: str
    target: IdJagRequest
    token_endpoint: str

    def mint(self, note: str = "known-good: a fresh ID-JAG from the IdP") -> str:
        """A fresh ID-JAG for alice; without one no redemption can be judged (error)."""
        token = minted_id_jag(
            self.run.http,
            self.idp,
            self.clients.idp,
            self.subject,
            audience=self.target.audience,
            resource=self.target.resource,
            scope=self.target.scope,
            note=note,
        )
        self._require_well_formed(token)
        return token

    def _require_well_formed(self, token: str) -> None:
        """What a resource AS may rightly refuse is judged at the IdP (IDJAG-IDP-JWT-FORMAT,
        -CLIENT-ID, -AUDIENCE): an ID-JAG without it cannot show a redemption defect."""
        typ, claims = jwt.header(token).get("typ"), jwt.claims(token)
        Verdict.precondition(
            typ == ID_JAG_TYP, f"the IdP's ID-JAG is typed {typ!r}, not {ID_JAG_TYP}"
        )
        client_id = self.clients.ras.client_id
        Verdict.precondition(
            claims.get("client_id") == client_id,
            f"the IdP's ID-JAG names client_id {claims.get('client_id')!r}, not {client_id!r}",
        )
        Verdict.precondition(
            audiences(claims.get("aud")) == [self.target.audience],
            f"the IdP's ID-JAG has aud {claims.get('aud')!r}, not {self.target.audience!r}",
        )

    def redeem(
        self, assertion: str, note: str, client: Client | None = None, scope: str | None = None
    ) -> httpx.Response:
        """The jwt-bearer grant (RFC 7523 §2.1) by `client` (default: the one the ID-JAG names)."""
        self.run.redactor.remember(assertion)
        params = [("grant_type", JWT_BEARER), ("assertion", assertion)]
        if scope is not None:
            params.append(("scope", scope))
        response = token_request(
            self.run.http, self.token_endpoint, client or self.clients.ras, params, note=note
        )
        body = issued(response)
        if body:
            self.run.redactor.remember(body["access_token"])
            self.run.redactor.remember(body.get("refresh_token"))
        return response

    def require_redeemed(self, assertion: str, what: str) -> dict[str, Any]:
        """Known-good control: `assertion` must be redeemed, else the check cannot judge."""
        response = self.redeem(assertion, f"known-good: redeem {what}")
        body = issued(response)
        Verdict.precondition(body, f"redeeming {what} got {describe(response)}")
        assert body is not None
        return body

    def control(self) -> str:
        """Known-good: a fresh ID-JAG from the IdP, redeemed; its (now used) token."""
        token = self.mint()
        self.require_redeemed(token, "a fresh ID-JAG from the IdP")
        return token


@pytest.fixture(scope="module")
def grants(
    run: Run,
    enterprise_idp: EnterpriseIdp,
    id_jag_clients: IdJagClients,
    alice_id_token: str,
    id_jag_request: IdJagRequest,
    resource_as: AuthorizationServer,
) -> Grants:
    endpoint = resource_as.endpoint("token_endpoint")
    Verdict.precondition(endpoint, "the resource AS metadata has no token_endpoint")
    assert endpoint is not None
    run.http.scope.add_url(endpoint)
    return Grants(run, enterprise_idp, id_jag_clients, alice_id_token, id_jag_request, endpoint)


@dataclass
class Redemption:
    """One known-good ID-JAG and the resource AS's answer to it (judged by the checks)."""

    id_jag: str
    response: httpx.Response
    exchanges: list[Exchange]

    @property
    def body(self) -> dict[str, Any] | None:
        return issued(self.response)


@pytest.fixture(scope="module")
def known_good(grants: Grants) -> Redemption:
    """Known-good: a fresh ID-JAG redeemed by the client it names (read-only: shared)."""
    with recording() as exchanges:
        id_jag = grants.mint()
        response = grants.redeem(id_jag, "known-good: redeem a fresh ID-JAG")
    return Redemption(id_jag, response, exchanges)


def _redeemed(known_good: Redemption, verdict: Verdict) -> dict[str, Any]:
    """The known-good token response; without it nothing here can be judged (error)."""
    verdict.attach(known_good.exchanges)
    body = known_good.body
    verdict.precondition(body, f"redeeming a fresh ID-JAG got {describe(known_good.response)}")
    assert body is not None
    return body


def _fresh(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The same claims with a new `jti` (so replay detection cannot interfere) and `changes`."""
    return {**claims, "jti": uuid.uuid4().hex, **changes}


def _optional_signer(request: pytest.FixtureRequest) -> Callable[..., str] | None:
    """The IdP test signer, or None when the target offers none."""
    try:
        signer: Callable[..., str] = request.getfixturevalue("idp_signer")
    except pytest.skip.Exception:
        return None
    return signer


def _signed_control(grants: Grants, signer: Callable[..., str], claims: dict[str, Any]) -> None:
    """Known-good: the IdP signer's ID-JAG with these claims (fresh jti) is redeemed, so a
    refused variant is refused for what was changed, not for coming from the signer."""
    token = signer(_fresh(claims), typ=ID_JAG_TYP)
    grants.require_redeemed(token, "an ID-JAG made by the IdP test signer")


def _extra_scope(run: Run, carried: set[str]) -> str:
    """A scope the ID-JAG does not carry: the privileged scope when configured."""
    privileged = run.config.privileged_scope
    return privileged if privileged and privileged not in carried else _EXTRA_SCOPE


def _resource_of(claims: dict[str, Any]) -> str | None:
    resource = claims.get("resource")
    if isinstance(resource, list) and len(resource) == 1:
        resource = resource[0]
    return resource if isinstance(resource, str) else None


# --- discovery (IDJAG §7) ------------------------------------------------------------------


@pytest.mark.requirement("IDJAG-RAS-METADATA")
def test_resource_as_advertises_id_jag_profile(
    run: Run, resource_as: AuthorizationServer, verdict: Verdict
) -> None:
    """authorization_grant_profiles_supported lists the ID-JAG profile and
    grant_types_supported the jwt-bearer grant (IDJAG §7)."""
    response = run.http.get(
        resource_as.metadata_url,
        headers={"Accept": "application/json"},
        note="resource AS metadata",
    )
    metadata = json_object(response)
    verdict.precondition(
        response.status_code == 200 and metadata,
        f"GET {resource_as.metadata_url} answered {response.status_code} without JSON",
    )
    assert metadata is not None
    profiles = metadata.get("authorization_grant_profiles_supported")
    verdict.expect(
        "IDJAG-RAS-METADATA",
        isinstance(profiles, list) and ID_JAG_GRANT_PROFILE in profiles,
        f"authorization_grant_profiles_supported is {profiles!r}, without {ID_JAG_GRANT_PROFILE}",
    )
    grants = metadata.get("grant_types_supported")
    verdict.expect(
        "IDJAG-RAS-METADATA",
        isinstance(grants, list) and JWT_BEARER in grants,
        f"grant_types_supported is {grants!r}, without {JWT_BEARER}",
    )


# --- the grant (IDJAG §4.4, §4.4.3) --------------------------------------------------------


@pytest.mark.requirement("IDJAG-RAS-GRANT")
def test_id_jag_is_redeemed_for_an_access_token(
    run: Run, known_good: Redemption, verdict: Verdict
) -> None:
    """A valid ID-JAG from its client yields 200, token_type Bearer/DPoP, no-store, and a token
    the MCP server accepts (IDJAG §4.4, RFC 7523 §2.1, MCP-EMA §5)."""
    verdict.attach(known_good.exchanges)
    response, body = known_good.response, known_good.body
    rid = "IDJAG-RAS-GRANT"
    if not verdict.expect(
        rid,
        body is not None,
        f"a valid ID-JAG presented by the client it names got {describe(response)}",
    ):
        return
    assert body is not None
    token_type = body.get("token_type")
    verdict.expect(
        rid,
        isinstance(token_type, str) and token_type.lower() in _BEARER_TYPES,
        f"token_type is {token_type!r}, not Bearer or DPoP",
    )
    verdict.expect(
        rid,
        "no-store" in cache_directives(response),
        f"the token response has Cache-Control {response.headers.get('cache-control')!r}, "
        "without no-store",
    )
    if isinstance(token_type, str) and token_type.lower() == "dpop":
        verdict.note("the access token is DPoP-bound; the suite does not present it")
        return
    opened = mcp.present(run, str(body["access_token"]), "initialize with the granted token")
    verdict.expect(
        rid,
        opened.status_code == 200,
        f"the MCP server answered {mcp.describe(opened)} to the access token the resource AS "
        "granted for the ID-JAG",
    )


@pytest.mark.requirement("IDJAG-RAS-NO-REFRESH")
def test_grant_issues_no_refresh_token(known_good: Redemption, verdict: Verdict) -> None:
    """The jwt-bearer grant for an ID-JAG returns no refresh token (IDJAG §4.4.3)."""
    body = _redeemed(known_good, verdict)
    verdict.expect(
        "IDJAG-RAS-NO-REFRESH",
        "refresh_token" not in body,
        "the token response for an ID-JAG carries a refresh_token",
    )


# --- what the resource AS checks in the assertion (IDJAG §4.4.1, RFC 7523 §3) --------------


@pytest.mark.requirement("IDJAG-RAS-TYP")
def test_assertion_must_be_typed_id_jag(
    request: pytest.FixtureRequest, grants: Grants, verdict: Verdict
) -> None:
    """A JWT of the IdP typed `JWT`, or an ID token, is not an ID-JAG (IDJAG §4.4.1,
    RFC 8725 §3.11)."""
    rid = "IDJAG-RAS-TYP"
    claims = jwt.claims(grants.control())
    signer = _optional_signer(request)
    if signer is None:
        verdict.note("no IdP test signer (id_jag.idp_test_signer): the typ=JWT case is skipped")
    else:
        _signed_control(grants, signer, claims)
        mistyped = signer(_fresh(claims), typ="JWT")
        what = "the ID-JAG's claims signed by the IdP with typ JWT"
        expect_refused(verdict, rid, grants.redeem(mistyped, what), what)
    what = "alice's ID token from the same IdP as assertion"
    expect_refused(verdict, rid, grants.redeem(grants.subject, what), what)


@pytest.mark.requirement("IDJAG-RAS-SIGNATURE-ISSUER")
def test_assertion_signature_and_issuer_are_verified(
    run: Run, grants: Grants, attacker_issuer: AttackerIssuer, verdict: Verdict
) -> None:
    """A tampered, foreign-signed or unsigned ID-JAG is refused (RFC 7523 §3 items 1 and 9,
    MCP-EMA §5.1)."""
    rid = "IDJAG-RAS-SIGNATURE-ISSUER"
    claims = jwt.claims(grants.control())
    fresh = grants.mint("a fresh ID-JAG to tamper with")
    carried = scopes(jwt.claims(fresh).get("scope"))
    widened = " ".join([*sorted(carried), _extra_scope(run, carried)])
    foreign = attacker_issuer.key.sign(_fresh(claims, iss=attacker_issuer.issuer), typ=ID_JAG_TYP)
    variants = [
        (
            f"an ID-JAG whose scope claim was changed to {widened!r}",
            jwt.with_claims(fresh, scope=widened),
        ),
        (
            f"an ID-JAG issued and signed by the untrusted issuer {attacker_issuer.issuer}",
            foreign,
        ),
        ("an unsigned (alg none) ID-JAG", jwt.unsigned(grants.mint("a fresh ID-JAG to unsign"))),
    ]
    for what, assertion in variants:
        expect_refused(verdict, rid, grants.redeem(assertion, what), what)


@pytest.mark.requirement("IDJAG-RAS-AUD")
def test_assertion_audience_is_this_server(
    grants: Grants, idp_signer: Callable[..., str], verdict: Verdict
) -> None:
    """`aud` is this AS's issuer, as a string or a one-element array; another AS, or an array
    naming another party too, is invalid_grant (IDJAG §4.4.1, RFC 7523 §3 item 3)."""
    rid = "IDJAG-RAS-AUD"
    claims = jwt.claims(grants.mint("a fresh ID-JAG as claims template"))
    _signed_control(grants, idp_signer, claims)
    issuer = grants.target.audience
    for what, aud in (
        (f"an ID-JAG with aud {_OTHER_AS!r}", _OTHER_AS),
        (f"an ID-JAG with aud [{issuer!r}, {_OTHER_AS!r}]", [issuer, _OTHER_AS]),
    ):
        assertion = idp_signer(_fresh(claims, aud=aud), typ=ID_JAG_TYP)
        expect_refused(verdict, rid, grants.redeem(assertion, what), what)
    single = idp_signer(_fresh(claims, aud=[issuer]), typ=ID_JAG_TYP)
    response = grants.redeem(single, "an ID-JAG with aud as a one-element array")
    if issued(response) is None:
        verdict.note(
            f"an ID-JAG with aud [{issuer!r}] (a one-element array) got {describe(response)}; "
            "IDJAG allows that form (refusing it is strict, not unsafe)"
        )
    if grants.token_endpoint != issuer:
        at_endpoint = idp_signer(_fresh(claims, aud=grants.token_endpoint), typ=ID_JAG_TYP)
        response = grants.redeem(at_endpoint, "an ID-JAG with aud = the token endpoint URL")
        if issued(response) is not None:
            verdict.note(
                "an ID-JAG addressed to the token endpoint URL is accepted: RFC 7523 allows that "
                "audience, the ID-JAG profile requires the issuer (lenient, AMB-IDJAG-PROFILE)"
            )


@pytest.mark.requirement("IDJAG-RAS-CLIENT-MATCH")
def test_assertion_is_bound_to_its_client(grants: Grants, verdict: Verdict) -> None:
    """Only the authenticated client the ID-JAG names redeems it (IDJAG §4.4.1, §8.1)."""
    rid = "IDJAG-RAS-CLIENT-MATCH"
    grants.control()
    other = grants.clients.other_ras
    if other is None:
        verdict.note("no second resource AS client (id_jag.other_ras_client): case skipped")
    else:
        what = f"an ID-JAG for {grants.clients.ras.client_id} presented by {other.client_id}"
        response = grants.redeem(grants.mint(), what, client=other)
        expect_refused(verdict, rid, response, what)
    ras = grants.clients.ras
    if ras.client_secret is None:
        verdict.note("the resource AS client has no secret: the unauthenticated case is skipped")
        return
    what = f"an ID-JAG presented with client_id={ras.client_id} and no client authentication"
    response = grants.redeem(grants.mint(), what, client=ras.without_secret())
    expect_refused(verdict, rid, response, what, ("invalid_client",), (401, 400))


@pytest.mark.requirement("IDJAG-RAS-EXPIRY")
def test_assertion_validity_window(
    grants: Grants, idp_signer: Callable[..., str], verdict: Verdict
) -> None:
    """Expired and not-yet-valid ID-JAGs are refused (RFC 7523 §3 items 4-6)."""
    claims = jwt.claims(grants.mint("a fresh ID-JAG as claims template"))
    _signed_control(grants, idp_signer, claims)
    now = int(time.time())
    for what, changes in (
        ("an ID-JAG that expired five minutes ago", {"iat": now - 600, "exp": now - 300}),
        ("an ID-JAG issued an hour in the future", {"iat": now + _HOUR, "exp": now + _HOUR + 300}),
        (
            "an ID-JAG not valid before an hour from now",
            {"nbf": now + _HOUR, "exp": now + 2 * _HOUR},
        ),
    ):
        assertion = idp_signer(_fresh(claims, **changes), typ=ID_JAG_TYP)
        expect_refused(verdict, "IDJAG-RAS-EXPIRY", grants.redeem(assertion, what), what)


@pytest.mark.requirement("IDJAG-RAS-JTI-REPLAY")
def test_assertion_is_single_use(grants: Grants, verdict: Verdict) -> None:
    """An ID-JAG redeemed once is refused the second time (MCP-EMA §7.4.2, RFC 7523 §3 item 7)."""
    verdict.note(
        "judged by the MCP enterprise-managed authorization reading (replay detection is "
        "required); the IETF draft lets a client re-present an unexpired ID-JAG, and a profile "
        "may relax this requirement's level"
    )
    token = grants.control()
    what = "the same ID-JAG redeemed a second time"
    expect_refused(verdict, "IDJAG-RAS-JTI-REPLAY", grants.redeem(token, what), what)


@pytest.mark.requirement("IDJAG-RAS-JTI-RACE")
def test_concurrent_redemptions_yield_one_token(grants: Grants, verdict: Verdict) -> None:
    """Five redemptions of one fresh ID-JAG sent at the same moment: at most one succeeds, as
    a replay check and its record must be one step (MCP-EMA §7.4.2, RFC 7523 §3 item 7)."""
    token = grants.mint()
    responses = concurrently(
        _RACERS,
        lambda n: grants.redeem(token, f"redemption {n + 1} of {_RACERS} of one ID-JAG, at once"),
    )
    successes = sum(1 for response in responses if issued(response) is not None)
    verdict.precondition(
        successes, f"none of {_RACERS} concurrent redemptions of a fresh ID-JAG succeeded"
    )
    what = "the same ID-JAG redeemed once more, after the concurrent redemptions"
    if issued(grants.redeem(token, what)) is not None:
        pytest.skip(
            "the resource AS accepts even a sequential replay of an ID-JAG "
            "(IDJAG-RAS-JTI-REPLAY), so there is no replay check for a race to defeat"
        )
    verdict.expect(
        "IDJAG-RAS-JTI-RACE",
        successes <= 1,
        f"{successes} of {_RACERS} concurrent redemptions of one ID-JAG got an access token",
    )


@pytest.mark.requirement("IDJAG-RAS-SCOPE-RESOURCE")
def test_grant_stays_within_the_id_jag(
    request: pytest.FixtureRequest,
    run: Run,
    grants: Grants,
    known_good: Redemption,
    verdict: Verdict,
) -> None:
    """The access token has at most the ID-JAG's scopes, its resource as audience and its
    user as subject; an unserved resource is invalid_grant (IDJAG §3, §4.4.1)."""
    rid = "IDJAG-RAS-SCOPE-RESOURCE"
    body = _redeemed(known_good, verdict)
    source = jwt.claims(known_good.id_jag)
    token = str(body["access_token"])
    if jwt.is_jwt(token):
        at = jwt.claims(token)
        resource = _resource_of(source)
        if resource is None:
            verdict.note("the ID-JAG names no resource; the token audience is not judged")
        else:
            verdict.expect(
                rid,
                audiences(at.get("aud")) == [resource],
                f"the access token for an ID-JAG with resource {resource!r} has aud "
                f"{at.get('aud')!r}",
            )
        verdict.expect(
            rid,
            at.get("sub") == source.get("sub"),
            f"the access token's sub is {at.get('sub')!r}, the ID-JAG's {source.get('sub')!r}",
        )
    else:
        verdict.note("the access token is opaque: its audience and subject are not judged")

    fresh = grants.mint()
    carried = scopes(jwt.claims(fresh).get("scope"))
    requested = " ".join([*sorted(carried), _extra_scope(run, carried)])
    what = f"an ID-JAG with scope {' '.join(sorted(carried))!r} redeemed with scope={requested!r}"
    response = grants.redeem(fresh, what, scope=requested)
    granted_body = issued(response)
    if granted_body is None:
        expect_refused(verdict, rid, response, what, ("invalid_scope", "invalid_grant"))
    else:
        stated = granted_body.get("scope")
        granted_token = str(granted_body["access_token"])
        if not isinstance(stated, str) and jwt.is_jwt(granted_token):
            stated = jwt.claims(granted_token).get("scope")
        if verdict.expect(
            rid,
            isinstance(stated, str),
            f"{what}: 200 without a stated scope, so the client is told it got {requested!r}",
        ):
            verdict.expect(
                rid,
                scopes(stated) <= carried,
                f"{what}: granted {stated!r}, beyond the ID-JAG's scope",
            )

    signer = _optional_signer(request)
    if signer is None:
        verdict.note("no IdP test signer (id_jag.idp_test_signer): the resource case is skipped")
        return
    _signed_control(grants, signer, source)
    assertion = signer(_fresh(source, resource=_NOT_SERVED), typ=ID_JAG_TYP)
    what = f"an ID-JAG with resource {_NOT_SERVED!r}"
    expect_refused(verdict, rid, grants.redeem(assertion, what), what)


# --- the MCP server (MCP authorization "Token Handling"; MCP-EMA §5) -----------------------


@pytest.mark.requirement("IDJAG-RS-REJECTS-ASSERTIONS")
def test_mcp_server_refuses_idp_assertions(
    run: Run, known_good: Redemption, alice_id_token: str, verdict: Verdict
) -> None:
    """Neither an ID-JAG nor an ID token is an access token for the MCP server: 401 (MCP
    authorization "Token Handling", RFC 9068 §4)."""
    body = _redeemed(known_good, verdict)
    control = mcp.present(run, str(body["access_token"]), "known-good: the granted token")
    verdict.precondition(
        control.is_success,
        f"the MCP server answered {mcp.describe(control)} to the token granted for an ID-JAG",
    )
    for what, token in (
        ("the ID-JAG as a bearer token", known_good.id_jag),
        ("alice's ID token as a bearer token", alice_id_token),
    ):
        response = mcp.present(run, token, what)
        verdict.expect(
            "IDJAG-RS-REJECTS-ASSERTIONS",
            response.status_code == 401,
            f"{what} got {mcp.describe(response)}, not 401",
        )
