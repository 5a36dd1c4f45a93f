"""The token-exchange grant at the MCP server's authorization server (second hop, model 1).

The MCP server's own client (`exchange_client`) trades the access token alice gave the MCP
server for a token for a downstream resource. RFC 8693 §2.1 (request parameters), §2.2.1
(response), §2.2.2 (errors), §3 (token type identifiers) and §5 (security: validating the
subject token, not widening what it grants); RFC 8707 §2 (`resource`, `invalid_target`);
RFC 8414 §2 (`grant_types_supported`); RFC 6749 §5.2 (error codes); MCP 2025-11-25
authorization §Confused Deputy Problem and §Access Token Privilege Restriction (the downstream
token is for the downstream service only, and still acts for the user).

One known-good exchange is made per module and shared; a check that expects a refusal first
shows that exchange worked (else `error`), then sends it again with exactly one change.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conformance import mcp
from conformance.discovery import AuthorizationServer, Discovery, json_object
from conformance.evidence import Exchange
from conformance.fixtures import AttackerIssuer, Clients, Run
from conformance.flows import Flows, TokenSet
from conformance.http import recording
from conformance.oauth import jwt, token_exchange
from conformance.oauth.clients import Client, token_request
from conformance.oauth.token_exchange import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE
from conformance.oauth.token_responses import cache_directives
from conformance.second_hop import ExchangeTarget
from conformance.verdict import Verdict

Params = list[tuple[str, str]]

_UNKNOWN_TOKEN_TYPE = "urn:example:not-a-token-type"
_SAML2_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:saml2"
_UNSERVED_RESOURCE = "https://not-served.invalid/api"
_UNKNOWN_AUDIENCE = "urn:example:unknown-audience"
_ESCALATED_SCOPE = "conformance:escalated"
_EXPIRY_SLACK = 5  # seconds of clock difference tolerated between two tokens' `exp`
# RFC 8693 §3: the types that name an access token (a JWT access token is both).
_ACCESS_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)
_BEARER_TYPES = ("bearer", "dpop")

# --- the known-good exchange ---------------------------------------------------------------


@dataclass
class Attempt:
    """One exchange request's answer; `sent_at` bounds when a token in it was issued."""

    response: httpx.Response
    body: dict[str, Any] | None  # the successful token response, else None
    sent_at: float

    @property
    def token(self) -> str | None:
        return str(self.body["access_token"]) if self.body else None


@dataclass
class Exchanger:
    """Builds the known-good exchange request and sends it, or a variant of it."""

    run: Run
    client: Client
    endpoint: str
    target: ExchangeTarget
    subject: TokenSet  # alice's access token for the MCP server: the subject token
    control: Attempt  # the known-good exchange, made once
    exchanges: list[Exchange]  # alice's sign-in and the control exchange, as evidence

    def params(self, subject_token: str | None = None) -> Params:
        """The known-good request, optionally with another subject token."""
        return _known_good(subject_token or self.subject.access_token, self.target)

    def post(self, params: Params, note: str) -> Attempt:
        return _post(self.run, self.client, self.endpoint, params, note)

    def require_control(self, verdict: Verdict) -> dict[str, Any]:
        """Attach the known-good exchange as evidence; it must have worked, else `error`."""
        verdict.attach(self.exchanges)
        verdict.precondition(
            self.control.body,
            f"the known-good exchange ({self.describe_control()}) got "
            f"{token_exchange.describe(self.control.response)}",
        )
        assert self.control.body is not None
        return self.control.body

    def describe_control(self) -> str:
        scope = f", scope={self.target.scope!r}" if self.target.scope else ""
        return (
            f"client {self.client.client_id}, alice's access token as subject_token, "
            f"resource={self.target.resource}{scope}"
        )


def _known_good(subject_token: str, target: ExchangeTarget) -> Params:
    """The known-good exchange (RFC 8693 §2.1): an access token for the downstream target."""
    params = [
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", subject_token),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("resource", target.resource),
    ]
    if target.scope:
        params.append(("scope", target.scope))
    return params


