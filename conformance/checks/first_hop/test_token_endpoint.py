"""The token endpoint of the authorization server: the authorization code grant and its errors.

OAuth 2.1 (draft-ietf-oauth-v2-1-13) §3.2 (token requests and responses: POST with form-encoded
content, no repeated parameters, §3.2.3 success, §3.2.4 errors), §4.1.3 (redeeming a code:
single use, also under concurrency, client and redirect URI binding, PKCE), §2.4 and §3.2.2
(client authentication by the registered method, RFC 7591 §2), §4.2 and §10 (no client
credentials for public clients, no password grant); RFC 7636 §4.6 (the verifier is checked);
RFC 8707 §2.2 (the `resource` parameter and the token audience).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import httpx
import pytest

from conformance import mcp
from conformance.discovery import json_object
from conformance.fixtures import Clients, Run, redirect_uris_for, register_test_client
from conformance.flows import Flows, TokenSet
from conformance.oauth import jwt
from conformance.oauth.challenge import parse_www_authenticate
from conformance.oauth.clients import Client, authentication, token_request
from conformance.oauth.pkce import new_verifier
from conformance.oauth.token_responses import cache_directives
from conformance.races import concurrently
from conformance.verdict import Verdict

_UNKNOWN_SCOPE = "mcp:not-a-real-scope"
_BEARER_TYPES = ("bearer", "dpop")
CONCURRENT_REDEMPTIONS = 5
# Parameters of a code redemption that TOKEN-DUPLICATE-PARAMS sends twice.
_REPEATED_PARAMS = ("grant_type", "code", "code_verifier", "redirect_uri", "client_id")
# The secret-based method a client did not register, for TOKEN-CLIENT-AUTH-METHOD.
_OTHER_SECRET_METHOD = {
    "client_secret_basic": "client_secret_post",
    "client_secret_post": "client_secret_basic",
}

# --- helpers -------------------------------------------------------------------------------


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def _error_code(response: httpx.Response) -> str | None:
    body = json_object(response)
    value = body.get("error") if body else None
    return value if isinstance(value, str) else None


def _describe(response: httpx.Response) -> str:
    """Status and what the body says, short enough for a finding's message."""
    body = json_object(response)
    if response.status_code == 200 and body and body.get("access_token"):
        return "200 with an access token"
    code = _error_code(response)
    if code:
        return f"{response.status_code} error={code}"
    return f"{response.status_code} ({_media_type(response) or 'no content type'})"


def _refused(
    response: httpx.Response, codes: tuple[str, ...], statuses: tuple[int, ...] = (400,)
) -> bool:
    return response.status_code in statuses and _error_code(response) in codes


def _expect_refused(
    verdict: Verdict,
    requirement: str,
    response: httpx.Response,
    codes: tuple[str, ...],
    what: str,
    statuses: tuple[int, ...] = (400,),
) -> bool:
    """Record that `response` refuses `what` with one of `codes` (OAuth 2.1 §3.2.4)."""
    expected = f"{'/'.join(map(str, statuses))} {' or '.join(codes)}"
    return verdict.expect(
        requirement,
        _refused(response, codes, statuses),
        f"{what}: got {_describe(response)}, expected {expected}",
    )


def _post(flows: Flows, client: Client, params: list[tuple[str, str]], note: str) -> httpx.Response:
    """A raw token request for `client` (no code needed: shape and error checks)."""
    return token_request(flows.http, flows.token_endpoint, client, params, note=note)


def _bogus_code_params() -> list[tuple[str, str]]:
    """An authorization code request with a code the server never issued."""
    return [
        ("grant_type", "authorization_code"),
        ("code", secrets.token_urlsafe(24)),
        ("code_verifier", new_verifier()),
    ]


def _made_up_secret() -> str:
    return f"wrong-{secrets.token_urlsafe(12)}"


def _with_wrong_secret(client: Client) -> Client:
    return replace(client, client_secret=_made_up_secret(), auth_method="client_secret_basic")


def _introspect(flows: Flows, clients: Clients, token: str) -> dict[str, Any]:
    """RFC 7662 introspection of an opaque token (skips when the AS offers none)."""
    endpoint = flows.server.endpoint("introspection_endpoint")
    if not endpoint or clients.confidential is None:
        pytest.skip(
            "the access token is opaque and there is no introspection endpoint or "
            "confidential client to read its audience"
        )
    response = token_request(
        flows.http,
        endpoint,
        clients.confidential,
        [("token", token)],
        note="introspect the access token",
    )
    body = json_object(response)
    Verdict.precondition(
        response.status_code == 200 and body and body.get("active") is True,
        f"introspection of a fresh access token got {_describe(response)}",
    )
    assert body is not None
    return body


