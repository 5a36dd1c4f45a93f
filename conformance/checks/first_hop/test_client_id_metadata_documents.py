"""Client ID Metadata Documents at the target authorization server: clients whose `client_id`
is the https URL of a JSON document that registers them.

Checked against draft-ietf-oauth-client-id-metadata-document-01 (§3 the identifier URL, §4 the
fetch, §4.1 the document, §4.4 caching, §4.5 redirect URIs, §5 the metadata flag, §6.5 SSRF,
§6.6 size) and MCP 2025-11-25 "Client ID Metadata Documents". The suite serves every document
itself (`conformance.client_documents`) and sees every request the target sends for one. Each
negative check starts by showing that the authorization request for a valid document is not
refused, then serves a document (or URL) that is wrong in one way and judges what reaches the
redirect URI: a request the AS does not refuse outright is followed through the user's sign-in,
since an AS may fetch the document only once the user has signed in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from conformance.attempts import Attempt, attempt, known_good
from conformance.client_documents import (
    CANARY_HOST,
    JSON,
    MAPPED_CANARY_HOST,
    ClientDocuments,
    Fetch,
    client_metadata,
)
from conformance.discovery import AuthorizationServer
from conformance.flows import Flows
from conformance.oauth.authorization import AuthorizationRequest, AuthorizationResponse
from conformance.oauth.clients import Client
from conformance.oauth.token_exchange import describe
from conformance.verdict import Verdict

SUPPORTED = "CIMD-SUPPORTED"
ADVERTISED = "CIMD-METADATA-ADVERTISED"
FLOW_WORKS = "CIMD-FLOW-WORKS"
CLIENT_ID_MATCH = "CIMD-CLIENT-ID-MATCH"
REDIRECT_MATCH = "CIMD-REDIRECT-MATCH"
NO_SYMMETRIC_AUTH = "CIMD-NO-SYMMETRIC-AUTH"
DOCUMENT_VALID = "CIMD-DOCUMENT-VALID"
SIZE_LIMIT = "CIMD-DOCUMENT-SIZE-LIMIT"
URL_FORM = "CIMD-URL-FORM"
FETCH_STRICT = "CIMD-FETCH-STRICT"
SSRF_GUARD = "CIMD-SSRF-GUARD"

FLAG = "client_id_metadata_document_supported"
NOT_ADVERTISED = f"the authorization server metadata does not advertise {FLAG}: true"
OVERSIZED = 256 * 1024  # bytes of padding: fifty times the 5 KB the draft recommends (§6.6)


@dataclass
class Outcome:
    """What one authorization request led to, and what the document listeners served meanwhile."""

    attempt: Attempt
    fetches: list[Fetch]

    @property
    def code(self) -> str | None:
        return self.attempt.code

    @property
    def delivered(self) -> AuthorizationResponse | None:
        return self.attempt.delivered

    def describe(self) -> str:
        return self.attempt.describe()

    def fetched(self, listener: str) -> list[str]:
        return [f.path for f in self.fetches if f.listener == listener]


class DocumentClients:
    """Serves documents for test clients and sends authorization requests in their name."""

    def __init__(self, flows: Flows, documents: ClientDocuments) -> None:
        self.flows = flows
        self.documents = documents
        self.redirect_uri = flows.config.redirect_uri

    def url(self, label: str, origin: str | None = None) -> str:
        """A document URL no request has used yet, on the document host (or `origin`)."""
        return f"{origin or self.documents.origin}{self.documents.new_path(label)}"

    def serve(
        self,
        url: str,
        content: dict[str, Any] | list[Any] | bytes | None = None,
        *,
        status: int = 200,
        content_type: str = JSON,
        headers: tuple[tuple[str, str], ...] = (),
        **members: Any,
    ) -> Client:
        """Serve `content` at the path of `url` (by default the valid document of `url`, with
        `members` added, replaced, or left out when None) and return the client it names."""
        if content is None:
            content = client_metadata(url, [self.redirect_uri], **members)
        path = urlsplit(url).path or "/"
        self.documents.publish(
            path, content, status=status, content_type=content_type, headers=headers
        )
        return Client(url, (self.redirect_uri,))

    def authorize(self, client: Client, note: str, *, redirect_uri: str | None = None) -> Outcome:
        """Send the known-good request for `client`; sign in unless it is refused outright."""
        request = self.flows.request(client, redirect_uri=redirect_uri)
        return self.follow(request, note)

    def follow(self, request: AuthorizationRequest, note: str) -> Outcome:
        since = self.documents.count()
        result = attempt(self.flows, request, note)
        return Outcome(result, self.documents.fetches(since))

    def require_good(self) -> Client:
        """A client with a valid document whose authorization request is not refused (sent
        without signing in), so that a refusal of the altered one has a cause."""
        client = self.serve(self.url("known-good"))
        known_good(self.flows, client)
        return client


def expect_refused(verdict: Verdict, requirement: str, outcome: Outcome, what: str) -> None:
    """No code for `what`. Where the error went (the client or an error page) is the business
    of AUTHZ-BAD-REDIRECT-NO-REDIRECT, and only noted."""
    if not verdict.expect(requirement, outcome.code is None, f"{what}: {outcome.describe()}"):
        return
    if outcome.delivered is not None:
        verdict.note(f"{what}: refused, the error redirected to the client ({outcome.describe()})")


@pytest.fixture(scope="module")
def cimd(
    authorization_server: AuthorizationServer,
    client_documents: ClientDocuments,
    flows: Flows,
) -> DocumentClients:
    if authorization_server.metadata.get(FLAG) is not True:
        pytest.skip(NOT_ADVERTISED)
    return DocumentClients(flows, client_documents)


# --- support and its advertisement (§5) ---


@pytest.mark.requirement(SUPPORTED)
def test_client_id_metadata_documents_are_supported(
    authorization_server: AuthorizationServer, verdict: Verdict
) -> None:
    """MCP 2025-11-25 "Client ID Metadata Documents": authorization servers SHOULD support
    them; §5: those that do say so in their metadata."""
    verdict.expect(
        SUPPORTED,
        authorization_server.metadata.get(FLAG) is True,
        f"the metadata's {FLAG} is {authorization_server.metadata.get(FLAG)!r}: clients "
        "without a registration cannot use a client ID metadata document here",
    )


@pytest.mark.requirement(ADVERTISED)
def test_document_fetching_is_advertised(
    authorization_server: AuthorizationServer,
    flows: Flows,
    request: pytest.FixtureRequest,
    verdict: Verdict,
) -> None:
    """§5: an AS that supports client ID metadata documents MUST include the flag (a boolean)
    in its metadata. Without the flag, a URL client_id must not be fetched nor served."""
    value = authorization_server.metadata.get(FLAG)
    if value is not None and not verdict.expect(
        ADVERTISED, isinstance(value, bool), f"{FLAG} is {value!r}, not a JSON boolean"
    ):
        return
    if value is True:
        return
    documents: ClientDocuments = request.getfixturevalue("client_documents")
    probe = DocumentClients(flows, documents)
    client = probe.serve(probe.url("unadvertised"))
    outcome = probe.authorize(client, "authorization request, client_id a document URL")
    verdict.expect(
        ADVERTISED,
        not outcome.fetched("documents") and outcome.code is None,
        f"the metadata does not advertise {FLAG}, yet the AS "
        + ("issued a code to" if outcome.code else "fetched the document of")
        + f" the client {client.client_id}",
    )


# --- a valid document (§4, MCP "Client ID Metadata Documents Flow") ---


@pytest.mark.requirement(FLOW_WORKS)
def test_document_client_completes_the_code_flow(
    cimd: DocumentClients, flows: Flows, verdict: Verdict
) -> None:
    """A public client known only by its document gets a code and then tokens (PKCE, the
    URL as client_id, no client authentication)."""
    client = cimd.serve(cimd.url("flow"))
    request = flows.request(client)
    outcome = cimd.follow(request, "authorization request, client_id a valid document's URL")
    if not verdict.expect(
        FLOW_WORKS, outcome.code, f"the valid document's client got no code: {outcome.describe()}"
    ):
        return
    response = flows.redeem(
        client, str(outcome.code), request, note="token request, client_id a document URL"
    )
    verdict.expect(
        FLOW_WORKS,
        flows.token_body(response) is not None,
        f"the token request of the valid document's client got {describe(response)}",
    )
    if not outcome.fetched("documents"):
        verdict.note("the AS issued the code without fetching the document")


# --- the document (§4.1, §4.5; MCP "Implementation Requirements") ---


@pytest.mark.requirement(CLIENT_ID_MATCH)
def test_document_client_id_must_be_its_own_url(cimd: DocumentClients, verdict: Verdict) -> None:
    """§4.1: the document's `client_id` MUST equal its URL (simple string comparison)."""
    other = cimd.require_good().client_id
    case_url = cimd.url("case")
    variants: dict[str, tuple[str, str | None]] = {  # the URL, and the client_id it names
        "a document naming another client's URL": (cimd.url("impostor"), other),
        "a document naming its URL with the path in upper case": (
            case_url,
            case_url.replace("/clients/", "/CLIENTS/"),
        ),
        "a document without client_id": (cimd.url("anonymous"), None),
    }
    for what, (url, named) in variants.items():
        outcome = cimd.authorize(cimd.serve(url, client_id=named), f"authorization request, {what}")
        expect_refused(verdict, CLIENT_ID_MATCH, outcome, what)


