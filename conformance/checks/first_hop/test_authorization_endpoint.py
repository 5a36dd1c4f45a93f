"""The authorization endpoint of the target authorization server, as MCP clients use it.

Checked against OAuth 2.1 (draft-ietf-oauth-v2-1-13 §2.3.1, §4.1.1, §4.1.2, §4.1.2.1, §7.12),
RFC 7636 (PKCE), RFC 9207 (`iss`), RFC 8707 (`resource`) and RFC 8252 §7.3 (loopback ports).
Every negative check alters one thing in a known-good request from the public test client.
A request the server does not refuse outright is followed through the user's sign-in, so that
what finally reaches the redirect URI (a code, an error, a token) is what gets judged; the
clean path refuses before sign-in, so full sign-ins stay few.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import pytest

from conformance.discovery import AuthorizationServer
from conformance.errors import PreconditionFailed
from conformance.evidence import Exchange
from conformance.fixtures import Clients, Run, register_client
from conformance.flows import Flows
from conformance.http import recording
from conformance.oauth.authorization import AuthorizationRequest, AuthorizationResponse
from conformance.oauth.clients import (
    Client,
    registration_metadata,
)
from conformance.oauth.pkce import Pkce
from conformance.verdict import Verdict

_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# OAuth 2.1 §4.1.2 / §4.1.2.1: state is returned exactly as received. Characters that URL
# encoders treat differently (space vs "+", a literal "%20", "/" and "=").
_SPECIAL_STATE = "st -._~+/=%20"
_LONG_STATE = (_SPECIAL_STATE + secrets.token_hex(100))[:200]
_LOOPBACK_PORT = 53117


@dataclass
class _Attempt:
    """What one authorization request led to: the direct answer and what reached the client."""

    request: AuthorizationRequest
    first: httpx.Response
    delivered: AuthorizationResponse | None  # parameters that reached the redirect URI
    signed_in: bool = False

    @property
    def code(self) -> str | None:
        return self.delivered.code if self.delivered else None

    @property
    def error(self) -> str | None:
        return self.delivered.error if self.delivered else None

    @property
    def location(self) -> str | None:
        if not self.first.is_redirect:
            return None
        return urljoin(self.request.endpoint, self.first.headers.get("location", ""))

    def describe(self) -> str:
        if self.code:
            return "a code was delivered to the redirect URI"
        if self.delivered is not None:
            return f"redirected to the client with error={self.error!r}"
        content_type = self.first.headers.get("content-type", "").split(";")[0]
        return f"answered {self.first.status_code} {content_type}".rstrip()


def _attempt(flows: Flows, request: AuthorizationRequest, note: str) -> _Attempt:
    """Send `request`; when it is not refused outright, sign in and see what reaches the client."""
    first = flows.send(request, note=note)
    target = flows.redirect_target(first, request)
    if target is not None:
        return _Attempt(request, first, AuthorizationResponse.parse(target))
    if first.status_code >= 400:
        return _Attempt(request, first, None)
    try:
        delivered = flows.authorize(request)
    except PreconditionFailed:  # the sign-in ended somewhere other than the redirect URI
        return _Attempt(request, first, None, signed_in=True)
    for part in (delivered.query, delivered.fragment):
        for token in part.get("access_token", []):
            flows.http.redactor.remember(token)
    return _Attempt(request, first, delivered, signed_in=True)


def _known_good(flows: Flows, client: Client) -> AuthorizationRequest:
    """A known-good request, shown not to be refused (sent once, without signing in)."""
    request = flows.request(client)
    response = flows.send(request, note="known-good authorization request")
    target = flows.redirect_target(response, request)
    error = AuthorizationResponse.parse(target).error if target else None
    Verdict.precondition(
        response.status_code < 400 and error is None,
        f"the known-good authorization request was refused "
        f"({response.status_code}, error={error!r})",
    )
    return request


def _judge_refusal(
    verdict: Verdict,
    requirement: str,
    attempt: _Attempt,
    what: str,
    errors: tuple[str, ...] = ("invalid_request",),
) -> None:
    """No code; an error redirected to the client must carry one of `errors`."""
    if not verdict.expect(requirement, attempt.code is None, f"{what}: {attempt.describe()}"):
        return
    if attempt.delivered is not None:
        verdict.expect(
            requirement,
            attempt.error in errors,
            f"{what}: error={attempt.error!r}, expected {' or '.join(errors)}",
        )
    else:
        verdict.note(
            f"{what}: refused without redirecting to the client "
            f"({attempt.describe()}; see AUTHZ-ERROR-REDIRECT)"
        )


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


# --- PKCE (OAuth 2.1 §4.1.1, §4.1.2.1; RFC 7636 §4.4.1) ---


@pytest.mark.requirement("AUTHZ-PKCE-REQUIRED")
def test_request_without_code_challenge_is_refused(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """A public client's request without code_challenge gets no code (OAuth 2.1 §4.1.1)."""
    good = _known_good(flows, clients.public)
    attempt = _attempt(
        flows,
        good.without("code_challenge", "code_challenge_method"),
        "authorization request without PKCE",
    )
    verdict.expect(
        "AUTHZ-PKCE-REQUIRED",
        attempt.code is None,
        f"a request without code_challenge was accepted: {attempt.describe()}",
    )
    if attempt.delivered is not None and attempt.error not in (None, "invalid_request"):
        verdict.tolerate(
            "AUTHZ-PKCE-REQUIRED", f"the refusal used error={attempt.error!r}, not invalid_request"
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
    if not _issued(flows, as_plain):
        proper = flows.redeem(clients.public, code, request, note="token request, real verifier")
        if not _issued(flows, proper):
            verdict.note(
                f"after the refused attempt the real verifier got {proper.status_code} "
                "too (the code may be invalidated by a failed attempt)"
            )
        return
    # Accepted: S256 treated as plain, or no verification at all (TOKEN-PKCE-VERIFY)?
    other = flows.request(clients.public)
    wrong = flows.redeem(
        clients.public,
        flows.code_for(other),
        other,
        verifier=Pkce.s256().verifier,
        note="token request, unrelated verifier",
    )
    if _issued(flows, wrong):
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


def _issued(flows: Flows, response: httpx.Response) -> bool:
    return flows.token_body(response) is not None


@pytest.mark.requirement("AUTHZ-PKCE-METHOD-UNSUPPORTED")
def test_unknown_code_challenge_method_is_refused(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """code_challenge_method=S512 gets invalid_request and no code (RFC 7636 §4.4.1)."""
    good = _known_good(flows, clients.public)
    attempt = _attempt(
        flows,
        good.with_param("code_challenge_method", "S512"),
        "authorization request, code_challenge_method=S512",
    )
    _judge_refusal(verdict, "AUTHZ-PKCE-METHOD-UNSUPPORTED", attempt, "code_challenge_method=S512")


@pytest.mark.requirement("AUTHZ-PKCE-PLAIN")
def test_plain_code_challenge_method_is_refused(
    flows: Flows, clients: Clients, authorization_server: AuthorizationServer, verdict: Verdict
) -> None:
    """code_challenge_method=plain is refused (OAuth 2.1 §4.1.1, RFC 9700 §2.1.1)."""
    good = _known_good(flows, clients.public)
    assert good.pkce is not None
    plain = good.with_param("code_challenge", good.pkce.verifier).with_param(
        "code_challenge_method", "plain"
    )
    attempt = _attempt(flows, plain, "authorization request, code_challenge_method=plain")
    advertised = authorization_server.metadata.get("code_challenge_methods_supported")
    message = f"code_challenge_method=plain was accepted: {attempt.describe()}"
    if isinstance(advertised, list) and "plain" not in advertised:
        message += f" although the metadata lists only {advertised} (contradicts its advertisement)"
    if (
        verdict.expect("AUTHZ-PKCE-PLAIN", attempt.code is None, message)
        and attempt.delivered is not None
        and attempt.error != "invalid_request"
    ):
        verdict.tolerate(
            "AUTHZ-PKCE-PLAIN",
            f"plain was refused with error={attempt.error!r}, not invalid_request",
        )


# --- redirect URIs (OAuth 2.1 §2.3.1, §4.1.1, §4.1.2.1, §7.12; RFC 8252 §7.3) ---


def _exact_match_variants(registered: str) -> list[tuple[str, str]]:
    """Near-miss variants of a registered redirect URI that exact matching refuses.

    A different port is left out for loopback URIs, where RFC 8252 §7.3 allows any port;
    another host entirely is the subject of the no-redirect check.
    """
    parts = urlsplit(registered)
    host = parts.hostname or ""
    base = registered.split("#", 1)[0]
    no_query = urlunsplit(parts._replace(query="", fragment=""))
    variants = [
        ("path suffix", urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/x"))),
        (
            "trailing slash",
            urlunsplit(parts._replace(path=parts.path + "/"))
            if not parts.path.endswith("/")
            else urlunsplit(parts._replace(path=parts.path[:-1])),
        ),
        ("extra query", f"{base}{'&' if parts.query else '?'}x=1"),
        ("fragment", f"{base}#f"),
    ]
    if parts.path.upper() != parts.path:
        variants.append(("path case", urlunsplit(parts._replace(path=parts.path.upper()))))
    if host not in _LOOPBACK_HOSTS:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
        variants.append(("other port", urlunsplit(parts._replace(netloc=f"{netloc}:{port + 1}"))))
        if not host.replace(".", "").isdigit():
            variants.append(("host case", no_query.replace(host, host.upper(), 1)))
    return variants


@pytest.mark.requirement("AUTHZ-REDIRECT-EXACT-MATCH")
def test_redirect_uri_variants_are_refused(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Near-miss variants of a registered redirect URI get no redirect (OAuth 2.1 §2.3.1)."""
    good = _known_good(flows, clients.public)
    for label, variant in _exact_match_variants(good.redirect_uri):
        if variant in clients.public.redirect_uris:
            continue
        attempt = _attempt(
            flows,
            good.with_param("redirect_uri", variant),
            f"authorization request, redirect_uri variant ({label})",
        )
        locations = [attempt.location, attempt.delivered.url if attempt.delivered else None]
        hit = next((u for u in locations if u and u.startswith(variant)), None)
        verdict.expect(
            "AUTHZ-REDIRECT-EXACT-MATCH",
            hit is None,
            f"{label} variant {variant!r}: redirected to {hit!r}",
        )
        verdict.expect(
            "AUTHZ-REDIRECT-EXACT-MATCH",
            attempt.code is None,
            f"{label} variant {variant!r}: {attempt.describe()}",
        )


def _redirects_to_origin(attempt: _Attempt, uri: str) -> bool:
    location = attempt.location
    if location is None:
        return False
    a, b = urlsplit(location), urlsplit(uri)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


@pytest.mark.requirement("AUTHZ-BAD-REDIRECT-NO-REDIRECT")
def test_unregistered_redirect_uri_is_not_redirected_to(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """An unregistered redirect_uri gets an error page, never a redirect (OAuth 2.1 §4.1.2.1)."""
    good = _known_good(flows, clients.public)
    attacker = "http://127.0.0.2:9/attacker-cb"
    attempt = _attempt(
        flows,
        good.with_param("redirect_uri", attacker),
        "authorization request, unregistered redirect_uri",
    )
    verdict.expect(
        "AUTHZ-BAD-REDIRECT-NO-REDIRECT",
        not _redirects_to_origin(attempt, attacker),
        f"an unregistered redirect_uri was redirected to: {attempt.location!r}",
    )
    verdict.expect(
        "AUTHZ-BAD-REDIRECT-NO-REDIRECT",
        attempt.code is None,
        f"an unregistered redirect_uri got a code: {attempt.describe()}",
    )
    verdict.note(f"unregistered redirect_uri: {attempt.describe()}")


@pytest.mark.requirement("AUTHZ-BAD-REDIRECT-NO-REDIRECT")
def test_unknown_client_is_not_redirected(flows: Flows, clients: Clients, verdict: Verdict) -> None:
    """An unknown client_id gets an error page, never a redirect (OAuth 2.1 §4.1.2.1)."""
    good = _known_good(flows, clients.public)
    unknown = good.with_param("client_id", f"unknown-{secrets.token_hex(8)}")
    attempt = _attempt(flows, unknown, "authorization request, unknown client_id")
    verdict.expect(
        "AUTHZ-BAD-REDIRECT-NO-REDIRECT",
        not _redirects_to_origin(attempt, good.redirect_uri),
        f"a request from an unknown client was redirected to {attempt.location!r}",
    )
    verdict.expect(
        "AUTHZ-BAD-REDIRECT-NO-REDIRECT",
        attempt.code is None,
        f"an unknown client got a code: {attempt.describe()}",
    )
    verdict.note(f"unknown client_id: {attempt.describe()}")


_LOOPBACK_REGISTERED = "http://127.0.0.1/callback"


@pytest.fixture(scope="module")
def loopback_client(run: Run, registration_endpoint: str | None, clients: Clients) -> Client:
    """A public client registered (RFC 7591) with one port-less loopback redirect URI."""
    if (urlsplit(clients.public.redirect_uri).hostname or "") not in _LOOPBACK_HOSTS:
        pytest.skip("the test clients' redirect URIs are not loopback URIs")
    if not registration_endpoint:
        pytest.skip("no registration endpoint to register a port-less loopback redirect URI")
    metadata = registration_metadata([_LOOPBACK_REGISTERED], "none")
    registration = register_client(
        run, registration_endpoint, metadata, "register a loopback client"
    )
    if registration.client is None:
        pytest.skip(
            f"registering a client with redirect URI {_LOOPBACK_REGISTERED} was refused "
            f"({registration.response.status_code})"
        )
    return registration.client


@pytest.mark.requirement("AUTHZ-LOOPBACK-PORT")
def test_loopback_redirect_uri_accepts_any_port(
    flows: Flows, loopback_client: Client, verdict: Verdict
) -> None:
    """A registered port-less loopback URI works with any port (RFC 8252 §7.3, OAuth 2.1 §4.1.1)."""
    good = _known_good(flows, loopback_client)
    with_port = f"http://127.0.0.1:{_LOOPBACK_PORT}/callback"
    attempt = _attempt(
        flows,
        good.with_param("redirect_uri", with_port),
        f"authorization request, loopback redirect_uri on port {_LOOPBACK_PORT}",
    )
    verdict.expect(
        "AUTHZ-LOOPBACK-PORT",
        attempt.code is not None,
        f"registered {_LOOPBACK_REGISTERED}, requested {with_port}: {attempt.describe()}",
    )


@pytest.mark.requirement("AUTHZ-LOOPBACK-PORT")
def test_loopback_redirect_uri_still_matches_path(
    flows: Flows, loopback_client: Client, verdict: Verdict
) -> None:
    """Any loopback port, but the path still matches exactly (OAuth 2.1 §4.1.1)."""
    good = _known_good(flows, loopback_client)
    other = f"http://127.0.0.1:{_LOOPBACK_PORT}/other"
    attempt = _attempt(
        flows,
        good.with_param("redirect_uri", other),
        "authorization request, loopback redirect_uri with another path",
    )
    verdict.expect(
        "AUTHZ-LOOPBACK-PORT",
        attempt.code is None and not (attempt.location or "").startswith(other),
        f"registered {_LOOPBACK_REGISTERED}, requested {other}: {attempt.describe()}",
    )


# --- the authorization response (OAuth 2.1 §4.1.2, §4.1.2.1; RFC 9207) ---


def _error_redirect(
    flows: Flows, request: AuthorizationRequest, note: str
) -> AuthorizationResponse:
    """The error redirect for `request`, which must be one (else the check cannot judge)."""
    response = flows.send(request, note=note)
    target = flows.redirect_target(response, request)
    Verdict.precondition(
        target is not None and AuthorizationResponse.parse(target).error,
        f"{note}: no error redirect to the client ({response.status_code}; "
        "see AUTHZ-ERROR-REDIRECT)",
    )
    assert target is not None
    return AuthorizationResponse.parse(target)


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
    """An error redirect carries the exact state the client sent (OAuth 2.1 §4.1.2.1)."""
    good = _known_good(flows, clients.public)
    for state in (_SPECIAL_STATE, _LONG_STATE):
        response = _error_redirect(
            flows,
            good.with_param("response_type", "foo").with_param("state", state),
            "response_type=foo",
        )
        returned = response.query.get("state", [])
        verdict.expect(
            "AUTHZ-STATE-ECHO",
            returned == [state],
            f"error redirect: sent state {state!r}, got back {returned!r}",
        )


@pytest.mark.requirement("AUTHZ-ISS-PARAM")
def test_iss_is_returned_in_authorization_responses(
    flows: Flows,
    clients: Clients,
    signed_in: _SignedIn,
    authorization_server: AuthorizationServer,
    verdict: Verdict,
) -> None:
    """Success and error redirects carry iss equal to the issuer identifier (RFC 9207 §2)."""
    verdict.attach(signed_in.exchanges)
    verdict.precondition(
        signed_in.response.code,
        f"the known-good sign-in got no code (error={signed_in.response.error!r})",
    )
    issuer = authorization_server.identifier
    responses = [("success", signed_in.response)]
    good = _known_good(flows, clients.public)
    bad = good.with_param("response_type", "foo")
    first = flows.send(bad, note="response_type=foo")
    target = flows.redirect_target(first, bad)
    if target is not None:
        responses.append(("error", AuthorizationResponse.parse(target)))
    else:
        verdict.note(
            f"response_type=foo was not redirected ({first.status_code}): "
            "iss on error redirects not judged"
        )
    for kind, response in responses:
        values = response.query.get("iss", [])
        verdict.expect("AUTHZ-ISS-PARAM", bool(values), f"the {kind} redirect carries no iss")
        verdict.expect(
            "AUTHZ-ISS-PARAM",
            not values or values == [issuer],
            f"the {kind} redirect carries iss={values!r}, the issuer is {issuer!r}",
        )


@pytest.mark.requirement("AUTHZ-ERROR-REDIRECT")
def test_request_errors_are_redirected_to_the_client(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Request errors go back by 302/303 with a defined error code (OAuth 2.1 §4.1.2.1)."""
    good = _known_good(flows, clients.public)
    cases = [
        ("response_type=foo", good.with_param("response_type", "foo"), "unsupported_response_type"),
        (
            "code_challenge_method=S512",
            good.with_param("code_challenge_method", "S512"),
            "invalid_request",
        ),
    ]
    for what, request, expected in cases:
        attempt = _attempt(flows, request, what)
        if attempt.code is not None:
            verdict.note(f"{what} was accepted (judged by the requirement for that parameter)")
            continue
        if attempt.delivered is None:
            content_type = attempt.first.headers.get("content-type", "")
            shown = " (a JSON body shown to the browser)" if "json" in content_type else ""
            verdict.fail(
                "AUTHZ-ERROR-REDIRECT",
                f"{what}: {attempt.describe()}{shown}, not a redirect to the client",
            )
            continue
        if not attempt.signed_in:
            verdict.expect(
                "AUTHZ-ERROR-REDIRECT",
                attempt.first.status_code in (302, 303),
                f"{what}: redirected with {attempt.first.status_code}, not 302/303",
            )
        verdict.expect(
            "AUTHZ-ERROR-REDIRECT",
            attempt.error == expected,
            f"{what}: error={attempt.error!r}, expected {expected}",
        )


@pytest.mark.requirement("AUTHZ-NO-IMPLICIT")
def test_no_access_token_from_authorization_endpoint(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """response_type=token and "code token" yield no access token (OAuth 2.1 §10.1)."""
    good = _known_good(flows, clients.public)
    for response_type in ("token", "code token"):
        attempt = _attempt(
            flows,
            good.with_param("response_type", response_type),
            f"authorization request, response_type={response_type}",
        )
        seen = [AuthorizationResponse.parse(attempt.location)] if attempt.location else []
        if attempt.delivered is not None:
            seen.append(attempt.delivered)
        leaked = any("access_token" in r.query or "access_token" in r.fragment for r in seen)
        verdict.expect(
            "AUTHZ-NO-IMPLICIT",
            not leaked,
            f"response_type={response_type}: an access_token was in the redirect",
        )
        if (
            not leaked
            and attempt.delivered is not None
            and attempt.error not in ("unsupported_response_type", "unauthorized_client")
        ):
            verdict.note(f"response_type={response_type}: {attempt.describe()}")


@pytest.mark.requirement("AUTHZ-DUPLICATE-PARAMS")
def test_repeated_parameters_are_refused(flows: Flows, clients: Clients, verdict: Verdict) -> None:
    """A repeated parameter makes the request invalid (OAuth 2.1 §3.1, §4.1.2.1)."""
    good = _known_good(flows, clients.public)
    cases = [("code_challenge", Pkce.s256().challenge), ("state", f"{good.state}-second")]
    scope = good.param("scope")
    if scope:
        cases.append(("scope", scope))
    for name, value in cases:
        attempt = _attempt(
            flows, good.repeated(name, value), f"authorization request, {name} repeated"
        )
        _judge_refusal(verdict, "AUTHZ-DUPLICATE-PARAMS", attempt, f"{name} repeated")


@pytest.mark.requirement("AUTHZ-DUPLICATE-PARAMS")
def test_repeated_redirect_uri_is_refused(flows: Flows, clients: Clients, verdict: Verdict) -> None:
    """Two redirect_uri values get an error, no code (OAuth 2.1 §3.1, §4.1.2.1)."""
    good = _known_good(flows, clients.public)
    second = next(
        (u for u in clients.public.redirect_uris if u != good.redirect_uri), good.redirect_uri
    )
    attempt = _attempt(
        flows, good.repeated("redirect_uri", second), "authorization request, redirect_uri repeated"
    )
    if (
        verdict.expect(
            "AUTHZ-DUPLICATE-PARAMS",
            attempt.code is None,
            f"redirect_uri repeated: {attempt.describe()}",
        )
        and attempt.delivered is not None
    ):
        verdict.expect(
            "AUTHZ-DUPLICATE-PARAMS",
            attempt.error == "invalid_request",
            f"redirect_uri repeated: error={attempt.error!r}, expected invalid_request",
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
    good = _known_good(flows, clients.public)
    for label, value in (
        ("with a fragment", f"{flows.mcp_url}#frag"),
        ("relative", "mcp"),
        ("unknown", "https://unknown.invalid/api"),
    ):
        attempt = _attempt(
            flows, good.with_param("resource", value), f"authorization request, resource {label}"
        )
        what = f"resource {label} ({value!r})"
        _judge_refusal(
            verdict, "AUTHZ-RESOURCE-PARAM", attempt, what, ("invalid_target", "invalid_request")
        )
        if attempt.error == "invalid_request":
            verdict.tolerate(
                "AUTHZ-RESOURCE-PARAM",
                f"{what}: refused with invalid_request (invalid_target is preferred)",
            )
