"""The authorization endpoint of the target authorization server, as MCP clients use it.

Checked against OAuth 2.1 (draft-ietf-oauth-v2-1-13 §2.3.2, §3.1, §4.1.1, §4.1.2, §4.1.2.1,
§10.1), RFC 7636 (PKCE), RFC 9207 (`iss`) and RFC 8707 (`resource`); redirect URI validation is
`test_redirect_uris`. Every negative check alters one thing in a known-good request from the
public test client. A request the server does not refuse outright is followed through the
user's sign-in (`conformance.attempts`), so that what finally reaches the redirect URI (a code,
an error, a token) is what gets judged; the clean path refuses before sign-in, so full
sign-ins stay few.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

import pytest

from conformance.attempts import (
    UNKNOWN_RESOURCE,
    Attempt,
    ErrorCase,
    accepts_any_verifier,
    attempt,
    error_cases,
    known_good,
)
from conformance.discovery import AuthorizationServer
from conformance.evidence import Exchange
from conformance.fixtures import Clients
from conformance.flows import Flows
from conformance.http import recording
from conformance.oauth.authorization import AuthorizationRequest, AuthorizationResponse
from conformance.oauth.pkce import Pkce, s256
from conformance.verdict import Verdict

# OAuth 2.1 §4.1.2 / §4.1.2.1: state is returned exactly as received. Characters that URL
# encoders treat differently (space vs "+", a literal "%20", "/" and "=").
_SPECIAL_STATE = "st -._~+/=%20"
_LONG_STATE = (_SPECIAL_STATE + secrets.token_hex(100))[:200]


def _judge_refusal(
    verdict: Verdict,
    requirement: str,
    refused: Attempt,
    what: str,
    errors: tuple[str, ...] = ("invalid_request",),
    tolerated: tuple[str, ...] = (),
) -> None:
    """No code; an error redirected to the client must carry one of `errors` (one of
    `tolerated` is a tolerated variant)."""
    if not verdict.expect(requirement, refused.code is None, f"{what}: {refused.describe()}"):
        return
    if refused.delivered is None:
        verdict.note(
            f"{what}: refused without redirecting to the client "
            f"({refused.describe()}; see AUTHZ-ERROR-REDIRECT)"
        )
    elif refused.error in tolerated:
        verdict.tolerate(
            requirement,
            f"{what}: error={refused.error!r}, where {' or '.join(errors)} is the defined answer",
        )
    else:
        verdict.expect(
            requirement,
            refused.error in errors,
            f"{what}: error={refused.error!r}, expected {' or '.join(errors)}",
        )


def _error_redirects(
    flows: Flows, cases: list[ErrorCase]
) -> tuple[list[tuple[ErrorCase, AuthorizationResponse]], list[str]]:
    """Each error case, sent without signing in: the error redirects that came back to the
    client, and the cases that were not answered by one."""
    redirected, not_redirected = [], []
    for case in cases:
        response = flows.send(case.request, note=f"authorization request with {case.label}")
        target = flows.redirect_target(response, case.request)
        delivered = AuthorizationResponse.parse(target) if target else None
        if delivered is not None and delivered.error:
            redirected.append((case, delivered))
        else:
            not_redirected.append(f"{case.label} ({response.status_code})")
    return redirected, not_redirected


@dataclass
class _SignedIn:
    request: AuthorizationRequest
    response: AuthorizationResponse
    exchanges: list[Exchange]


@pytest.fixture(scope="module")
def signed_in(flows: Flows, clients: Clients) -> _SignedIn:
    """One full known-good sign-in (resource = the MCP server) with a long, awkward state."""
    with recording() as exchanges:
        request = flows.request(clients.public).with_param("state", _LONG_STATE)
        response = flows.authorize(request)
    return _SignedIn(request, response, exchanges)


# --- PKCE (OAuth 2.1 §4.1.1, §4.1.2.1; RFC 7636 §4.2, §4.4.1) ---


@pytest.mark.requirement("AUTHZ-PKCE-REQUIRED")
def test_request_without_code_challenge_is_refused(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """A public client's request without code_challenge gets no code (OAuth 2.1 §4.1.1)."""
    good = known_good(flows, clients.public)
    refused = attempt(
        flows,
        good.without("code_challenge", "code_challenge_method"),
        "authorization request without PKCE",
    )
    verdict.expect(
        "AUTHZ-PKCE-REQUIRED",
        refused.code is None,
        f"a request without code_challenge was accepted: {refused.describe()}",
    )
    if refused.delivered is not None and refused.error not in (None, "invalid_request"):
        verdict.tolerate(
            "AUTHZ-PKCE-REQUIRED", f"the refusal used error={refused.error!r}, not invalid_request"
        )