@pytest.mark.requirement(REDIRECT_MATCH)
def test_redirect_uri_must_be_listed_in_the_document(
    cimd: DocumentClients, verdict: Verdict
) -> None:
    """§4.5 and MCP: the request's redirect_uri must exactly match one the document lists;
    OAuth 2.1 §4.1.2.1: an AS MUST NOT redirect to an invalid redirect URI."""
    client = cimd.require_good()
    listed = urlsplit(client.redirect_uri)
    near_miss = urljoin(client.redirect_uri, "/other-callback")
    outcome = cimd.authorize(
        client, "authorization request, another path on the listed host", redirect_uri=near_miss
    )
    verdict.expect(
        REDIRECT_MATCH,
        outcome.delivered is None,
        f"redirect_uri {near_miss} (the document lists {client.redirect_uri}): "
        f"{outcome.describe()}",
    )
    elsewhere = f"https://client-documents.invalid{listed.path}"
    outcome = cimd.authorize(
        client, "authorization request, a redirect URI on another host", redirect_uri=elsewhere
    )
    expect_refused(verdict, REDIRECT_MATCH, outcome, f"redirect_uri {elsewhere}")


@pytest.mark.requirement(NO_SYMMETRIC_AUTH)
def test_document_with_a_shared_secret_is_refused(
    cimd: DocumentClients, flows: Flows, verdict: Verdict
) -> None:
    """§4.1: no `client_secret_*` (or other shared-secret) method, no `client_secret` and no
    `client_secret_expires_at`: a public document cannot carry a secret (§6.2)."""
    cimd.require_good()
    secret = secrets.token_urlsafe(24)
    flows.http.redactor.remember(secret)
    variants: dict[str, dict[str, Any]] = {
        f"token_endpoint_auth_method {method}": {"token_endpoint_auth_method": method}
        for method in ("client_secret_basic", "client_secret_post", "client_secret_jwt")
    }
    variants["a client_secret"] = {"client_secret": secret, "client_secret_expires_at": 0}
    for what, members in variants.items():
        client = cimd.serve(cimd.url("secret"), **members)
        outcome = cimd.authorize(client, f"authorization request, a document with {what}")
        expect_refused(verdict, NO_SYMMETRIC_AUTH, outcome, f"a document with {what}")