def _post(run: Run, client: Client, endpoint: str, params: Params, note: str) -> Attempt:
    """A token-exchange request authenticated as `client`; issued tokens are remembered for
    redaction, whether or not the request should have succeeded."""
    sent_at = time.time()
    response = token_request(run.http, endpoint, client, params, note=note)
    body = json_object(response)
    if response.is_success and body:
        run.redactor.remember(body.get("access_token"))
        run.redactor.remember(body.get("refresh_token"))
    return Attempt(response, token_exchange.issued(response), sent_at)


@pytest.fixture(scope="module")
def exchanger(
    run: Run,
    flows: Flows,
    clients: Clients,
    exchange_client: Client,
    exchange_endpoint: str,
    exchange_target: ExchangeTarget,
) -> Exchanger:
    """Alice signs in (a fresh token, so it cannot expire mid-run), then the MCP server's
    client exchanges it once. A failed exchange is kept, not raised: TX-GRANT-SUPPORTED judges
    it, every other check turns it into a lost precondition."""
    with recording() as exchanges:
        subject = flows.tokens(clients.public, "alice")
        control = _post(
            run,
            exchange_client,
            exchange_endpoint,
            _known_good(subject.access_token, exchange_target),
            "known-good: token exchange",
        )
    return Exchanger(
        run, exchange_client, exchange_endpoint, exchange_target, subject, control, exchanges
    )


# --- helpers -------------------------------------------------------------------------------


def _without(params: Params, name: str) -> Params:
    return [(k, v) for k, v in params if k != name]


def _replaced(params: Params, name: str, value: str) -> Params:
    """`params` with every `name` set to `value` (appended when absent)."""
    if not any(k == name for k, _ in params):
        return [*params, (name, value)]
    return [(k, value if k == name else v) for k, v in params]


def _issued_a_token(response: httpx.Response) -> bool:
    body = json_object(response)
    return response.is_success and bool(body and body.get("access_token"))


def _expect_refused(
    verdict: Verdict,
    requirement: str,
    response: httpx.Response,
    what: str,
    preferred: str | None,
    tolerated: tuple[str, ...] = (),
) -> None:
    """`what` must be refused with 400 and an RFC 6749 §5.2 error (RFC 8693 §2.2.2).

    `preferred` is the defined code (None: any code will do). Another code in `tolerated`
    (`"*"`: any other code) holds in a tolerated variant; any other code violates, and so do
    a token, another status or a body without `error`.
    """
    got = token_exchange.describe(response)
    expected = f"400 error={preferred}" if preferred else "a 400 error"
    if _issued_a_token(response):
        verdict.fail(requirement, f"{what}: got {got}, expected {expected}")
        return
    code = token_exchange.error_code(response)
    if not verdict.expect(
        requirement,
        response.status_code == 400 and code is not None,
        f"{what}: got {got}, expected {expected}",
    ):
        return
    if preferred is None or code == preferred:
        return
    if "*" in tolerated or code in tolerated:
        verdict.tolerate(requirement, f"{what}: got {got}; {preferred} is the defined code")
        return
    verdict.fail(requirement, f"{what}: got {got}, expected {expected}")


def _refused(
    exchanger: Exchanger,
    verdict: Verdict,
    requirement: str,
    params: Params,
    what: str,
    preferred: str | None,
    tolerated: tuple[str, ...] = (),
) -> None:
    """Send a variant of the known-good request and expect it refused."""
    attempt = exchanger.post(params, what)
    _expect_refused(verdict, requirement, attempt.response, what, preferred, tolerated)


def _jwt_claims(token: str) -> dict[str, Any] | None:
    return jwt.claims(token) if jwt.is_jwt(token) else None


def _carried_scope(token: str) -> Any:
    """The scope a JWT carries (`scope`, else `scp`), None when opaque or stating none."""
    claims = _jwt_claims(token) or {}
    return claims.get("scope", claims.get("scp"))


