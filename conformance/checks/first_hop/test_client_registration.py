"""RFC 7591 dynamic client registration, as MCP clients use it to obtain a client_id.

RFC 7591 §3.1 (the request), §3.2.1 (201 with the registered metadata) and §3.2.2 (errors):
a valid registration succeeds, and redirect URIs or metadata the server must not honour are
refused (or, for metadata, replaced by a safe value the response shows); §2: metadata the
server does not understand is ignored. OpenID Connect Dynamic Client Registration 1.0 §2 (as
MCP 2026-07-28 clients use it): a recorded `application_type` constrains the redirect URIs.
Every negative check changes one member of a registration request that the same run shows is
accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conformance.discovery import json_object
from conformance.evidence import Exchange
from conformance.fixtures import Run
from conformance.flows import Flows
from conformance.http import recording
from conformance.oauth.clients import client_from_registration, register, registration_metadata
from conformance.verdict import Verdict

# RFC 7591 §2 and the IANA "OAuth Token Endpoint Authentication Methods" registry.
_KNOWN_AUTH_METHODS = {
    "none",
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
}
# Members no registry defines (RFC 7591 §2: the server MUST ignore what it does not understand),
# one of each JSON shape.
_UNKNOWN_METADATA: dict[str, Any] = {
    "x_mcp_conformance_note": "ignore me",
    "x_mcp_conformance_options": {"nested": ["value", 1, True, None]},
    "x_mcp_conformance_level": 42,
}
# What a registration with unknown members must still register as without them.
_REGISTERED_MEMBERS = (
    "redirect_uris",
    "grant_types",
    "response_types",
    "token_endpoint_auth_method",
)
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass
class _Registration:
    endpoint: str
    response: httpx.Response
    body: dict[str, Any] | None
    exchanges: list[Exchange]

    @property
    def succeeded(self) -> bool:
        return self.response.is_success and bool(self.body) and "client_id" in (self.body or {})


def _metadata(run: Run, auth_method: str = "none", **changes: Any) -> dict[str, Any]:
    """A known-good MCP client registration, with `changes` replacing members."""
    return {**registration_metadata([run.config.redirect_uri], auth_method), **changes}


def _register(run: Run, endpoint: str, metadata: dict[str, Any], note: str) -> _Registration:
    with recording() as exchanges:
        response = register(
            run.http, endpoint, metadata, run.config.initial_access_token, note=note
        )
    body = json_object(response)
    if body:
        run.redactor.remember(body.get("client_secret"))
        run.redactor.remember(body.get("registration_access_token"))
    return _Registration(endpoint, response, body, exchanges)


@pytest.fixture(scope="module")
def dcr_endpoint(run: Run, registration_endpoint: str | None) -> str:
    """The registration endpoint (skips when the deployment offers no dynamic registration)."""
    if run.config.registration == "preregistered":
        pytest.skip("the target config uses pre-registered clients only")
    if not registration_endpoint:
        pytest.skip("the AS advertises no registration_endpoint and the config names none")
    return registration_endpoint


@pytest.fixture(scope="module")
def known_good(run: Run, dcr_endpoint: str) -> _Registration:
    """One valid public-client registration, the baseline the negative checks alter."""
    return _register(run, dcr_endpoint, _metadata(run), "register a known-good public client")


def _baseline(known_good: _Registration, verdict: Verdict) -> None:
    verdict.attach(known_good.exchanges)
    verdict.precondition(
        known_good.succeeded,
        f"a known-good registration was refused ({known_good.response.status_code})",
    )


def _error_in(body: dict[str, Any] | None) -> str | None:
    value = body.get("error") if body else None
    return value if isinstance(value, str) else None


def _error(registration: _Registration) -> str | None:
    return _error_in(registration.body)


@pytest.mark.requirement("DCR-REGISTER-201")
def test_valid_registration_returns_201_with_client_id(
    known_good: _Registration, verdict: Verdict
) -> None:
    """201, JSON, client_id and the registered metadata, no secret if public (RFC 7591 §3.2.1)."""
    verdict.attach(known_good.exchanges)
    response, body = known_good.response, known_good.body
    verdict.expect(
        "DCR-REGISTER-201",
        response.status_code == 201,
        f"a valid registration got {response.status_code}, not 201",
    )
    if not verdict.expect(
        "DCR-REGISTER-201", body is not None, "the registration response is not a JSON object"
    ):
        return
    assert body is not None
    verdict.expect(
        "DCR-REGISTER-201",
        isinstance(body.get("client_id"), str) and body["client_id"],
        f"the registration response has no client_id: {body.get('client_id')!r}",
    )
    verdict.expect(
        "DCR-REGISTER-201",
        isinstance(body.get("redirect_uris"), list),
        "the registration response does not return the registered redirect_uris",
    )
    if body.get("token_endpoint_auth_method", "none") == "none":
        verdict.expect(
            "DCR-REGISTER-201",
            "client_secret" not in body,
            "a public client (token_endpoint_auth_method none) was issued a secret",
        )


@pytest.mark.requirement("DCR-REGISTER-201")
def test_issued_client_secret_comes_with_expiry(
    run: Run, dcr_endpoint: str, verdict: Verdict
) -> None:
    """An issued secret comes with client_secret_expires_at (RFC 7591 §3.2.1)."""
    registration = _register(
        run, dcr_endpoint, _metadata(run, "client_secret_basic"), "register a confidential client"
    )
    verdict.precondition(
        registration.succeeded,
        f"a valid confidential registration was refused ({registration.response.status_code})",
    )
    body = registration.body or {}
    if "client_secret" not in body:
        pytest.skip("the AS issued no client secret to a client_secret_basic registration")
    verdict.expect(
        "DCR-REGISTER-201",
        "client_secret_expires_at" in body,
        "a client_secret was issued without client_secret_expires_at",
    )


@pytest.mark.requirement("DCR-INVALID-REDIRECT-URI")
@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://evil.example/cb",  # neither https nor loopback (never contacted: a string only)
        "http://localhost.evil.example/cb",  # a loopback name as a prefix only
        "/cb",  # relative
        "https://client.example/cb#x",  # fragment
        "javascript:alert(1)",  # script scheme
        "data:text/html,<script>alert(1)</script>",  # inline document
        "file:///etc/passwd",  # local file
        "https://*.client.example/cb",  # wildcard host (RFC 9700 §4.1.1)
    ],
    ids=[
        "http-non-loopback",
        "http-loopback-lookalike",
        "relative",
        "fragment",
        "javascript",
        "data",
        "file",
        "wildcard-host",
    ],
)
def test_unsafe_redirect_uri_is_refused(
    run: Run, known_good: _Registration, redirect_uri: str, verdict: Verdict
) -> None:
    """An unsafe redirect URI gets 400 invalid_redirect_uri (RFC 7591 §3.2.2, OAuth 2.1 §2.3.1)."""
    _baseline(known_good, verdict)
    attempt = _register(
        run,
        known_good.endpoint,
        _metadata(run, redirect_uris=[redirect_uri]),
        f"register redirect URI {redirect_uri}",
    )
    status, error = attempt.response.status_code, _error(attempt)
    if not verdict.expect(
        "DCR-INVALID-REDIRECT-URI",
        not attempt.response.is_success,
        f"redirect URI {redirect_uri!r} was registered ({status})",
    ):
        return
    verdict.expect(
        "DCR-INVALID-REDIRECT-URI",
        status == 400 and error in ("invalid_redirect_uri", "invalid_client_metadata"),
        f"redirect URI {redirect_uri!r} got {status} with error {error!r}, "
        "not 400 invalid_redirect_uri",
    )
    if error == "invalid_client_metadata":
        verdict.tolerate(
            "DCR-INVALID-REDIRECT-URI",
            f"redirect URI {redirect_uri!r} was refused with invalid_client_metadata; "
            "RFC 7591 §3.2.2 defines invalid_redirect_uri for it",
        )


@pytest.mark.requirement("DCR-INVALID-CLIENT-METADATA")
@pytest.mark.parametrize(
    "member,value",
    [
        ("grant_types", ["password"]),
        ("token_endpoint_auth_method", "bogus"),
        ("response_types", ["token"]),
    ],
    ids=["password-grant", "unknown-auth-method", "token-response-type"],
)
def test_unsafe_client_metadata_is_refused_or_replaced(
    run: Run, known_good: _Registration, member: str, value: Any, verdict: Verdict
) -> None:
    """Unsupported metadata: invalid_client_metadata, or a safe value echoed (RFC 7591 §3.2.2)."""
    _baseline(known_good, verdict)
    attempt = _register(
        run, known_good.endpoint, _metadata(run, **{member: value}), f"register {member}={value!r}"
    )
    status, body = attempt.response.status_code, attempt.body or {}
    if attempt.response.is_success:
        echoed = body.get(member)
        verdict.expect(
            "DCR-INVALID-CLIENT-METADATA",
            _safe(member, echoed),
            f"{member}={value!r} was registered ({status}) and the response "
            f"returns {member}={echoed!r} instead of a safe substitute",
        )
        return
    verdict.expect(
        "DCR-INVALID-CLIENT-METADATA",
        status == 400 and _error(attempt) == "invalid_client_metadata",
        f"{member}={value!r} got {status} with error {_error(attempt)!r}, "
        "not 400 invalid_client_metadata",
    )


def _safe(member: str, echoed: Any) -> bool:
    """True when the registered value the server returns is one it may honour."""
    if member == "grant_types":
        return (
            isinstance(echoed, list) and bool(echoed) and not {"password", "implicit"} & set(echoed)
        )
    if member == "token_endpoint_auth_method":
        return isinstance(echoed, str) and echoed in _KNOWN_AUTH_METHODS
    if member == "response_types":
        return (
            isinstance(echoed, list)
            and bool(echoed)
            and all(isinstance(t, str) and "token" not in t.split() for t in echoed)
        )
    return False


@pytest.mark.requirement("DCR-UNKNOWN-METADATA-IGNORED")
def test_unknown_metadata_is_ignored(
    run: Run, flows: Flows, known_good: _Registration, verdict: Verdict
) -> None:
    """Members the server does not understand neither stop nor change a registration, and the
    client works like any other (RFC 7591 §2: "MUST ignore")."""
    _baseline(known_good, verdict)
    rid = "DCR-UNKNOWN-METADATA-IGNORED"
    metadata = _metadata(run, **_UNKNOWN_METADATA)
    attempt = _register(run, known_good.endpoint, metadata, "register with unknown metadata")
    if not verdict.expect(
        rid,
        attempt.succeeded,
        f"a registration with the unknown members {sorted(_UNKNOWN_METADATA)} was refused: "
        f"{attempt.response.status_code} with error {_error(attempt)!r}",
    ):
        return
    body, baseline = attempt.body or {}, known_good.body or {}
    for member in _REGISTERED_MEMBERS:
        verdict.expect(
            rid,
            body.get(member) == baseline.get(member),
            f"with unknown members present, {member} was registered as {body.get(member)!r}, "
            f"not {baseline.get(member)!r} as without them",
        )
    echoed = sorted(set(_UNKNOWN_METADATA) & set(body))
    if echoed:
        verdict.note(f"the registration response echoes the unknown members {echoed}")
    client = client_from_registration(body, metadata)
    request = flows.request(client)
    authorization = flows.authorize(request)
    if not verdict.expect(
        rid,
        authorization.code,
        f"the client registered with unknown metadata got no code (error={authorization.error!r})",
    ):
        return
    response = flows.redeem(client, str(authorization.code), request, note="redeem its code")
    verdict.expect(
        rid,
        flows.token_body(response) is not None,
        f"the client registered with unknown metadata could not redeem its code "
        f"({response.status_code} error={_error_in(json_object(response))!r})",
    )


def _loopback_redirect(run: Run) -> str:
    """A loopback http redirect URI, as a native client registers (RFC 8252 §7.3)."""
    uri = run.config.redirect_uri
    parts = urlsplit(uri)
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return uri
    return "http://127.0.0.1/callback"


@pytest.mark.requirement("DCR-APPLICATION-TYPE")
def test_application_type_constrains_redirect_uris(
    run: Run, known_good: _Registration, verdict: Verdict
) -> None:
    """Where application_type is recorded, a native client registers a loopback http redirect
    URI and a web client cannot (OpenID Connect Dynamic Client Registration 1.0 §2; MCP
    2026-07-28 "Application Type and Redirect URI Constraints")."""
    _baseline(known_good, verdict)
    rid = "DCR-APPLICATION-TYPE"
    loopback = _loopback_redirect(run)
    native = _register(
        run,
        known_good.endpoint,
        _metadata(run, redirect_uris=[loopback], application_type="native"),
        "register a native client with a loopback redirect URI",
    )
    if not verdict.expect(
        rid,
        native.succeeded,
        f"a native client's loopback redirect URI {loopback} was refused: "
        f"{native.response.status_code} with error {_error(native)!r}",
    ):
        return
    recorded = (native.body or {}).get("application_type")
    if recorded is None:
        pytest.skip(
            "the AS does not record application_type (a server that is not an OpenID "
            "provider may ignore it: RFC 7591 §2, MCP 2026-07-28)"
        )
    verdict.expect(
        rid, recorded == "native", f"application_type native was registered as {recorded!r}"
    )
    web = _register(
        run,
        known_good.endpoint,
        _metadata(run, redirect_uris=[loopback], application_type="web"),
        "register a web client with a loopback redirect URI",
    )
    status, error = web.response.status_code, _error(web)
    if not verdict.expect(
        rid,
        not web.response.is_success,
        f"a web client registered the loopback redirect URI {loopback} ({status})",
    ):
        return
    verdict.expect(
        rid,
        status == 400 and error in ("invalid_redirect_uri", "invalid_client_metadata"),
        f"a web client's loopback redirect URI got {status} with error {error!r}, "
        "not 400 invalid_redirect_uri",
    )