@pytest.mark.requirement(DOCUMENT_VALID)
def test_malformed_document_is_refused(cimd: DocumentClients, verdict: Verdict) -> None:
    """MCP: the AS MUST validate that the document is JSON with the required members
    (`client_id`, `client_name`, `redirect_uris`); §4.1: served as JSON."""
    good = cimd.require_good()
    array_url = cimd.url("array")
    variants = {
        "a document without redirect_uris": cimd.serve(cimd.url("malformed"), redirect_uris=None),
        "a document without client_name": cimd.serve(cimd.url("malformed"), client_name=None),
        "a document whose redirect_uris is a string": cimd.serve(
            cimd.url("malformed"), redirect_uris=good.redirect_uri
        ),
        "an HTML page": cimd.serve(
            cimd.url("html"), b"<!doctype html><title>client</title>", content_type="text/html"
        ),
        "a JSON array": cimd.serve(array_url, [client_metadata(array_url, [good.redirect_uri])]),
    }
    for what, client in variants.items():
        outcome = cimd.authorize(client, f"authorization request, {what}")
        expect_refused(verdict, DOCUMENT_VALID, outcome, what)
    plain = cimd.serve(cimd.url("text-plain"), content_type="text/plain")
    outcome = cimd.authorize(plain, "authorization request, a valid document as text/plain")
    if outcome.code is not None:
        verdict.tolerate(
            DOCUMENT_VALID, "a valid document served as text/plain, not JSON, was accepted"
        )


@pytest.mark.requirement(SIZE_LIMIT)
def test_oversized_document_is_refused(cimd: DocumentClients, verdict: Verdict) -> None:
    """§6.6: the AS SHOULD limit what it reads (5 KB recommended); a 256 KiB document is far
    beyond any reasonable bound."""
    cimd.require_good()
    client = cimd.serve(cimd.url("oversized"), padding="x" * OVERSIZED)
    outcome = cimd.authorize(client, "authorization request, a 256 KiB document")
    expect_refused(verdict, SIZE_LIMIT, outcome, "a valid document padded to 256 KiB")


