"""RFC 8414 authorization server metadata, as MCP clients discover and rely on it.

RFC 8414 §2-§3 (location, members, `issuer` identity), RFC 9207 §2.3 (the `iss` flag),
RFC 9068 §4 (`jwks_uri` for JWT access tokens) and MCP authorization "Authorization Server
Metadata Discovery": the metadata is how an MCP client learns the endpoints, PKCE support
and how to register, so what it says has to match what the server does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from conformance.discovery import AuthorizationServer, Discovery, unjudgeable
from conformance.errors import PreconditionFailed
from conformance.fixtures import Clients, Run
from conformance.flows import Flows, TokenSet
from conformance.oauth import jwt as jwts
from conformance.oauth.authorization import AuthorizationResponse
from conformance.oauth.jwks import fetch_jwk_set
from conformance.verdict import Verdict

_LEGACY_GRANTS = {"implicit", "password"}
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def _secure_or_loopback(url: Any) -> bool:
    # OAuth 2.1 §1.5 requires TLS; the loopback exemption lets local test deployments pass.
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return bool(parts.netloc) and (
        parts.scheme == "https"
        or (parts.scheme == "http" and (parts.hostname or "") in ("127.0.0.1", "::1", "localhost"))
    )


def _issuer_under_test(run: Run, discovery: Discovery) -> str:
    """The configured authorization server, else the first one the resource lists."""
    issuer = run.config.authorization_server or next(iter(discovery.issuers), None)
    if not issuer:
        raise PreconditionFailed(
            "no authorization server is listed in the resource metadata "
            "or configured (see PRM-AUTHZ-SERVERS): " + "; ".join(discovery.problems)
        )
    return issuer


def _served_documents(discovery: Discovery, issuer: str) -> list[tuple[str, dict[str, Any]]]:
    """(URL, metadata) for every well-known URL of `issuer` that served metadata."""
    return [
        (a.url, a.document)
        for a in discovery.as_attempts.get(issuer, [])
        if a.ok and a.document is not None
    ]


@pytest.mark.requirement("ASM-DISCOVERY-AVAILABLE")
def test_metadata_is_published(run: Run, discovery: Discovery, verdict: Verdict) -> None:
    """Metadata is served at a well-known URL derived from the issuer (RFC 8414 §3.1, MCP)."""
    verdict.attach(discovery.exchanges)
    issuer = _issuer_under_test(run, discovery)
    attempts = discovery.as_attempts.get(issuer, [])
    fault = unjudgeable(attempts)
    Verdict.precondition(fault is None, f"metadata of {issuer!r} could not be fetched: {fault}")
    tried = ", ".join(
        f"{a.url} -> {a.error or (a.response.status_code if a.response else '?')}" for a in attempts
    )
    hit = next((a for a in attempts if a.ok), None)
    if not verdict.expect(
        "ASM-DISCOVERY-AVAILABLE",
        hit is not None,
        f"no metadata for {issuer!r} at any well-known URL ({tried})",
    ):
        return
    assert hit is not None and hit.response is not None
    content_type = hit.response.headers.get("content-type", "").split(";")[0].strip()
    verdict.expect(
        "ASM-DISCOVERY-AVAILABLE",
        content_type == "application/json",
        f"{hit.url} is served as {content_type!r}, not application/json",
    )


@pytest.mark.requirement("ASM-ISSUER-IDENTICAL")
def test_metadata_issuer_is_the_issuer_identifier(discovery: Discovery, verdict: Verdict) -> None:
    """Each document's `issuer` is exactly the identifier its URL was built from (RFC 8414 §3.3)."""
    verdict.attach(discovery.exchanges)
    served = {issuer: _served_documents(discovery, issuer) for issuer in discovery.issuers}
    verdict.precondition(
        any(served.values()),
        "no authorization server metadata was served (see ASM-DISCOVERY-AVAILABLE): "
        + "; ".join(discovery.problems),
    )
    for issuer, documents in served.items():
        for url, document in documents:
            verdict.expect(
                "ASM-ISSUER-IDENTICAL",
                document.get("issuer") == issuer,
                f"{url} declares issuer {document.get('issuer')!r}, but was fetched for {issuer!r}",
            )
        endpoints = {
            (d.get("authorization_endpoint"), d.get("token_endpoint")) for _, d in documents
        }
        if len(endpoints) > 1:
            verdict.note(
                f"the metadata documents of {issuer!r} name different endpoints: "
                f"{sorted(map(str, endpoints))}"
            )