def _fresh(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`claims`, currently valid, with a new `jti` (a replay cache must not interfere)."""
    now = int(time.time())
    fresh = {k: v for k, v in claims.items() if k != "nbf"}
    fresh.update(iat=now, exp=now + 300, jti=uuid.uuid4().hex)
    fresh.update(changes)
    return fresh


@pytest.mark.requirement("TX-GRANT-SUPPORTED")
def test_token_exchange_grant_is_accepted(exchanger: Exchanger, verdict: Verdict) -> None:
    """The MCP server's client exchanges alice's access token for a downstream token.

    RFC 8693 §2.1 (the grant and its parameters), §2.2.1 (a successful response).
    """
    verdict.attach(exchanger.exchanges)
    control = exchanger.control
    verdict.expect(
        "TX-GRANT-SUPPORTED",
        control.body is not None,
        f"grant_type={TOKEN_EXCHANGE} ({exchanger.describe_control()}, "
        f"subject_token_type={ACCESS_TOKEN_TYPE}) got "
        f"{token_exchange.describe(control.response)}, expected 200 with an access_token",
    )


@pytest.mark.requirement("TX-GRANT-ADVERTISED")
def test_token_exchange_grant_is_advertised(
    exchanger: Exchanger,
    discovery: Discovery,
    authorization_server: AuthorizationServer,
    verdict: Verdict,
) -> None:
    """An AS that accepts the token-exchange grant lists it in grant_types_supported.

    RFC 8414 §2 (`grant_types_supported`), RFC 8693 §2.1 (the grant type URN).
    """
    exchanger.require_control(verdict)
    if exchanger.endpoint != authorization_server.endpoint("token_endpoint"):
        pytest.skip(
            f"exchanges go to {exchanger.endpoint}, not the token endpoint of the MCP "
            "server's authorization server, whose metadata is the one discovered"
        )
    verdict.attach(discovery.exchanges)
    grants = authorization_server.metadata.get("grant_types_supported")
    verdict.expect(
        "TX-GRANT-ADVERTISED",
        isinstance(grants, list) and TOKEN_EXCHANGE in grants,
        f"the token-exchange grant works, but grant_types_supported is {grants!r}",
    )


# --- the subject token (RFC 8693 §2.1, §2.2.2) ---------------------------------------------


@pytest.mark.requirement("TX-SUBJECT-REQUIRED")
def test_subject_token_and_type_are_required(exchanger: Exchanger, verdict: Verdict) -> None:
    """An exchange without subject_token or subject_token_type is invalid_request.

    RFC 8693 §2.1 (both are REQUIRED), §2.2.2 (invalid_request); never a token for the
    client itself (a silent fallback to client credentials).
    """
    exchanger.require_control(verdict)
    for name in ("subject_token_type", "subject_token"):
        _refused(
            exchanger,
            verdict,
            "TX-SUBJECT-REQUIRED",
            _without(exchanger.params(), name),
            f"the known-good exchange without {name}",
            "invalid_request",
        )


@pytest.mark.requirement("TX-SUBJECT-TOKEN-TYPE")
def test_unsupported_subject_token_type_is_refused(exchanger: Exchanger, verdict: Verdict) -> None:
    """A subject_token_type that does not name the token sent is refused (invalid_request).

    RFC 8693 §2.1 (the token is validated according to its declared type), §2.2.2
    (invalid_request), §3 (type identifiers): an unknown URN, and SAML 2.0 for an access token.
    Another 400 error code is tolerated.
    """
    exchanger.require_control(verdict)
    for token_type in (_UNKNOWN_TOKEN_TYPE, _SAML2_TOKEN_TYPE):
        _refused(
            exchanger,
            verdict,
            "TX-SUBJECT-TOKEN-TYPE",
            _replaced(exchanger.params(), "subject_token_type", token_type),
            f"alice's access token declared subject_token_type={token_type}",
            "invalid_request",
            tolerated=("*",),
        )


def _optional_signer(request: pytest.FixtureRequest) -> Callable[..., str] | str:
    """The AS test signer, or why there is none (the other cases still run)."""
    try:
        signer: Callable[..., str] = request.getfixturevalue("token_signer")
    except pytest.skip.Exception as exc:
        return str(getattr(exc, "msg", "") or exc)
    return signer


@pytest.mark.requirement("TX-SUBJECT-VALIDATED")
def test_invalid_subject_tokens_are_refused(
    request: pytest.FixtureRequest,
    exchanger: Exchanger,
    attacker_issuer: AttackerIssuer,
    verdict: Verdict,
) -> None:
    """Expired, foreign, tampered or made-up subject tokens are refused (invalid_request).

    RFC 8693 §2.1 (the subject token is validated: signature, issuer, expiry), §2.2.2
    (invalid_request), §5; invalid_grant is tolerated (AMB-ERROR-CODE-VARIANTS).
    """
    exchanger.require_control(verdict)
    run, alice = exchanger.run, exchanger.subject.access_token
    cases: list[tuple[str, str]] = []  # (what, subject token)
    claims = _jwt_claims(alice)
    if claims is None:
        verdict.note(
            "alice's access token is opaque: the expired, foreign-key and tampered cases "
            "need a JWT to derive from, only the random-string case ran"
        )
    else:
        signer = _optional_signer(request)
        if isinstance(signer, str):
            verdict.note(f"the expired-token case did not run: {signer}")
        else:
            now = int(time.time())
            fresh = signer(_fresh(claims), typ="at+jwt")
            control = exchanger.post(
                exchanger.params(fresh), "known-good: alice's claims re-signed by the AS"
            )
            if control.body is None:
                verdict.note(
                    "the AS does not exchange alice's claims re-signed with its key "
                    f"({token_exchange.describe(control.response)}), so an expired token "
                    "signed the same way proves nothing: the expired-token case did not run"
                )
            else:
                expired = signer(_fresh(claims, iat=now - 7200, exp=now - 3600), typ="at+jwt")
                cases.append(("alice's access token, expired an hour ago", expired))
        foreign_key = attacker_issuer.key.sign(_fresh(claims))
        foreign_issuer = attacker_issuer.key.sign(_fresh(claims, iss=attacker_issuer.issuer))
        other = "bob" if claims.get("sub") != "bob" else "alice"
        tampered = jwt.with_claims(alice, sub=other)
        for token in (foreign_key, foreign_issuer, tampered):
            run.redactor.remember(token)
        cases += [
            ("alice's claims signed with a key the AS does not hold", foreign_key),
            (f"alice's claims issued by the untrusted {attacker_issuer.issuer}", foreign_issuer),
            (f"alice's access token with sub changed to {other!r} (signature kept)", tampered),
        ]
    cases.append(("a random string", secrets.token_urlsafe(32)))
    for what, token in cases:
        _refused(
            exchanger,
            verdict,
            "TX-SUBJECT-VALIDATED",
            exchanger.params(token),
            f"an exchange with subject_token = {what}",
            "invalid_request",
            tolerated=("invalid_grant",),
        )


def _introspected_active(exchanger: Exchanger, endpoint: str | None, token: str) -> bool | None:
    """RFC 7662 `active` for `token`, asked by the exchange client (a confidential client of
    the AS, as a resource server would ask); None when there is no answer to read."""
    if not endpoint:
        return None
    response = token_request(
        exchanger.run.http,
        endpoint,
        exchanger.client,
        [("token", token), ("token_type_hint", "access_token")],
        note="introspect the revoked access token",
    )
    body = json_object(response)
    active = body.get("active") if response.status_code == 200 and body else None
    return active if isinstance(active, bool) else None


@pytest.mark.requirement("TX-SUBJECT-VALIDATED")
def test_revoked_subject_token_is_refused(
    exchanger: Exchanger,
    flows: Flows,
    clients: Clients,
    authorization_server: AuthorizationServer,
    verdict: Verdict,
) -> None:
    """A subject token its issuer has revoked is refused (invalid_request).

    RFC 8693 §2.1 (validation includes revocation where the AS can know it), §2.2.2; RFC 7009
    §2.1 (revocation), RFC 7662 §2.2 (introspection confirms it took effect); invalid_grant
    is tolerated (AMB-ERROR-CODE-VARIANTS).
    """
    exchanger.require_control(verdict)
    revocation = authorization_server.endpoint("revocation_endpoint")
    if not revocation:
        pytest.skip("the authorization server advertises no revocation_endpoint")
    victim = flows.tokens(clients.public, "alice")
    verdict.attach(victim.exchanges)
    control = exchanger.post(
        exchanger.params(victim.access_token), "known-good: exchange a second token of alice's"
    )
    verdict.precondition(
        control.body,
        f"exchanging another fresh token of alice's got "
        f"{token_exchange.describe(control.response)}",
    )
    revoked = token_request(
        flows.http,
        revocation,
        clients.public,
        [("token", victim.access_token), ("token_type_hint", "access_token")],
        note="revoke alice's second access token",
    )
    verdict.precondition(
        revoked.status_code == 200, f"revoking an access token got {revoked.status_code}"
    )
    active = _introspected_active(
        exchanger, authorization_server.endpoint("introspection_endpoint"), victim.access_token
    )
    if active is not False:
        pytest.skip(
            "revocation of the access token could not be confirmed by introspection "
            f"(active={active!r}): the AS may not revoke access tokens (RFC 7009 §2.1)"
        )
    _refused(
        exchanger,
        verdict,
        "TX-SUBJECT-VALIDATED",
        exchanger.params(victim.access_token),
        "an exchange with subject_token = alice's access token after its revocation",
        "invalid_request",
        tolerated=("invalid_grant",),
    )


@pytest.mark.requirement("TX-SUBJECT-AUDIENCE-BOUND")
def test_subject_token_for_another_resource_is_refused(
    exchanger: Exchanger, flows: Flows, clients: Clients, second_resource: str, verdict: Verdict
) -> None:
    """A subject token alice obtained for another resource is not exchanged.

    Only tokens addressed to the requesting client (the MCP server) are: RFC 8693 §5; MCP
    2025-11-25 authorization §Confused Deputy Problem. Any 400 refusal will do.
    """
    exchanger.require_control(verdict)
    elsewhere = flows.tokens(clients.public, "alice", resource=second_resource)
    verdict.attach(elsewhere.exchanges)
    claims = _jwt_claims(elsewhere.access_token)
    if claims is not None:
        audiences = token_exchange.audiences(claims.get("aud"))
        verdict.precondition(
            exchanger.run.mcp_url not in audiences,
            f"alice's token requested with resource={second_resource} has aud {audiences}, "
            "which names the MCP server: there is no token for another resource to test with",
        )
    _refused(
        exchanger,
        verdict,
        "TX-SUBJECT-AUDIENCE-BOUND",
        exchanger.params(elsewhere.access_token),
        f"an exchange with subject_token = alice's token for {second_resource}",
        None,
    )


# --- the actor token (RFC 8693 §2.1) -------------------------------------------------------


@pytest.mark.requirement("TX-ACTOR-PAIRING")
def test_actor_token_and_type_come_together(exchanger: Exchanger, verdict: Verdict) -> None:
    """actor_token without actor_token_type, or the type alone, is invalid_request.

    RFC 8693 §2.1 (actor_token_type is REQUIRED with actor_token and MUST NOT be sent
    without it), §2.2.2 (invalid_request).
    """
    exchanger.require_control(verdict)
    for extra, what in (
        (("actor_token", exchanger.subject.access_token), "actor_token without actor_token_type"),
        (("actor_token_type", ACCESS_TOKEN_TYPE), "actor_token_type without actor_token"),
    ):
        _refused(
            exchanger,
            verdict,
            "TX-ACTOR-PAIRING",
            [*exchanger.params(), extra],
            f"the known-good exchange plus {what}",
            "invalid_request",
        )


# --- the target (RFC 8693 §2.2.2, RFC 8707 §2) ---------------------------------------------


@pytest.mark.requirement("TX-INVALID-TARGET")
def test_unknown_target_is_invalid_target(exchanger: Exchanger, verdict: Verdict) -> None:
    """A resource or audience the AS will not issue tokens for is invalid_target.

    RFC 8693 §2.2.2 (invalid_target), RFC 8707 §2; the code itself is what is judged.
    """
    exchanger.require_control(verdict)
    known_good = exchanger.params()
    for params, what in (
        (
            _replaced(known_good, "resource", _UNSERVED_RESOURCE),
            f"the known-good exchange with resource={_UNSERVED_RESOURCE}",
        ),
        (
            [*_without(known_good, "resource"), ("audience", _UNKNOWN_AUDIENCE)],
            f"the known-good exchange with audience={_UNKNOWN_AUDIENCE} instead of resource",
        ),
    ):
        _refused(exchanger, verdict, "TX-INVALID-TARGET", params, what, "invalid_target")


# --- the response and the issued token (RFC 8693 §2.2.1) -----------------------------------


@pytest.mark.requirement("TX-RESPONSE-SHAPE")
def test_exchange_response_has_required_members(exchanger: Exchanger, verdict: Verdict) -> None:
    """The exchange response has access_token, issued_token_type, token_type and no-store.

    RFC 8693 §2.2.1 (members), §3 (issued_token_type names an access token here, so
    token_type is Bearer or DPoP); OAuth 2.1 §3.2.3 (Cache-Control: no-store).
    """
    body = exchanger.require_control(verdict)
    rid = "TX-RESPONSE-SHAPE"
    token = body.get("access_token")
    verdict.expect(
        rid,
        isinstance(token, str) and bool(token),
        f"`access_token` is not a non-empty string: {type(token).__name__}",
    )
    issued_type = body.get("issued_token_type")
    verdict.expect(
        rid,
        issued_type in _ACCESS_TOKEN_TYPES,
        f"an access token was requested and `issued_token_type` is {issued_type!r}, "
        f"not {ACCESS_TOKEN_TYPE} or {JWT_TOKEN_TYPE}",
    )
    token_type = body.get("token_type")
    verdict.expect(
        rid,
        isinstance(token_type, str) and token_type.lower() in _BEARER_TYPES,
        f"an access token was issued and `token_type` is {token_type!r}, not Bearer or DPoP",
    )
    response = exchanger.control.response
    verdict.expect(
        rid,
        "no-store" in cache_directives(response),
        f"the exchange response has Cache-Control {response.headers.get('cache-control')!r}, "
        "without no-store",
    )
    requested = exchanger.target.scope
    carried = _carried_scope(str(token)) if isinstance(token, str) else None
    if requested and body.get("scope") is None and carried is not None:
        # §2.2.1: `scope` may be left out only when it is the scope requested.
        verdict.expect(
            rid,
            token_exchange.scopes(carried) == token_exchange.scopes(requested),
            f"scope {requested!r} was requested, the token carries {carried!r}, and the "
            "response states no scope",
        )
    expires_in = body.get("expires_in")
    if expires_in is None:
        verdict.tolerate(rid, "the exchange response has no expires_in (RECOMMENDED)")


@pytest.mark.requirement("TX-RESULT-AUDIENCE")
def test_exchanged_token_is_for_the_target_only(exchanger: Exchanger, verdict: Verdict) -> None:
    """The exchanged token is for the requested resource alone; the MCP server refuses it.

    RFC 8693 §2.1 (`resource`), RFC 8707 §2 (audience restriction); MCP 2025-11-25
    authorization §Access Token Privilege Restriction; MCP Security Best Practices §Token
    Passthrough.
    """
    exchanger.require_control(verdict)
    run, resource = exchanger.run, exchanger.target.resource
    token = exchanger.control.token
    assert token is not None
    claims = _jwt_claims(token)
    if claims is None:
        verdict.note("the exchanged token is opaque: only its refusal by the MCP server is judged")
    else:
        audiences = token_exchange.audiences(claims.get("aud"))
        verdict.expect(
            "TX-RESULT-AUDIENCE",
            audiences == [resource],
            f"the token exchanged for resource={resource} has aud {claims.get('aud')!r}",
        )
    control = mcp.present(run, exchanger.subject.access_token, "known-good: alice's own token")
    verdict.precondition(
        control.is_success, f"the MCP server refused alice's own token ({mcp.describe(control)})"
    )
    response = mcp.present(run, token, "the exchanged token at the MCP server")
    verdict.expect(
        "TX-RESULT-AUDIENCE",
        response.status_code == 401,
        f"the token exchanged for {resource}, presented to the MCP server, got "
        f"{mcp.describe(response)}, expected 401",
    )


@pytest.mark.requirement("TX-USER-SCOPED-SUB")
def test_exchanged_token_acts_for_the_user(exchanger: Exchanger, verdict: Verdict) -> None:
    """The exchanged token acts for alice (her sub), not for the MCP server's own identity.

    RFC 8693 §1.1 (delegation and impersonation keep the subject), §2.2.1; MCP 2025-11-25
    authorization §Confused Deputy Problem.
    """
    exchanger.require_control(verdict)
    token = exchanger.control.token
    assert token is not None
    inbound, exchanged = _jwt_claims(exchanger.subject.access_token), _jwt_claims(token)
    if inbound is None or exchanged is None:
        which = "alice's access token" if inbound is None else "the exchanged token"
        pytest.skip(f"{which} is opaque: its subject cannot be read")
    sub, client_id = exchanged.get("sub"), exchanger.client.client_id
    verdict.expect(
        "TX-USER-SCOPED-SUB",
        sub != client_id,
        f"the exchanged token's sub is {sub!r}, the exchange client's own client_id: a "
        "service token, not alice's",
    )
    verdict.expect(
        "TX-USER-SCOPED-SUB",
        sub == inbound.get("sub"),
        f"the exchanged token's sub is {sub!r}, alice's access token's is {inbound.get('sub')!r}",
    )


@pytest.mark.requirement("TX-NO-PRIVILEGE-ESCALATION")
def test_scope_beyond_policy_is_not_granted(exchanger: Exchanger, verdict: Verdict) -> None:
    """A scope beyond the downstream policy is refused or left out, never granted.

    RFC 8693 §2.1 (`scope`), §2.2.1 (`scope` in the response), §5; RFC 6749 §3.3, §5.2
    (invalid_scope). Another 400 refusal is tolerated.
    """
    exchanger.require_control(verdict)
    rid = "TX-NO-PRIVILEGE-ESCALATION"
    scope = " ".join(s for s in (exchanger.target.scope, _ESCALATED_SCOPE) if s)
    what = f"the known-good exchange with scope={scope!r}"
    attempt = exchanger.post(_replaced(exchanger.params(), "scope", scope), what)
    if attempt.body is None:
        if _issued_a_token(attempt.response):
            got = token_exchange.describe(attempt.response)
            verdict.fail(rid, f"{what}: got {got}, not a 200 token response stating its scope")
            return
        _expect_refused(verdict, rid, attempt.response, what, "invalid_scope", tolerated=("*",))
        return
    stated = attempt.body.get("scope")
    carried = _carried_scope(str(attempt.body["access_token"]))
    if carried is not None and _ESCALATED_SCOPE in token_exchange.scopes(carried):
        verdict.fail(rid, f"{what}: got 200 and a token carrying scope {carried!r}")
    elif stated is not None:
        verdict.expect(
            rid,
            _ESCALATED_SCOPE not in token_exchange.scopes(stated),
            f"{what}: got 200 and the response grants scope {stated!r}",
        )
    elif carried is not None:
        # RFC 8693 §2.2.1: `scope` is REQUIRED in the response when it differs from the request.
        verdict.fail(
            rid,
            f"{what}: got 200 and a token narrowed to scope {carried!r}, but the response "
            "states no scope, so the client is told the request was granted",
        )
    else:
        verdict.fail(
            rid,
            f"{what}: got 200 stating no scope, which means the request was granted as asked",
        )


@pytest.mark.requirement("TX-LIFETIME-BOUNDED")
def test_exchanged_token_does_not_outlive_subject(exchanger: Exchanger, verdict: Verdict) -> None:
    """The exchanged token expires no later than the subject token it derives from.

    RFC 8693 §5 (the exchanged token must not widen what the subject token grants);
    OAuth 2.1 §7.1 (short-lived access tokens). Five seconds of clock slack.
    """
    body = exchanger.require_control(verdict)
    subject = _jwt_claims(exchanger.subject.access_token)
    subject_exp = subject.get("exp") if subject else None
    if not isinstance(subject_exp, int | float):
        pytest.skip("alice's access token states no expiry (opaque, or a JWT without exp)")
    token = str(body["access_token"])
    claims = _jwt_claims(token) or {}
    expires_in = body.get("expires_in")
    if isinstance(claims.get("exp"), int | float):
        expiry, source = float(claims["exp"]), f"its exp {claims['exp']}"
    elif isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        expiry = exchanger.control.sent_at + expires_in
        source = f"expires_in {expires_in} (about {int(expiry)})"
    else:
        verdict.fail(
            "TX-LIFETIME-BOUNDED",
            "the exchanged token states no lifetime (no JWT exp, no expires_in): it cannot "
            "be shown to end with its subject token",
        )
        return
    verdict.expect(
        "TX-LIFETIME-BOUNDED",
        expiry <= subject_exp + _EXPIRY_SLACK,
        f"the exchanged token expires at {source}, {int(expiry - subject_exp)} s after "
        f"alice's access token (exp {subject_exp})",
    )