def _claims(flows: Flows, clients: Clients, token: str) -> dict[str, Any]:
    """What the token says about itself: JWT claims, else the introspection response."""
    return jwt.claims(token) if jwt.is_jwt(token) else _introspect(flows, clients, token)


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _scopes(claims: dict[str, Any]) -> set[str] | None:
    """The scope a token carries (`scope` string, or an `scp` list), None when it says none."""
    if isinstance(claims.get("scope"), str):
        return set(claims["scope"].split())
    if isinstance(claims.get("scp"), list):
        return {s for s in claims["scp"] if isinstance(s, str)}
    return None


@pytest.fixture(scope="module")
def confidential_tokens(flows: Flows, clients: Clients) -> TokenSet:
    """Known-good: the confidential client redeems its own code with its secret (read-only)."""
    if clients.confidential is None or clients.confidential.client_secret is None:
        pytest.skip("no confidential test client with a secret")
    return flows.tokens(clients.confidential)


@pytest.fixture(scope="module")
def other_confidential(run: Run, registration_endpoint: str | None) -> Client | None:
    """A second confidential client, whose secret must not authenticate the first (None
    without dynamic registration)."""
    if run.config.registration == "preregistered" or not registration_endpoint:
        return None
    return register_test_client(
        run, registration_endpoint, redirect_uris_for(run), "client_secret_basic", "other"
    )


# --- PKCE (RFC 7636 §4.6) ------------------------------------------------------------------