@pytest.mark.requirement("ASM-REQUIRED-FIELDS")
def test_metadata_has_required_fields(
    authorization_server: AuthorizationServer, verdict: Verdict
) -> None:
    """issuer, authorization and token endpoints, response types with code (RFC 8414 §2)."""
    metadata = authorization_server.metadata
    issuer = metadata.get("issuer")
    if verdict.expect(
        "ASM-REQUIRED-FIELDS",
        isinstance(issuer, str) and issuer,
        f"`issuer` is missing or not a string: {issuer!r}",
    ):
        parts = urlsplit(issuer)
        verdict.expect(
            "ASM-REQUIRED-FIELDS",
            not parts.query and not parts.fragment,
            f"`issuer` {issuer!r} has a query or fragment",
        )
        verdict.expect(
            "ASM-REQUIRED-FIELDS",
            _secure_or_loopback(issuer),
            f"`issuer` {issuer!r} is neither https nor loopback",
        )
    for name in ("authorization_endpoint", "token_endpoint"):
        verdict.expect(
            "ASM-REQUIRED-FIELDS",
            _secure_or_loopback(metadata.get(name)),
            f"`{name}` is missing or not an https (or loopback) URL: {metadata.get(name)!r}",
        )
    types = metadata.get("response_types_supported")
    verdict.expect(
        "ASM-REQUIRED-FIELDS",
        isinstance(types, list) and "code" in types,
        f"`response_types_supported` is missing or lacks code: {types!r}",
    )


@pytest.mark.requirement("ASM-PKCE-S256-ADVERTISED")
def test_metadata_advertises_pkce_s256(
    discovery: Discovery, authorization_server: AuthorizationServer, verdict: Verdict
) -> None:
    """`code_challenge_methods_supported` includes S256 (RFC 9700 §2.1.1, MCP)."""
    documents = _served_documents(discovery, authorization_server.identifier) or [
        (authorization_server.metadata_url, authorization_server.metadata)
    ]
    for url, document in documents:
        methods = document.get("code_challenge_methods_supported")
        verdict.expect(
            "ASM-PKCE-S256-ADVERTISED",
            isinstance(methods, list) and "S256" in methods,
            f"{url}: `code_challenge_methods_supported` is missing or lacks S256: {methods!r}",
        )
        if isinstance(methods, list) and "plain" in methods:
            verdict.note(f"{url} also advertises the plain PKCE method")


@pytest.mark.requirement("ASM-NO-LEGACY-GRANTS")
def test_metadata_advertises_no_legacy_grants(
    authorization_server: AuthorizationServer, verdict: Verdict
) -> None:
    """No implicit or password grant, no token response type (OAuth 2.1 §10.1, RFC 8414 §2)."""
    metadata = authorization_server.metadata
    grants = metadata.get("grant_types_supported")
    if verdict.expect(
        "ASM-NO-LEGACY-GRANTS",
        isinstance(grants, list),
        "`grant_types_supported` is absent, which defaults to authorization_code "
        "and implicit (RFC 8414 §2)",
    ):
        legacy = sorted(_LEGACY_GRANTS & set(grants or ()))
        verdict.expect(
            "ASM-NO-LEGACY-GRANTS",
            not legacy,
            f"`grant_types_supported` advertises removed grants {legacy}",
        )
    types = metadata.get("response_types_supported")
    token_types = (
        [t for t in types if isinstance(t, str) and "token" in t.split()]
        if isinstance(types, list)
        else []
    )
    verdict.expect(
        "ASM-NO-LEGACY-GRANTS",
        not token_types,
        f"`response_types_supported` advertises token response types {token_types}",
    )


