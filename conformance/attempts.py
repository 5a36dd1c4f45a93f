"""Authorization requests sent as an attacker would, judged by what reaches the client.

OAuth 2.1 (draft-ietf-oauth-v2-1-13) §4.1.1-§4.1.2.1: a server refuses a bad request either
outright (an error page, or an error redirect to a valid redirect URI) or not at all. A request
that is not refused outright is followed through the user's sign-in, so that what finally
reaches the redirect URI (a code, an error, a token) is what gets judged. Negative checks start
from a `known_good` request and alter one thing in it, e.g. one of its `error_cases`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from conformance.errors import PreconditionFailed
from conformance.flows import Flows
from conformance.oauth.authorization import AuthorizationRequest, AuthorizationResponse
from conformance.oauth.clients import Client
from conformance.oauth.pkce import new_verifier
from conformance.verdict import Verdict


@dataclass
class Attempt:
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


def attempt(flows: Flows, request: AuthorizationRequest, note: str) -> Attempt:
    """Send `request`; when it is not refused outright, sign in and see what reaches the client."""
    first = flows.send(request, note=note)
    target = flows.redirect_target(first, request)
    if target is not None:
        return Attempt(request, first, AuthorizationResponse.parse(target))
    if first.status_code >= 400:
        return Attempt(request, first, None)
    try:
        delivered = flows.authorize(request)
    except PreconditionFailed:  # the sign-in ended somewhere other than the redirect URI
        return Attempt(request, first, None, signed_in=True)
    for part in (delivered.query, delivered.fragment):
        for token in part.get("access_token", []):
            flows.http.redactor.remember(token)
    return Attempt(request, first, delivered, signed_in=True)


def known_good(flows: Flows, client: Client) -> AuthorizationRequest:
    """A known-good request, shown not to be refused (sent once, without signing in), for a
    negative check to alter in one way."""
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


UNKNOWN_SCOPE = "conformance-unknown-scope"
UNKNOWN_RESOURCE = "https://unknown.invalid/api"


@dataclass(frozen=True)
class ErrorCase:
    label: str
    request: AuthorizationRequest
    errors: tuple[str, ...]  # the error codes defined for it


def error_cases(request: AuthorizationRequest) -> list[ErrorCase]:
    """`request` broken one way at a time: request errors that OAuth 2.1 §4.1.2.1 reports by
    redirect when the client and redirect URI are valid (and never otherwise)."""
    return [
        ErrorCase(
            "response_type=foo",
            request.with_param("response_type", "foo"),
            ("unsupported_response_type",),
        ),
        ErrorCase(
            "code_challenge_method=S512",
            request.with_param("code_challenge_method", "S512"),
            ("invalid_request",),
        ),
        ErrorCase(
            "no code_challenge",
            request.without("code_challenge", "code_challenge_method"),
            ("invalid_request",),
        ),
        ErrorCase(
            "an unknown scope", request.with_param("scope", UNKNOWN_SCOPE), ("invalid_scope",)
        ),
        # RFC 8707 §2: invalid_target; invalid_request is the generic code for a bad value.
        ErrorCase(
            "an unknown resource",
            request.with_param("resource", UNKNOWN_RESOURCE),
            ("invalid_target", "invalid_request"),
        ),
    ]


def accepts_any_verifier(flows: Flows, client: Client) -> bool:
    """Whether a fresh code is redeemed with an unrelated, well-formed code_verifier: then the
    token endpoint does not verify PKCE at all (TOKEN-PKCE-VERIFY), and a check of a finer PKCE
    rule that saw a bad verifier accepted cannot blame that rule."""
    request = flows.request(client)
    response = flows.redeem(
        client,
        flows.code_for(request),
        request,
        verifier=new_verifier(),
        note="token request with an unrelated well-formed code_verifier",
    )
    return flows.token_body(response) is not None