@pytest.mark.requirement("TOKEN-PKCE-VERIFY")
def test_code_verifier_is_required(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """A code issued with a challenge is not redeemed without code_verifier (OAuth 2.1 §4.1.3)."""
    request = flows.request(clients.public)
    code = flows.code_for(request)
    response = flows.redeem(
        clients.public, code, request, verifier=None, note="redeem without code_verifier"
    )
    _expect_refused(
        verdict,
        "TOKEN-PKCE-VERIFY",
        response,
        ("invalid_grant", "invalid_request"),
        "a code redeemed without code_verifier",
    )


@pytest.mark.requirement("TOKEN-PKCE-VERIFY")
def test_code_verifier_must_match_challenge(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """A well-formed verifier that does not hash to the challenge is refused (RFC 7636 §4.6)."""
    request = flows.request(clients.public)
    code = flows.code_for(request)
    response = flows.redeem(
        clients.public,
        code,
        request,
        verifier=new_verifier(),
        note="redeem with another code_verifier",
    )
    _expect_refused(
        verdict,
        "TOKEN-PKCE-VERIFY",
        response,
        ("invalid_grant",),
        "a code redeemed with a verifier that does not match its challenge",
    )


# --- the code is single-use and bound (OAuth 2.1 §4.1.3) -----------------------------------


@pytest.mark.requirement("TOKEN-CODE-SINGLE-USE")
def test_code_is_single_use(flows: Flows, clients: Clients, verdict: Verdict) -> None:
    """An authorization code yields tokens only once (OAuth 2.1 §4.1.3)."""
    request = flows.request(clients.public)
    code = flows.code_for(request)
    first = flows.redeem(clients.public, code, request, note="known-good: first redemption")
    verdict.precondition(flows.token_body(first), f"first redemption got {_describe(first)}")
    replay = flows.redeem(clients.public, code, request, note="replay the same request")
    flows.token_body(replay)
    _expect_refused(
        verdict,
        "TOKEN-CODE-SINGLE-USE",
        replay,
        ("invalid_grant",),
        "the identical request replayed with a used code",
    )


@pytest.mark.requirement("TOKEN-CODE-REUSE-REVOCATION")
def test_code_replay_revokes_issued_tokens(
    run: Run, flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """A replayed code revokes the tokens issued from it (OAuth 2.1 §4.1.3, §7.5.3)."""
    request = flows.request(clients.public)
    code = flows.code_for(request)
    first = flows.redeem(clients.public, code, request, note="known-good: first redemption")
    body = flows.token_body(first)
    verdict.precondition(body, f"first redemption got {_describe(first)}")
    assert body is not None
    access, refresh = str(body["access_token"]), body.get("refresh_token")
    before = mcp.present(run, access, "known-good: the first access token at the MCP server")
    verdict.precondition(
        before.is_success, f"the MCP server refused a fresh access token ({before.status_code})"
    )

    replay = flows.redeem(clients.public, code, request, note="replay the used code")
    flows.token_body(replay)
    after = mcp.present(run, access, "the first access token after the replay")
    probes = [f"the MCP server answers {after.status_code} to the first access token"]
    at_revoked = after.status_code == 401
    rt_revoked = False
    if isinstance(refresh, str) and refresh:
        refreshed = _post(
            flows,
            clients.public,
            [("grant_type", "refresh_token"), ("refresh_token", refresh)],
            "refresh with the first refresh token after the replay",
        )
        flows.token_body(refreshed)
        rt_revoked = _refused(refreshed, ("invalid_grant",))
        probes.append(f"its refresh token got {_describe(refreshed)}")
    if rt_revoked and not at_revoked:
        verdict.note(
            "the refresh token was revoked but the MCP server still accepts the access "
            "token (a self-contained JWT stays usable until it expires)"
        )
    verdict.expect(
        "TOKEN-CODE-REUSE-REVOCATION",
        at_revoked or rt_revoked,
        f"after the code was replayed ({_describe(replay)}) the tokens issued from it "
        f"still work: {'; '.join(probes)}",
    )


@pytest.mark.requirement("TOKEN-CODE-CONCURRENT-REDEMPTION")
def test_concurrent_redemptions_of_a_code_succeed_at_most_once(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Of N redemptions of one code sent at the same moment, at most one gets tokens (OAuth 2.1
    §4.1.3: "an access token only once for a given authorization code")."""
    request = flows.request(clients.public)
    code = flows.code_for(request)
    n = CONCURRENT_REDEMPTIONS

    def send(index: int) -> httpx.Response:
        note = f"concurrent redemption {index + 1} of {n}"
        return flows.redeem(clients.public, code, request, note=note)

    responses = concurrently(n, send)
    granted = [r for r in responses if flows.token_body(r) is not None]
    verdict.precondition(
        granted,
        f"none of {n} concurrent redemptions of a fresh code succeeded "
        f"({', '.join(_describe(r) for r in responses)})",
    )
    if len(granted) > 1:
        # A race only if the code is single-use when replayed alone; otherwise
        # TOKEN-CODE-SINGLE-USE judges it.
        again = flows.redeem(clients.public, code, request, note="the same code once more, alone")
        verdict.precondition(
            flows.token_body(again) is None,
            "the code is redeemed again when replayed on its own, so it is not single-use "
            "(see TOKEN-CODE-SINGLE-USE) and a race cannot be judged",
        )
    verdict.expect(
        "TOKEN-CODE-CONCURRENT-REDEMPTION",
        len(granted) <= 1,
        f"{len(granted)} of {n} concurrent redemptions of one code got tokens, though the "
        "code is refused when replayed on its own",
    )


@pytest.mark.requirement("TOKEN-CODE-BOUND-CLIENT")
def test_code_is_bound_to_its_client(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """Another client cannot redeem a code, even with the right verifier (OAuth 2.1 §4.1.3)."""
    if clients.second_public.client_id == clients.public.client_id:
        pytest.skip("no second public test client (client.second_public)")
    request = flows.request(clients.public)
    code = flows.code_for(request)
    response = flows.redeem(
        clients.second_public, code, request, note="redeem the code as the second public client"
    )
    flows.token_body(response)
    _expect_refused(
        verdict,
        "TOKEN-CODE-BOUND-CLIENT",
        response,
        ("invalid_grant",),
        "a code issued to the public client redeemed by another client",
    )


@pytest.mark.requirement("TOKEN-REDIRECT-URI")
def test_mismatched_redirect_uri_is_refused(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """A redirect_uri other than the authorization request's fails (OAuth 2.1 §4.1.3, §10.2)."""
    # Known-good: alice's code was redeemed without redirect_uri, as OAuth 2.1 clients do.
    uris = clients.public.redirect_uris
    if len(uris) < 2:
        pytest.skip("the public test client has only one registered redirect URI")
    request = flows.request(clients.public, redirect_uri=uris[0])
    code = flows.code_for(request)
    response = flows.redeem(
        clients.public,
        code,
        request,
        [("redirect_uri", uris[1])],
        note="redeem with the other registered redirect_uri",
    )
    flows.token_body(response)
    _expect_refused(
        verdict,
        "TOKEN-REDIRECT-URI",
        response,
        ("invalid_grant",),
        "a code obtained with redirect URI #1 redeemed with redirect_uri=#2",
    )


# --- the request itself (OAuth 2.1 §3.2, §3.2.2) -------------------------------------------


@pytest.mark.requirement("TOKEN-DUPLICATE-PARAMS")
def test_repeated_parameters_are_refused(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """A redemption sending one parameter twice, even with the same value, is invalid_request
    (OAuth 2.1 §3.2: not "included more than once"; §3.2.4)."""
    public = clients.public
    for name in _REPEATED_PARAMS:
        request = flows.request(public)
        code = flows.code_for(request)
        params = flows.redemption(code, request)
        # The client's own identification adds the first client_id; redirect_uri is sent
        # once, as OAuth 2.0 clients do, before its repeat.
        values = {
            **dict(params),
            "redirect_uri": request.redirect_uri,
            "client_id": public.client_id,
        }
        if name == "redirect_uri":
            params.append(("redirect_uri", request.redirect_uri))
        params.append((name, values[name]))
        response = _post(flows, public, params, f"redeem with {name} sent twice")
        flows.token_body(response)
        _expect_refused(
            verdict,
            "TOKEN-DUPLICATE-PARAMS",
            response,
            ("invalid_request",),
            f"a redemption with {name} sent twice (the same value both times)",
        )


@pytest.mark.requirement("TOKEN-POST-ONLY")
def test_parameters_outside_post_content_are_not_honoured(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """A redemption sent as GET, or as a POST with its parameters in the URI query, yields no
    token (OAuth 2.1 §3.2: POST; §3.2.2: parameters in the request content; §2.4.1)."""
    public = clients.public
    _, identification = authentication(public)  # a public client: just its client_id
    variants = {
        "GET": "a GET with the token request in the URI query",
        "POST": "a POST with the token request in the URI query and no content",
    }
    for method, what in variants.items():
        request = flows.request(public)
        code = flows.code_for(request)
        response = flows.http.request(
            method,
            flows.token_endpoint,
            params=[*flows.redemption(code, request), *identification],
            headers=[("Accept", "application/json")],
            note=f"redeem with {what}",
        )
        verdict.expect(
            "TOKEN-POST-ONLY",
            flows.token_body(response) is None and not response.is_success,
            f"{what} got {_describe(response)}",
        )
        # How a refusal is shaped is TOKEN-ERROR-FORMAT's concern; here it is only noted.
        if not response.is_success and response.status_code not in (400, 405):
            verdict.note(f"{what} got {response.status_code}; 405 or 400 is expected")


# --- grants (OAuth 2.1 §10) ----------------------------------------------------------------


@pytest.mark.requirement("TOKEN-NO-PASSWORD-GRANT")
def test_password_grant_is_refused(
    run: Run, flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """grant_type=password with a real user's credentials yields no token (OAuth 2.1 §10)."""
    if not run.config.users:
        pytest.skip("no test user in the target config")
    user = run.config.users[0]
    client = clients.confidential or clients.public
    params = [
        ("grant_type", "password"),
        ("username", user.username),
        ("password", user.password),
        ("resource", run.mcp_url),
    ]
    if flows.basic_scope:
        params.append(("scope", flows.basic_scope))
    response = _post(flows, client, params, f"password grant for {user.name}")
    flows.token_body(response)
    _expect_refused(
        verdict,
        "TOKEN-NO-PASSWORD-GRANT",
        response,
        ("unsupported_grant_type", "unauthorized_client"),
        f"grant_type=password with {user.name}'s username and password",
    )


# --- resource indicators (RFC 8707 §2.2) ---------------------------------------------------


@pytest.mark.requirement("TOKEN-RESOURCE-AUDIENCE")
def test_token_audience_is_the_mcp_server(
    run: Run, flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """A token for the MCP server has it, and nothing else, as audience (RFC 8707 §2.2)."""
    audiences = _audiences(_claims(flows, clients, alice_tokens.access_token))
    verdict.expect(
        "TOKEN-RESOURCE-AUDIENCE",
        run.mcp_url in audiences,
        f"alice's token (resource={run.mcp_url}) has aud {audiences}, "
        "which does not name the MCP server",
    )
    others = [a for a in audiences if a != run.mcp_url]
    verdict.expect(
        "TOKEN-RESOURCE-AUDIENCE",
        not others,
        f"alice's token (resource={run.mcp_url}) also names {others} as audience",
    )


@pytest.mark.requirement("TOKEN-RESOURCE-AUDIENCE")
def test_token_audience_follows_requested_resource(
    run: Run, flows: Flows, clients: Clients, second_resource: str, verdict: Verdict
) -> None:
    """A token requested for another resource is for it, not the MCP server (RFC 8707 §2.2)."""
    tokens = flows.tokens(clients.public, resource=second_resource)
    audiences = _audiences(_claims(flows, clients, tokens.access_token))
    verdict.expect(
        "TOKEN-RESOURCE-AUDIENCE",
        audiences == [second_resource],
        f"a token requested with resource={second_resource} has aud {audiences}",
    )
    verdict.expect(
        "TOKEN-RESOURCE-AUDIENCE",
        run.mcp_url not in audiences,
        f"a token requested for {second_resource} is also for the MCP server",
    )


@pytest.mark.requirement("TOKEN-RESOURCE-INVALID-TARGET")
def test_resource_outside_the_grant_is_invalid_target(
    flows: Flows, clients: Clients, second_resource: str, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """A resource the grant does not cover fails with invalid_target (RFC 8707 §2.2)."""
    request = flows.request(clients.public)  # resource = the MCP server
    code = flows.code_for(request)
    response = flows.redeem(
        clients.public,
        code,
        request,
        [("resource", second_resource)],
        note="redeem for a resource outside the grant",
    )
    body = flows.token_body(response)
    if body is not None:
        token = str(body["access_token"])
        audiences = _audiences(jwt.claims(token)) if jwt.is_jwt(token) else []
        issued_for = (
            "the foreign resource"
            if second_resource in audiences
            else "a resource it did not ask for"
            if audiences
            else "an unknown audience"
        )
        verdict.fail(
            "TOKEN-RESOURCE-INVALID-TARGET",
            f"a code granted for the MCP server, redeemed with "
            f"resource={second_resource}, yielded a token for {issued_for} "
            f"(aud {audiences})",
        )
        return
    what = f"a code granted for the MCP server redeemed with resource={second_resource}"
    _expect_refused(verdict, "TOKEN-RESOURCE-INVALID-TARGET", response, ("invalid_target",), what)


# --- scope (OAuth 2.1 §1.4.1, §3.2.3) ------------------------------------------------------


@pytest.mark.requirement("TOKEN-SCOPE-HANDLING")
def test_unknown_scope_is_refused_or_left_out(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """An unknown scope is refused, or left out with the grant stated (OAuth 2.1 §3.2.3)."""
    scope = " ".join(s for s in (flows.basic_scope, _UNKNOWN_SCOPE) if s)
    request = flows.request(clients.public, scope=scope)
    authorization = flows.authorize(request)
    if authorization.error == "invalid_scope":
        return  # refused at the authorization endpoint: the first of the two allowed answers
    verdict.precondition(
        authorization.code,
        f"the authorization request for scope {scope!r} "
        f"got no code (error={authorization.error!r})",
    )
    response = flows.redeem(clients.public, str(authorization.code), request)
    if _refused(response, ("invalid_scope",)):
        return
    body = flows.token_body(response)
    verdict.precondition(body, f"redeeming the code got {_describe(response)}")
    assert body is not None
    stated = body.get("scope")
    if not verdict.expect(
        "TOKEN-SCOPE-HANDLING",
        isinstance(stated, str),
        f"scope {scope!r} was requested and the response states no `scope` "
        f"(got {stated!r}), so the client cannot know what was granted",
    ):
        return
    verdict.expect(
        "TOKEN-SCOPE-HANDLING",
        _UNKNOWN_SCOPE not in str(stated).split(),
        f"the response grants the unknown scope {_UNKNOWN_SCOPE!r} ({stated!r})",
    )
    token = str(body["access_token"])
    carried = _scopes(jwt.claims(token)) if jwt.is_jwt(token) else None
    if carried is None:
        return
    verdict.expect(
        "TOKEN-SCOPE-HANDLING",
        _UNKNOWN_SCOPE not in carried,
        f"the access token carries the unknown scope {_UNKNOWN_SCOPE!r} (scope {sorted(carried)})",
    )
    if carried != set(str(stated).split()):
        verdict.note(f"the response states scope {stated!r}, the token carries {sorted(carried)}")


# --- successful responses (OAuth 2.1 §3.2.3) -----------------------------------------------


@pytest.mark.requirement("TOKEN-RESPONSE-FIELDS")
def test_token_response_has_required_fields(alice_tokens: TokenSet, verdict: Verdict) -> None:
    """JSON with access_token, token_type Bearer/DPoP and expires_in (OAuth 2.1 §3.2.3)."""
    response, body = alice_tokens.response, alice_tokens.body
    verdict.expect(
        "TOKEN-RESPONSE-FIELDS",
        _media_type(response) == "application/json",
        f"the token response is {_media_type(response)!r}, not application/json",
    )
    token = body.get("access_token")
    verdict.expect(
        "TOKEN-RESPONSE-FIELDS",
        isinstance(token, str) and bool(token),
        f"`access_token` is not a non-empty string: {type(token).__name__}",
    )
    token_type = body.get("token_type")
    verdict.expect(
        "TOKEN-RESPONSE-FIELDS",
        isinstance(token_type, str) and token_type.lower() in _BEARER_TYPES,
        f"`token_type` is {token_type!r}, not Bearer or DPoP",
    )
    expires_in = body.get("expires_in")
    if expires_in is None:
        verdict.note("the token response has no `expires_in` (RECOMMENDED)")
        return
    verdict.expect(
        "TOKEN-RESPONSE-FIELDS",
        isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0,
        f"`expires_in` is {expires_in!r}, not a positive integer",
    )


@pytest.mark.requirement("TOKEN-RESPONSE-NO-STORE")
def test_token_responses_are_not_stored(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """Every token response carries Cache-Control: no-store (OAuth 2.1 §3.2.3)."""
    fresh = flows.tokens(clients.public)
    for who, response in (("alice's", alice_tokens.response), ("a fresh", fresh.response)):
        verdict.expect(
            "TOKEN-RESPONSE-NO-STORE",
            "no-store" in cache_directives(response),
            f"{who} token response has Cache-Control "
            f"{response.headers.get('cache-control')!r}, without no-store",
        )


# --- errors (OAuth 2.1 §3.2.4) -------------------------------------------------------------


def _expect_error_format(
    verdict: Verdict,
    response: httpx.Response,
    status: int,
    code: str | tuple[str, ...],
    what: str,
    tolerated: tuple[str, ...] = (),
) -> None:
    """A token error: `status`, application/json, an `error` member equal to `code` (or one of
    them)."""
    rid = "TOKEN-ERROR-FORMAT"
    codes = (code,) if isinstance(code, str) else code
    if "no-store" not in cache_directives(response):
        # §3.2.4 shows Cache-Control: no-store only in its example.
        verdict.note(f"{what}: the error response has no Cache-Control: no-store")
    verdict.expect(
        rid,
        response.status_code == status,
        f"{what}: status {response.status_code}, expected {status}",
    )
    verdict.expect(
        rid,
        _media_type(response) == "application/json",
        f"{what}: content type {_media_type(response)!r}, expected application/json",
    )
    error = _error_code(response)
    if not verdict.expect(rid, error is not None, f"{what}: the body has no `error` member"):
        return
    expected = " or ".join(codes)
    if error in tolerated:
        verdict.tolerate(rid, f"{what}: error={error}, tolerated where {expected} is defined")
        return
    verdict.expect(rid, error in codes, f"{what}: error={error}, expected {expected}")


@pytest.mark.requirement("TOKEN-ERROR-FORMAT")
@pytest.mark.parametrize("grant_type", [None, ""], ids=["absent", "empty"])
def test_missing_grant_type_is_invalid_request(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, grant_type: str | None, verdict: Verdict
) -> None:
    """A token request without grant_type, or with an empty one (treated as omitted, OAuth 2.1
    §3.2), is 400 invalid_request in JSON (§3.2.4)."""
    params = [p for p in _bogus_code_params() if p[0] != "grant_type"]
    what = "a token request without grant_type"
    if grant_type is not None:
        params.insert(0, ("grant_type", grant_type))
        what = "a token request with an empty grant_type"
    response = _post(flows, clients.public, params, what)
    _expect_error_format(
        verdict, response, 400, "invalid_request", what, tolerated=("unsupported_grant_type",)
    )


@pytest.mark.requirement("TOKEN-ERROR-FORMAT")
@pytest.mark.parametrize(
    "grant_type",
    ["foo", "urn:example:mcp-auth-conformance:unknown-grant", "implicit", "token"],
    ids=["unknown-name", "unknown-absolute-uri", "implicit", "token"],
)
def test_unknown_grant_type_is_unsupported(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, grant_type: str, verdict: Verdict
) -> None:
    """A grant type the server does not offer, a name or an extension URI (OAuth 2.1 §4.4), is
    400 unsupported_grant_type in JSON (§3.2.4)."""
    params = [
        ("grant_type", grant_type) if k == "grant_type" else (k, v) for k, v in _bogus_code_params()
    ]
    what = f"grant_type={grant_type}"
    response = _post(flows, clients.public, params, f"token request with {what}")
    if flows.token_body(response) is not None:
        verdict.fail("TOKEN-ERROR-FORMAT", f"{what} with a made-up code yielded a token")
        return
    _expect_error_format(verdict, response, 400, "unsupported_grant_type", what)


@pytest.mark.requirement("TOKEN-ERROR-FORMAT")
def test_client_credentials_grant_is_refused_to_public_clients(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """grant_type=client_credentials from a public client is unauthorized_client (or
    unsupported_grant_type where the grant is not offered) and no token (OAuth 2.1 §4.2:
    confidential clients only; §3.2.4)."""
    params = [("grant_type", "client_credentials"), ("resource", flows.mcp_url)]
    if flows.basic_scope:
        params.append(("scope", flows.basic_scope))
    what = "grant_type=client_credentials from the public client"
    response = _post(flows, clients.public, params, what)
    if flows.token_body(response) is not None:
        verdict.fail("TOKEN-ERROR-FORMAT", f"{what} yielded a token")
        return
    _expect_error_format(
        verdict, response, 400, ("unauthorized_client", "unsupported_grant_type"), what
    )


@pytest.mark.requirement("TOKEN-ERROR-FORMAT")
def test_unknown_code_is_invalid_grant(
    flows: Flows, clients: Clients, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """A code the server never issued is 400 invalid_grant in JSON (OAuth 2.1 §3.2.4)."""
    response = _post(flows, clients.public, _bogus_code_params(), "token request with a bogus code")
    _expect_error_format(verdict, response, 400, "invalid_grant", "a bogus authorization code")


@pytest.mark.requirement("TOKEN-ERROR-FORMAT")
def test_failed_basic_authentication_is_401_with_challenge(
    flows: Flows, clients: Clients, confidential_tokens: TokenSet, verdict: Verdict
) -> None:
    """A wrong Basic secret is 401 invalid_client with a Basic challenge (OAuth 2.1 §3.2.4)."""
    assert clients.confidential is not None  # confidential_tokens skips otherwise
    request = flows.request(clients.confidential)
    code = flows.code_for(request)
    response = flows.redeem(
        _with_wrong_secret(clients.confidential),
        code,
        request,
        note="redeem with a wrong client secret (Basic)",
    )
    flows.token_body(response)
    what = "HTTP Basic with a wrong client secret"
    _expect_error_format(verdict, response, 401, "invalid_client", what)
    challenges = parse_www_authenticate(response.headers.get_list("www-authenticate"))
    verdict.expect(
        "TOKEN-ERROR-FORMAT",
        challenges.scheme("Basic") is not None,
        f"{what}: WWW-Authenticate is {response.headers.get('www-authenticate')!r}, "
        "expected a Basic challenge",
    )


# --- client authentication (OAuth 2.1 §2.4, §3.2.1) ----------------------------------------


@pytest.mark.requirement("TOKEN-CLIENT-AUTH")
def test_confidential_client_must_authenticate(
    flows: Flows, clients: Clients, confidential_tokens: TokenSet, verdict: Verdict
) -> None:
    """A confidential client presenting only its client_id is refused (OAuth 2.1 §3.2.1)."""
    assert clients.confidential is not None  # confidential_tokens skips otherwise
    request = flows.request(clients.confidential)
    code = flows.code_for(request)
    response = flows.redeem(
        clients.confidential.without_secret(),
        code,
        request,
        note="redeem with the confidential client's client_id only",
    )
    flows.token_body(response)
    _expect_refused(
        verdict,
        "TOKEN-CLIENT-AUTH",
        response,
        ("invalid_client",),
        "the confidential client redeemed its code with client_id only",
        statuses=(400, 401),
    )


@pytest.mark.requirement("TOKEN-CLIENT-AUTH")
def test_two_client_authentication_methods_are_refused(
    flows: Flows, clients: Clients, confidential_tokens: TokenSet, verdict: Verdict
) -> None:
    """Basic plus client_secret in the body is invalid_request (OAuth 2.1 §2.4, §3.2.4)."""
    confidential = clients.confidential
    assert confidential is not None and confidential.client_secret is not None
    request = flows.request(confidential)
    code = flows.code_for(request)
    basic = replace(confidential, auth_method="client_secret_basic")
    response = flows.redeem(
        basic,
        code,
        request,
        [("client_secret", confidential.client_secret)],
        note="redeem with Basic and client_secret in the body",
    )
    flows.token_body(response)
    what = "a token request authenticated with both Basic and client_secret in the body"
    if _refused(response, ("invalid_client",), (400, 401)):
        verdict.tolerate(
            "TOKEN-CLIENT-AUTH", f"{what} got invalid_client; invalid_request is the defined code"
        )
        return
    _expect_refused(verdict, "TOKEN-CLIENT-AUTH", response, ("invalid_request",), what)


@pytest.mark.requirement("TOKEN-CLIENT-AUTH")
def test_credentials_that_do_not_authenticate_the_client_are_refused(
    flows: Flows,
    clients: Clients,
    confidential_tokens: TokenSet,
    other_confidential: Client | None,
    verdict: Verdict,
) -> None:
    """A wrong secret, another client's secret, or a secret from a public client is
    invalid_client (OAuth 2.1 §3.2.2: the server authenticates any authentication included)."""
    confidential = clients.confidential
    assert confidential is not None  # confidential_tokens skips otherwise
    public = clients.public
    attempts = [
        (
            confidential,
            replace(confidential, client_secret=_made_up_secret()),
            f"the confidential client with a wrong secret ({confidential.auth_method})",
        ),
        (
            public,
            replace(public, client_secret=_made_up_secret(), auth_method="client_secret_post"),
            "the public client with a client_secret it was never issued",
        ),
        (
            public,
            replace(public, client_secret=_made_up_secret(), auth_method="client_secret_basic"),
            "the public client with HTTP Basic credentials it was never issued",
        ),
    ]
    if other_confidential is None:
        verdict.note(
            "no second confidential client could be registered: another client's "
            "secret was not tried"
        )
    else:
        stolen = replace(confidential, client_secret=other_confidential.client_secret)
        attempts.append(
            (confidential, stolen, "the confidential client with another client's secret")
        )
    for owner, presented, what in attempts:
        request = flows.request(owner)
        code = flows.code_for(request)
        response = flows.redeem(presented, code, request, note=f"redeem as {what}")
        flows.token_body(response)
        _expect_refused(
            verdict,
            "TOKEN-CLIENT-AUTH",
            response,
            ("invalid_client",),
            f"{what} redeeming its own code",
            statuses=(400, 401),
        )


@pytest.mark.requirement("TOKEN-CLIENT-AUTH-METHOD")
def test_secret_sent_by_another_method_is_refused(
    flows: Flows, clients: Clients, confidential_tokens: TokenSet, verdict: Verdict
) -> None:
    """The right secret by a method the client did not register is invalid_client (RFC 7591
    §2 `token_endpoint_auth_method`; OAuth 2.1 §3.2.4 "unsupported authentication method")."""
    confidential = clients.confidential
    assert confidential is not None  # confidential_tokens skips otherwise
    other = _OTHER_SECRET_METHOD.get(confidential.auth_method)
    if other is None:
        pytest.skip(
            f"the confidential test client authenticates with {confidential.auth_method}, "
            "not a client secret method"
        )
    request = flows.request(confidential)
    code = flows.code_for(request)
    response = flows.redeem(
        replace(confidential, auth_method=other),
        code,
        request,
        note=f"redeem with the right secret sent by {other}",
    )
    flows.token_body(response)
    _expect_refused(
        verdict,
        "TOKEN-CLIENT-AUTH-METHOD",
        response,
        ("invalid_client",),
        f"a {confidential.auth_method} client's right secret sent by {other}",
        statuses=(400, 401),
    )