@pytest.mark.requirement("ASM-REGISTRATION-ADVERTISED")
def test_supported_registration_is_advertised(
    run: Run, authorization_server: AuthorizationServer, clients: Clients, verdict: Verdict
) -> None:
    """An AS that registers clients dynamically says so in its metadata (RFC 8414 §2, MCP)."""
    if run.config.registration == "preregistered":
        pytest.skip("the target config uses pre-registered clients only")
    # The `clients` fixture registered the test clients dynamically: the AS accepts DCR, which
    # only `registration_endpoint` advertises (CIMD-METADATA-ADVERTISED judges the client ID
    # metadata document flag).
    verdict.expect(
        "ASM-REGISTRATION-ADVERTISED",
        isinstance(authorization_server.metadata.get("registration_endpoint"), str),
        f"the test clients were registered dynamically at "
        f"{run.config.registration_endpoint!r}, but the metadata has no `registration_endpoint`",
    )


@pytest.mark.requirement("ASM-ISS-PARAM-ADVERTISED")
def test_iss_flag_matches_authorization_responses(
    flows: Flows, clients: Clients, authorization_server: AuthorizationServer, verdict: Verdict
) -> None:
    """The iss flag is true exactly when responses carry `iss` (RFC 9207 §2.3, §3)."""
    request = flows.request(clients.public)
    success = flows.authorize(request)
    verdict.precondition(
        success.code, f"known-good authorization request got no code (error={success.error!r})"
    )
    responses: dict[str, AuthorizationResponse] = {"successful": success}
    bad = flows.request(clients.public).with_param("response_type", "foo")
    location = flows.redirect_target(flows.send(bad, note="response_type=foo"), bad)
    if location is not None:
        responses["error"] = AuthorizationResponse.parse(location)
    else:
        verdict.note(
            "response_type=foo was not answered by an error redirect; "
            "only the successful response is judged"
        )
    flag = authorization_server.metadata.get("authorization_response_iss_parameter_supported")
    with_iss = [kind for kind, r in responses.items() if r.one("iss") is not None]
    if with_iss:
        verdict.expect(
            "ASM-ISS-PARAM-ADVERTISED",
            flag is True,
            f"the {' and '.join(with_iss)} authorization response(s) carry iss, but "
            f"authorization_response_iss_parameter_supported is {flag!r}",
        )
    if flag is True:
        without = [kind for kind in responses if kind not in with_iss]
        verdict.expect(
            "ASM-ISS-PARAM-ADVERTISED",
            not without,
            "authorization_response_iss_parameter_supported is true, but the "
            f"{' and '.join(without)} authorization response(s) carry no iss",
        )


@pytest.mark.requirement("ASM-JWKS-URI")
def test_jwks_uri_publishes_the_token_signing_key(
    run: Run, authorization_server: AuthorizationServer, alice_tokens: TokenSet, verdict: Verdict
) -> None:
    """`jwks_uri` serves public keys only, including the access token's key (RFC 9068 §4)."""
    token = alice_tokens.access_token
    if not jwts.is_jwt(token):
        pytest.skip("access tokens are opaque (not JWTs): there is no signing key to publish")
    url = authorization_server.endpoint("jwks_uri")
    if not verdict.expect(
        "ASM-JWKS-URI",
        url is not None,
        "access tokens are signed JWTs but the metadata has no `jwks_uri`",
    ):
        return
    assert url is not None
    verdict.expect(
        "ASM-JWKS-URI",
        _secure_or_loopback(url),
        f"`jwks_uri` {url!r} is neither https nor loopback",
    )
    jwk_set = fetch_jwk_set(run.http, url)
    if not verdict.expect(
        "ASM-JWKS-URI",
        jwk_set.keys is not None,
        f"GET {url} answered {jwk_set.response.status_code} without a JWK Set",
    ):
        return
    for key in jwk_set.keys or []:
        leaked = [m for m in _PRIVATE_JWK_MEMBERS if m in key]
        verdict.expect(
            "ASM-JWKS-URI",
            not leaked,
            f"key {key.get('kid')!r} in the JWK Set has private members {leaked}",
        )
    kid = jwts.header(token).get("kid")
    kids = jwk_set.kids
    if kid is None and len(kids) == 1:
        verdict.note("the access token names no kid; the JWK Set's only key is taken as its key")
        return
    verdict.expect(
        "ASM-JWKS-URI",
        jwk_set.key_for(kid) is not None,
        f"the access token's kid {kid!r} is not in the JWK Set (kids: {kids})",
    )
