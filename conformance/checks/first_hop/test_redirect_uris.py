"""Redirect URI validation at the authorization endpoint, attacked.

OAuth 2.1 (draft-ietf-oauth-v2-1-13) §2.3.1 and §4.1.1 (simple string comparison, RFC 3986
§6.2.1), §4.1.2.1 and §7.12.2 (never redirect to an invalid redirect URI), §8.4.2 and RFC 8252
§7.3 (loopback redirect URIs: any port, nothing else); RFC 9700 §4.1 and §4.11 (redirect URI
validation attacks, the authorization server as open redirector). Every check alters the
redirect URI (or the client) of a known-good request from the public test client, and follows
a request that is not refused outright through the sign-in (`conformance.attempts`), so a code
that reaches the altered URI is seen.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit, urlunsplit

import pytest

from conformance.attempts import Attempt, attempt, error_cases, known_good
from conformance.fixtures import Clients, Run, register_client
from conformance.flows import Flows
from conformance.oauth.clients import Client, registration_metadata
from conformance.verdict import Verdict

_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
_LOOPBACK_PORT = 53117
# A second loopback address stands in for an attacker's host; nothing is ever sent to it.
_ELSEWHERE = "127.0.0.2"
_ATTACKER_URI = f"http://{_ELSEWHERE}:9/attacker-cb"


# --- exact matching (OAuth 2.1 §2.3.1, §4.1.1; RFC 9700 §4.1.3) ---


def _exact_match_variants(registered: str) -> list[tuple[str, str]]:
    """Near-miss variants of a registered redirect URI that simple string comparison refuses.

    A different port and another loopback host name are left out for loopback URIs (judged by
    AUTHZ-LOOPBACK-PORT); another host entirely is the subject of the no-redirect checks.
    """
    parts = urlsplit(registered)
    host = parts.hostname or ""
    base = registered.split("#", 1)[0]
    no_query = urlunsplit(parts._replace(query="", fragment=""))
    after_scheme = registered[len(parts.scheme) :]
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
        # RFC 3986 §6.2.2.1 calls these equivalent; §6.2.1 simple comparison does not.
        ("scheme case", parts.scheme.upper() + after_scheme),
        ("scheme change", ("https" if parts.scheme == "http" else "http") + after_scheme),
        ("userinfo", urlunsplit(parts._replace(netloc=f"user@{parts.netloc}"))),
    ]
    if parts.path.upper() != parts.path:
        variants.append(("path case", urlunsplit(parts._replace(path=parts.path.upper()))))
    if host and not host.replace(".", "").isdigit() and ":" not in host:
        variants.append(("host case", no_query.replace(host, host.upper(), 1)))
    if host not in _LOOPBACK_HOSTS:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
        variants.append(("other port", urlunsplit(parts._replace(netloc=f"{netloc}:{port + 1}"))))
    return variants


@pytest.mark.requirement("AUTHZ-REDIRECT-EXACT-MATCH")
def test_redirect_uri_variants_are_refused(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """Near-miss variants of a registered redirect URI get no redirect (OAuth 2.1 §2.3.1)."""
    good = known_good(flows, clients.public)
    for label, variant in _exact_match_variants(good.redirect_uri):
        if variant in clients.public.redirect_uris:
            continue
        refused = attempt(
            flows,
            good.with_param("redirect_uri", variant),
            f"authorization request, redirect_uri variant ({label})",
        )
        locations = [refused.location, refused.delivered.url if refused.delivered else None]
        hit = next((u for u in locations if u and u.startswith(variant)), None)
        verdict.expect(
            "AUTHZ-REDIRECT-EXACT-MATCH",
            hit is None,
            f"{label} variant {variant!r}: redirected to {hit!r}",
        )
        verdict.expect(
            "AUTHZ-REDIRECT-EXACT-MATCH",
            refused.code is None,
            f"{label} variant {variant!r}: {refused.describe()}",
        )


# --- no redirect to an invalid URI (OAuth 2.1 §4.1.2.1, §7.12.2; RFC 9700 §4.11.2) ---


def _redirects_to_origin(refused: Attempt, uri: str) -> bool:
    location = refused.location
    if location is None:
        return False
    a, b = urlsplit(location), urlsplit(uri)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _expect_not_sent_to(verdict: Verdict, refused: Attempt, uri: str, what: str) -> None:
    """Nothing (no code, no error) reached `uri`, and the user agent was not sent to its origin
    (OAuth 2.1 §4.1.2.1)."""
    sent, where = "the user agent", refused.location
    if refused.delivered is not None:
        sent = "a code" if refused.code else f"error={refused.error!r}"
        where = refused.delivered.url
    verdict.expect(
        "AUTHZ-BAD-REDIRECT-NO-REDIRECT",
        refused.delivered is None and not _redirects_to_origin(refused, uri),
        f"{what}: {sent} was sent to {where!r}",
    )


def _note_refusals(verdict: Verdict, refusals: list[Attempt]) -> None:
    """How the server refused, for information (the status and page are not judged)."""
    answers = sorted({r.describe() for r in refusals})
    verdict.note(f"{len(refusals)} requests, answered: {'; '.join(answers)}")


def _elsewhere_variants(registered: str) -> list[tuple[str, str]]:
    """Unregistered redirect URIs on another host, some dressed up as the registered one."""
    parts = urlsplit(registered)
    port = f":{parts.port}" if parts.port else ""
    return [
        ("an unrelated URI", _ATTACKER_URI),
        (
            "the registered path on another host",
            urlunsplit(parts._replace(netloc=_ELSEWHERE + port)),
        ),
        # `http://127.0.0.1:8765@127.0.0.2/callback` goes to 127.0.0.2: the registered host
        # and port are only the userinfo (RFC 3986 §3.2.1).
        (
            "the registered host as userinfo",
            urlunsplit(parts._replace(netloc=f"{parts.netloc}@{_ELSEWHERE}")),
        ),
    ]


@pytest.mark.requirement("AUTHZ-BAD-REDIRECT-NO-REDIRECT")
def test_unregistered_redirect_uri_is_not_redirected_to(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """An unregistered redirect_uri gets an error page, never a redirect (OAuth 2.1 §4.1.2.1)."""
    good = known_good(flows, clients.public)
    refusals = []
    for label, uri in _elsewhere_variants(good.redirect_uri):
        refused = attempt(
            flows,
            good.with_param("redirect_uri", uri),
            f"authorization request, unregistered redirect_uri ({label})",
        )
        _expect_not_sent_to(verdict, refused, uri, f"{label} {uri!r}")
        refusals.append(refused)
    _note_refusals(verdict, refusals)


@pytest.mark.requirement("AUTHZ-BAD-REDIRECT-NO-REDIRECT")
def test_no_request_error_is_redirected_to_an_unregistered_uri(
    flows: Flows, clients: Clients, verdict: Verdict
) -> None:
    """With an unregistered redirect_uri, no other error is redirected to it either (OAuth 2.1
    §4.1.2.1, §7.12.2; RFC 9700 §4.11.2)."""
    good = known_good(flows, clients.public)
    refusals = []
    for case in error_cases(good.with_param("redirect_uri", _ATTACKER_URI)):
        refused = attempt(
            flows, case.request, f"authorization request, unregistered redirect_uri, {case.label}"
        )
        _expect_not_sent_to(
            verdict, refused, _ATTACKER_URI, f"unregistered redirect_uri with {case.label}"
        )
        refusals.append(refused)
    _note_refusals(verdict, refusals)


@pytest.mark.requirement("AUTHZ-BAD-REDIRECT-NO-REDIRECT")
def test_unknown_client_is_not_redirected(flows: Flows, clients: Clients, verdict: Verdict) -> None:
    """An unknown or missing client_id gets an error page, never a redirect, whatever else is
    wrong (OAuth 2.1 §4.1.2.1)."""
    good = known_good(flows, clients.public)
    refusals = []
    for label, request in (
        ("an unknown client_id", good.with_param("client_id", f"unknown-{secrets.token_hex(8)}")),
        ("no client_id", good.without("client_id")),
    ):
        cases = [("", request), *((f" and {c.label}", c.request) for c in error_cases(request))]
        for more, variant in cases:
            refused = attempt(flows, variant, f"authorization request, {label}{more}")
            _expect_not_sent_to(verdict, refused, good.redirect_uri, f"{label}{more}")
            refusals.append(refused)
    _note_refusals(verdict, refusals)


# --- loopback redirect URIs (OAuth 2.1 §8.4.2, RFC 8252 §7.3) ---

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
    good = known_good(flows, loopback_client)
    with_port = f"http://127.0.0.1:{_LOOPBACK_PORT}/callback"
    accepted = attempt(
        flows,
        good.with_param("redirect_uri", with_port),
        f"authorization request, loopback redirect_uri on port {_LOOPBACK_PORT}",
    )
    verdict.expect(
        "AUTHZ-LOOPBACK-PORT",
        accepted.code is not None,
        f"registered {_LOOPBACK_REGISTERED}, requested {with_port}: {accepted.describe()}",
    )


def _loopback_variants(port: int) -> list[tuple[str, str]]:
    """`_LOOPBACK_REGISTERED` on another port and changed in one more way each.

    OAuth 2.1 §8.4.2 lets only the port vary. `localhost` and the IP literals are different
    hosts under simple string comparison (OAuth 2.1 §4.1.1), however alike they resolve.
    """
    return [
        ("another path", f"http://127.0.0.1:{port}/other"),
        ("a path suffix", f"http://127.0.0.1:{port}/callback/x"),
        ("an extra query", f"http://127.0.0.1:{port}/callback?x=1"),
        ("localhost for 127.0.0.1", f"http://localhost:{port}/callback"),
        ("[::1] for 127.0.0.1", f"http://[::1]:{port}/callback"),
        ("another loopback address", f"http://{_ELSEWHERE}:{port}/callback"),
        ("https for http", f"https://127.0.0.1:{port}/callback"),
        ("userinfo", f"http://user@127.0.0.1:{port}/callback"),
    ]


@pytest.mark.requirement("AUTHZ-LOOPBACK-PORT")
def test_loopback_port_exception_covers_only_the_port(
    flows: Flows, loopback_client: Client, verdict: Verdict
) -> None:
    """Any loopback port, but scheme, host, path and query still match exactly (OAuth 2.1
    §4.1.1, §8.4.2; RFC 8252 §7.3)."""
    good = known_good(flows, loopback_client)
    for label, variant in _loopback_variants(_LOOPBACK_PORT):
        refused = attempt(
            flows,
            good.with_param("redirect_uri", variant),
            f"authorization request, loopback redirect_uri with {label}",
        )
        verdict.expect(
            "AUTHZ-LOOPBACK-PORT",
            refused.code is None,
            f"registered {_LOOPBACK_REGISTERED}, requested {variant} ({label}): "
            f"{refused.describe()}",
        )
        if refused.code is None and refused.delivered is not None:
            verdict.note(
                f"{label}: the error was redirected to {variant} "
                "(judged by AUTHZ-BAD-REDIRECT-NO-REDIRECT)"
            )