@pytest.mark.requirement("AUTHZ-PKCE-REQUIRED")
def test_s256_code_is_not_redeemable_with_the_challenge(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """An S256 code is not redeemed with the challenge as verifier (RFC 7636 §4.6)."""
    request = flows.request(clients.public)
    assert request.pkce is not None
    code = flows.code_for(request)
    as_plain = flows.redeem(
        clients.public,
        code,
        request,
        verifier=request.pkce.challenge,
        note="token request, the challenge sent as verifier",
    )
    if flows.token_body(as_plain) is None:
        proper = flows.redeem(clients.public, code, request, note="token request, real verifier")
        if flows.token_body(proper) is None:
            verdict.note(
                f"after the refused attempt the real verifier got {proper.status_code} "
                "too (the code may be invalidated by a failed attempt)"
            )
        return
    # Accepted: S256 treated as plain, or no verification at all (TOKEN-PKCE-VERIFY)?
    if accepts_any_verifier(flows, clients.public):
        verdict.note(
            "the token endpoint accepts any code_verifier (judged by TOKEN-PKCE-VERIFY), "
            "so whether S256 is treated as plain cannot be told"
        )
        return
    verdict.fail(
        "AUTHZ-PKCE-REQUIRED",
        "a code issued for an S256 challenge was redeemed with the challenge string "
        "as code_verifier (S256 treated as plain)",
    )


@pytest.mark.requirement("AUTHZ-PKCE-METHOD-UNSUPPORTED")
def test_unknown_code_challenge_method_is_refused(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """code_challenge_method=S512 gets invalid_request and no code (RFC 7636 §4.4.1)."""
    good = known_good(flows, clients.public)
    refused = attempt(
        flows,
        good.with_param("code_challenge_method", "S512"),
        "authorization request, code_challenge_method=S512",
    )
    _judge_refusal(verdict, "AUTHZ-PKCE-METHOD-UNSUPPORTED", refused, "code_challenge_method=S512")


@pytest.mark.requirement("AUTHZ-PKCE-PLAIN")
def test_plain_code_challenge_method_is_refused(
    flows: Flows, clients: Clients, authorization_server: AuthorizationServer, verdict: Verdict
) -> None:
    """code_challenge_method=plain, or none (RFC 7636 §4.3: plain), is refused (OAuth 2.1
    §4.1.1, RFC 9700 §2.1.1)."""
    good = known_good(flows, clients.public)
    assert good.pkce is not None
    plain = good.with_param("code_challenge", good.pkce.verifier)
    explicit = attempt(
        flows,
        plain.with_param("code_challenge_method", "plain"),
        "authorization request, code_challenge_method=plain",
    )
    advertised = authorization_server.metadata.get("code_challenge_methods_supported")
    message = f"code_challenge_method=plain was accepted: {explicit.describe()}"
    if isinstance(advertised, list) and "plain" not in advertised:
        message += f" although the metadata lists only {advertised} (contradicts its advertisement)"
    if (
        verdict.expect("AUTHZ-PKCE-PLAIN", explicit.code is None, message)
        and explicit.delivered is not None
        and explicit.error != "invalid_request"
    ):
        verdict.tolerate(
            "AUTHZ-PKCE-PLAIN",
            f"plain was refused with error={explicit.error!r}, not invalid_request",
        )
    omitted = attempt(
        flows,
        plain.without("code_challenge_method"),
        "authorization request without code_challenge_method (RFC 7636 §4.3: plain)",
    )
    if omitted.code is None:
        return
    # Accepted: plain (the RFC 7636 default) only if the challenge itself redeems the code.
    redeemed = flows.redeem(
        clients.public,
        omitted.code,
        plain,
        verifier=good.pkce.verifier,
        note="token request, the challenge itself as code_verifier",
    )
    if flows.token_body(redeemed) is None:
        verdict.note(
            "a request without code_challenge_method was accepted, but its code was not "
            "redeemable with the challenge itself (the method was not taken as plain)"
        )
        return
    verdict.fail(
        "AUTHZ-PKCE-PLAIN",
        "a request without code_challenge_method was accepted and its code redeemed with the "
        "challenge itself as code_verifier (plain PKCE)",
    )


def _malformed_challenges(verifier: str) -> list[tuple[str, str, bool]]:
    """S256 challenges no verifier can produce: (label, challenge, outside the grammar).

    OAuth 2.1 Appendix A.18: code-challenge = 43*128unreserved. An S256 challenge is moreover
    BASE64URL(SHA-256), exactly 43 characters of the base64url alphabet (RFC 7636 §4.2).
    """
    challenge = s256(verifier)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return [
        ("3 characters", "abc", True),
        ("42 characters", challenge[:-1], True),
        ("129 characters", (challenge * 4)[:129], True),
        ("standard base64 with padding", base64.b64encode(digest).decode("ascii"), True),
        ("128 unreserved characters", (challenge * 3)[:128], False),
        ("43 characters with '.' and '~'", challenge[:41] + ".~", False),
    ]


@pytest.mark.requirement("AUTHZ-PKCE-CHALLENGE-SYNTAX")
def test_malformed_s256_challenge_is_refused(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """An S256 code_challenge that is not 43 base64url characters gets invalid_request and no
    code (OAuth 2.1 §4.1.1, §4.1.2.1, Appendix A.18; RFC 7636 §4.2)."""
    good = known_good(flows, clients.public)
    assert good.pkce is not None
    for label, challenge, outside_grammar in _malformed_challenges(good.pkce.verifier):
        refused = attempt(
            flows,
            good.with_param("code_challenge", challenge),
            f"authorization request, S256 code_challenge of {label}",
        )
        what = f"an S256 code_challenge of {label}"
        if outside_grammar or refused.code is None:
            _judge_refusal(verdict, "AUTHZ-PKCE-CHALLENGE-SYNTAX", refused, what)
        else:
            verdict.tolerate(
                "AUTHZ-PKCE-CHALLENGE-SYNTAX",
                f"{what} was accepted: within the code_challenge grammar, but no SHA-256 "
                "value (strict reading)",
            )


# --- required parameters (OAuth 2.1 §2.3.2, §4.1.1, §4.1.2.1) ---


@pytest.mark.requirement("AUTHZ-REQUIRED-PARAMS")
def test_missing_required_parameters_are_refused(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Without response_type, or without redirect_uri when several are registered, no code
    (OAuth 2.1 §4.1.1, §2.3.2). A missing client_id is judged by the no-redirect check, a
    missing code_challenge by AUTHZ-PKCE-REQUIRED."""
    good = known_good(flows, clients.public)
    refused = attempt(
        flows, good.without("response_type"), "authorization request, no response_type"
    )
    _judge_refusal(
        verdict,
        "AUTHZ-REQUIRED-PARAMS",
        refused,
        "no response_type",
        tolerated=("unsupported_response_type",),
    )
    if len(clients.public.redirect_uris) < 2:
        verdict.note("the public test client has one redirect URI: redirect_uri may be omitted")
        return
    refused = attempt(flows, good.without("redirect_uri"), "authorization request, no redirect_uri")
    what = f"no redirect_uri, {len(clients.public.redirect_uris)} registered"
    if (
        verdict.expect(
            "AUTHZ-REQUIRED-PARAMS", refused.code is None, f"{what}: {refused.describe()}"
        )
        and refused.delivered is not None
    ):
        # §4.1.2.1: a missing redirect URI is shown to the user, never redirected.
        verdict.tolerate(
            "AUTHZ-REQUIRED-PARAMS",
            f"{what}: the error was redirected to a registered URI ({refused.describe()}), "
            "not shown to the user",
        )


# --- the authorization response (OAuth 2.1 §4.1.2, §4.1.2.1; RFC 9207) ---


@pytest.mark.requirement("AUTHZ-STATE-ECHO")
def test_state_is_echoed_on_success(signed_in: _SignedIn, verdict: Verdict) -> None:
    """A 200-character state with reserved characters comes back exactly (OAuth 2.1 §4.1.2)."""
    verdict.attach(signed_in.exchanges)
    verdict.precondition(
        signed_in.response.code,
        f"the known-good sign-in got no code (error={signed_in.response.error!r})",
    )
    returned = signed_in.response.query.get("state", [])
    verdict.expect(
        "AUTHZ-STATE-ECHO",
        returned == [_LONG_STATE],
        f"sent state {_LONG_STATE!r}, got back {returned!r}",
    )


@pytest.mark.requirement("AUTHZ-STATE-ECHO")
def test_state_is_echoed_on_error_redirect(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Every error redirect carries the exact state the client sent (OAuth 2.1 §4.1.2.1)."""
    good = known_good(flows, clients.public)
    cases = error_cases(good.with_param("state", _SPECIAL_STATE))
    cases += error_cases(good.with_param("state", _LONG_STATE))[:1]
    redirected, not_redirected = _error_redirects(flows, cases)
    verdict.precondition(
        redirected,
        f"no request error was redirected to the client ({', '.join(not_redirected)}; "
        "see AUTHZ-ERROR-REDIRECT)",
    )
    for case, response in redirected:
        returned = response.query.get("state", [])
        verdict.expect(
            "AUTHZ-STATE-ECHO",
            returned == [case.request.state],
            f"error redirect for {case.label}: sent state {case.request.state!r}, "
            f"got back {returned!r}",
        )


@dataclass
class _Responses:
    """Authorization responses to judge `iss` on: the known-good sign-in and error redirects."""

    success: AuthorizationResponse
    errors: list[tuple[ErrorCase, AuthorizationResponse]]
    not_redirected: list[str]
    exchanges: list[Exchange]

    def judged(self, verdict: Verdict) -> list[tuple[str, AuthorizationResponse]]:
        """Every response as (kind, response), its exchanges attached as evidence."""
        verdict.attach(self.exchanges)
        verdict.precondition(
            self.success.code, f"the known-good sign-in got no code (error={self.success.error!r})"
        )
        if self.not_redirected:
            skipped = ", ".join(self.not_redirected)
            verdict.note(f"not answered by an error redirect, so not judged: {skipped}")
        return [
            ("successful", self.success),
            *((f"error ({case.label})", r) for case, r in self.errors),
        ]


@pytest.fixture(scope="module")
def authorization_responses(flows: Flows, clients: Clients, signed_in: _SignedIn) -> _Responses:
    """The known-good sign-in's response and the error redirect of every error case."""
    with recording() as exchanges:
        good = known_good(flows, clients.public)
        errors, not_redirected = _error_redirects(flows, error_cases(good))
    return _Responses(
        signed_in.response, errors, not_redirected, [*signed_in.exchanges, *exchanges]
    )


@pytest.mark.requirement("AUTHZ-ISS-PARAM")
def test_iss_is_returned_in_authorization_responses(
    authorization_responses: _Responses, verdict: Verdict
) -> None:
    """The successful response and every error redirect carry iss (RFC 9207 §2)."""
    for kind, response in authorization_responses.judged(verdict):
        verdict.expect(
            "AUTHZ-ISS-PARAM", "iss" in response.query, f"the {kind} redirect carries no iss"
        )


@pytest.mark.requirement("AUTHZ-ISS-MATCHES-ISSUER")
def test_iss_is_the_issuer_identifier(
    authorization_responses: _Responses,
    authorization_server: AuthorizationServer,
    verdict: Verdict,
) -> None:
    """Wherever iss is returned, success or error, it is identical to the issuer identifier
    (RFC 9207 §2.3; compared as RFC 9207 §2.4 clients compare it, without normalisation)."""
    responses = authorization_responses.judged(verdict)
    issuer = authorization_server.identifier
    if authorization_server.metadata.get("issuer") != issuer:
        verdict.note(
            f"the metadata issuer {authorization_server.metadata.get('issuer')!r} differs from "
            f"the issuer identifier {issuer!r} (judged by ASM-ISSUER-IDENTICAL)"
        )
    carrying = [(kind, r.query["iss"]) for kind, r in responses if "iss" in r.query]
    if not carrying:
        verdict.note("no authorization response carries iss (judged by AUTHZ-ISS-PARAM)")
    for kind, values in carrying:
        verdict.expect(
            "AUTHZ-ISS-MATCHES-ISSUER",
            values == [issuer],
            f"the {kind} redirect carries iss={values!r}, the issuer identifier is {issuer!r}",
        )


@pytest.mark.requirement("AUTHZ-ERROR-REDIRECT")
def test_request_errors_are_redirected_to_the_client(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Request errors go back by 302/303 with a defined error code (OAuth 2.1 §4.1.2.1)."""
    good = known_good(flows, clients.public)
    for case in error_cases(good):
        what = case.label
        refused = attempt(flows, case.request, f"authorization request with {what}")
        if refused.code is not None:
            verdict.note(f"{what} was accepted (judged by the requirement for that parameter)")
            continue
        if refused.delivered is None:
            content_type = refused.first.headers.get("content-type", "")
            shown = " (a JSON body shown to the browser)" if "json" in content_type else ""
            verdict.fail(
                "AUTHZ-ERROR-REDIRECT",
                f"{what}: {refused.describe()}{shown}, not a redirect to the client",
            )
            continue
        if not refused.signed_in:
            verdict.expect(
                "AUTHZ-ERROR-REDIRECT",
                refused.first.status_code in (302, 303),
                f"{what}: redirected with {refused.first.status_code}, not 302/303",
            )
        verdict.expect(
            "AUTHZ-ERROR-REDIRECT",
            refused.error in case.errors,
            f"{what}: error={refused.error!r}, expected {' or '.join(case.errors)}",
        )


@pytest.mark.requirement("AUTHZ-NO-IMPLICIT")
def test_no_access_token_from_authorization_endpoint(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """response_type=token and "code token" yield no access token (OAuth 2.1 §10.1)."""
    good = known_good(flows, clients.public)
    for response_type in ("token", "code token"):
        refused = attempt(
            flows,
            good.with_param("response_type", response_type),
            f"authorization request, response_type={response_type}",
        )
        seen = [AuthorizationResponse.parse(refused.location)] if refused.location else []
        if refused.delivered is not None:
            seen.append(refused.delivered)
        leaked = any("access_token" in r.query or "access_token" in r.fragment for r in seen)
        verdict.expect(
            "AUTHZ-NO-IMPLICIT",
            not leaked,
            f"response_type={response_type}: an access_token was in the redirect",
        )
        if (
            not leaked
            and refused.delivered is not None
            and refused.error not in ("unsupported_response_type", "unauthorized_client")
        ):
            verdict.note(f"response_type={response_type}: {refused.describe()}")


@pytest.mark.requirement("AUTHZ-DUPLICATE-PARAMS")
def test_repeated_parameters_are_refused(flows: Flows, clients: Clients, verdict: Verdict) -> None:
    """Each protocol parameter, repeated, makes the request invalid, even with the same value
    twice (OAuth 2.1 §3.1, §4.1.2.1). `resource` may repeat (RFC 8707 §2)."""
    good = known_good(flows, clients.public)
    cases = [
        ("response_type", "code"),
        ("client_id", clients.second_public.client_id),
        ("code_challenge", Pkce.s256().challenge),
        ("code_challenge_method", "S256"),
        ("state", f"{good.state}-second"),
    ]
    scope = good.param("scope")
    if scope:
        cases.append(("scope", scope))
    for name, value in cases:
        refused = attempt(
            flows, good.repeated(name, value), f"authorization request, {name} repeated"
        )
        _judge_refusal(verdict, "AUTHZ-DUPLICATE-PARAMS", refused, f"{name} repeated")


@pytest.mark.requirement("AUTHZ-DUPLICATE-PARAMS")
def test_repeated_redirect_uri_is_refused(flows: Flows, clients: Clients, verdict: Verdict) -> None:
    """Two redirect_uri values get an error, no code (OAuth 2.1 §3.1, §4.1.2.1)."""
    good = known_good(flows, clients.public)
    second = next(
        (u for u in clients.public.redirect_uris if u != good.redirect_uri), good.redirect_uri
    )
    refused = attempt(
        flows, good.repeated("redirect_uri", second), "authorization request, redirect_uri repeated"
    )
    if (
        verdict.expect(
            "AUTHZ-DUPLICATE-PARAMS",
            refused.code is None,
            f"redirect_uri repeated: {refused.describe()}",
        )
        and refused.delivered is not None
    ):
        verdict.expect(
            "AUTHZ-DUPLICATE-PARAMS",
            refused.error == "invalid_request",
            f"redirect_uri repeated: error={refused.error!r}, expected invalid_request",
        )


# --- resource indicators (RFC 8707 §2) ---


@pytest.mark.requirement("AUTHZ-RESOURCE-PARAM")
def test_resource_naming_the_mcp_server_is_accepted(
    flows: Flows, signed_in: _SignedIn, verdict: Verdict
) -> None:
    """resource=<MCP server URL> is accepted and a code is issued (RFC 8707 §2)."""
    verdict.attach(signed_in.exchanges)
    verdict.precondition(
        signed_in.request.param("resource") == flows.mcp_url,
        "the known-good request does not carry resource",
    )
    verdict.expect(
        "AUTHZ-RESOURCE-PARAM",
        signed_in.response.code is not None,
        f"resource={flows.mcp_url} got no code (error={signed_in.response.error!r})",
    )


@pytest.mark.requirement("AUTHZ-RESOURCE-PARAM")
def test_invalid_resource_is_refused(flows: Flows, clients: Clients, verdict: Verdict) -> None:
    """A fragment, relative or unknown resource gets invalid_target, no code (RFC 8707 §2)."""
    good = known_good(flows, clients.public)
    for label, value in (
        ("with a fragment", f"{flows.mcp_url}#frag"),
        ("relative", "mcp"),
        ("unknown", UNKNOWN_RESOURCE),
    ):
        refused = attempt(
            flows, good.with_param("resource", value), f"authorization request, resource {label}"
        )
        _judge_refusal(
            verdict,
            "AUTHZ-RESOURCE-PARAM",
            refused,
            f"resource {label} ({value!r})",
            ("invalid_target",),
            tolerated=("invalid_request",),
        )