# --- the identifier URL and its fetch (§3, §4, §4.4, §6.5) ---


@pytest.mark.requirement(URL_FORM)
def test_client_id_url_must_be_well_formed(cimd: DocumentClients, verdict: Verdict) -> None:
    """§3: client identifier URLs MUST be https with a path, without dot segments, fragment,
    username or password. Each URL leads to a document naming exactly that URL."""
    cimd.require_good()
    origin = cimd.documents.origin
    https = urlsplit(origin)
    name = cimd.documents.new_path("form").rsplit("/", 1)[1]
    variants = {
        "an http URL": cimd.url("http", cimd.documents.plain_origin),
        "a URL without a path": origin,
        "a URL with dot segments": f"{origin}/clients/../clients/{name}",
        "a URL with a fragment": f"{cimd.url('fragment')}#client",
        "a URL with a username and password": f"https://user:password@{https.netloc}"
        f"{cimd.documents.new_path('userinfo')}",
    }
    for what, url in variants.items():
        client = cimd.serve(url)
        outcome = cimd.authorize(client, f"authorization request, client_id {what}")
        expect_refused(verdict, URL_FORM, outcome, f"client_id {url} ({what})")
        if outcome.fetches:
            verdict.note(f"the AS fetched {url} ({what}) before refusing it")


@pytest.mark.requirement(FETCH_STRICT)
def test_document_fetch_takes_only_a_direct_200(cimd: DocumentClients, verdict: Verdict) -> None:
    """§4: only a 200 is a document; every other status is an error and redirects MUST NOT be
    followed. §4.4: error responses MUST NOT be cached."""
    cimd.require_good()
    moved, target = cimd.url("moved"), cimd.url("target")
    cimd.serve(target, client_metadata(moved, [cimd.redirect_uri]))
    redirected = cimd.serve(moved, b"", status=302, headers=(("Location", target),))
    outcome = cimd.authorize(redirected, "authorization request, the document URL redirects")
    expect_refused(verdict, FETCH_STRICT, outcome, "a document URL answering 302")
    verdict.expect(
        FETCH_STRICT,
        urlsplit(target).path not in outcome.fetched("documents"),
        f"the AS followed the document URL's redirect to {target}",
    )
    for status in (203, 404):
        client = cimd.serve(cimd.url(f"status-{status}"), status=status)
        outcome = cimd.authorize(client, f"authorization request, a document served as {status}")
        expect_refused(verdict, FETCH_STRICT, outcome, f"a valid document served with {status}")
    flaky = cimd.serve(cimd.url("flaky"), b'{"error": "unavailable"}', status=500)
    outcome = cimd.authorize(flaky, "authorization request, the document URL answers 500")
    expect_refused(verdict, FETCH_STRICT, outcome, "a document URL answering 500")
    cimd.serve(flaky.client_id)
    outcome = cimd.authorize(flaky, "authorization request, the same URL now serving a document")
    verdict.expect(
        FETCH_STRICT,
        outcome.code,
        f"after a 500, the document URL served a valid document, yet {outcome.describe()} "
        "(a cached error?)",
    )


@pytest.mark.requirement(SSRF_GUARD)
def test_document_on_a_special_use_address_is_not_fetched(
    cimd: DocumentClients, verdict: Verdict
) -> None:
    """§6.5: the AS MUST NOT fetch a document URL that resolves to a special-use address
    (RFC 6890). The canary listens on 127.0.0.3, a loopback address that is neither the AS's
    nor the document host it was told to allow; it serves a valid document."""
    cimd.require_good()
    mapped = f"https://[{MAPPED_CANARY_HOST}]:{cimd.documents.canary_port}"
    for what, origin in (
        (CANARY_HOST, cimd.documents.canary_origin),
        (f"{MAPPED_CANARY_HOST} (the same address, IPv4-mapped IPv6)", mapped),
    ):
        client = cimd.serve(cimd.url("canary", origin))
        outcome = cimd.authorize(client, f"authorization request, a document URL on {what}")
        expect_refused(verdict, SSRF_GUARD, outcome, f"a document URL on {what}")
        verdict.expect(
            SSRF_GUARD,
            not outcome.fetched("canary"),
            f"the AS fetched {client.client_id}: a document URL on {what}",
        )
