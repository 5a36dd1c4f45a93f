"""The reference AS's client ID metadata document fetcher, against the suite's document host:
the URL rules (draft -01 §3), the SSRF guard (§6.5), the document rules (§4.1) and caching
(§4.4)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from conformance.client_documents import CANARY_HOST, ClientDocuments, client_metadata
from conformance.servers import stop_all
from reference import authorization_server
from reference.authorization_server.client_metadata_documents import (
    DocumentFetcher,
    DocumentRefused,
    _globally_routable,
    check_client_id_url,
)
from reference.authorization_server.context import Context
from reference.authorization_server.store import Client
from reference.settings import ReferenceSettings

REDIRECT_URI = "http://127.0.0.1:8765/callback"


@pytest.fixture(scope="module")
def documents() -> Iterator[ClientDocuments]:
    documents = ClientDocuments()
    servers = documents.launch()
    try:
        for server in servers:
            server.wait_started()
        yield documents
    finally:
        stop_all(servers)
        documents.close()


class Fetcher:
    def __init__(self, documents: ClientDocuments, **settings: Any) -> None:
        app = authorization_server.create_app(
            ReferenceSettings(
                issuer="http://127.0.0.1:41001",
                mcp_url="http://127.0.0.1:41002/mcp",
                second_resource="http://127.0.0.1:41002/reports-api",
                idp_issuer="http://127.0.0.1:41003",
                cimd_ca_file=documents.ca_file,
                **settings,
            )
        )
        self.ctx: Context = app.state.ctx
        self.fetcher: DocumentFetcher = app.state.client_documents
        self.loop = asyncio.new_event_loop()  # one loop: the fetcher's HTTP client is bound to it

    def client(self, url: str) -> Client:
        return self.loop.run_until_complete(self.fetcher.client(self.ctx, url))


@pytest.fixture(scope="module")
def fetcher(documents: ClientDocuments) -> Iterator[Fetcher]:
    fetcher = Fetcher(documents, cimd_allowed_hosts=(documents.host,), cimd_loopback_only=True)
    yield fetcher
    fetcher.loop.close()


def serve(documents: ClientDocuments, label: str, origin: str | None = None, **kw: Any) -> str:
    path = documents.new_path(label)
    url = f"{origin or documents.origin}{path}"
    headers = kw.pop("headers", ())
    documents.publish(path, client_metadata(url, [REDIRECT_URI], **kw), headers=headers)
    return url


def test_a_valid_document_registers_a_public_client(
    documents: ClientDocuments, fetcher: Fetcher
) -> None:
    url = serve(documents, "valid")
    client = fetcher.client(url)
    assert client.client_id == url
    assert client.redirect_uris == [REDIRECT_URI]
    assert client.token_endpoint_auth_method == "none" and not client.confidential
    assert client.grant_types == ["authorization_code"]


@pytest.mark.parametrize(
    "url",
    [
        "http://client.example/c.json",
        "https://client.example",
        "https://client.example/a/../c.json",
        "https://client.example/./c.json",
        "https://client.example/c.json#x",
        "https://user:pw@client.example/c.json",
    ],
)
def test_malformed_client_id_urls_are_refused(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(DocumentRefused):
        check_client_id_url(fetcher.ctx, url)


@pytest.mark.parametrize(
    ("address", "routable"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("127.0.0.3", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("fe80::1%1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.3", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_special_use_addresses_are_not_routable(address: str, routable: bool) -> None:
    assert _globally_routable(address) is routable


def test_a_loopback_document_outside_the_allowlist_is_not_fetched(
    documents: ClientDocuments, fetcher: Fetcher
) -> None:
    since = documents.count()
    for origin in (
        documents.canary_origin,
        f"https://[::ffff:{CANARY_HOST}]:{documents.canary_port}",
    ):
        with pytest.raises(DocumentRefused, match="special-use"):
            fetcher.client(serve(documents, "canary", origin))
    assert documents.fetches(since) == []


def test_a_loopback_only_deployment_resolves_no_names(fetcher: Fetcher) -> None:
    with pytest.raises(DocumentRefused, match="does not resolve"):
        fetcher.client("https://client.example/c.json")


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"client_id": "https://127.0.0.2/other.json"}, "is not its URL"),
        ({"client_name": None}, "lacks client_name"),
        ({"redirect_uris": REDIRECT_URI}, "non-empty array"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "not an absolute URI|neither https"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "shared secret"),
        ({"client_secret": "s3cret"}, "must not carry"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "not supported"),
    ],
)
def test_invalid_documents_are_refused(
    documents: ClientDocuments, fetcher: Fetcher, members: dict[str, Any], reason: str
) -> None:
    with pytest.raises(DocumentRefused, match=reason):
        fetcher.client(serve(documents, "invalid", **members))


def test_only_a_direct_200_of_bounded_json_is_a_document(
    documents: ClientDocuments, fetcher: Fetcher
) -> None:
    cases = {
        "answered 302": {"status": 302, "headers": (("Location", documents.origin + "/x"),)},
        "answered 203": {"status": 203},
        "not JSON": {"content_type": "text/plain"},
    }
    for reason, options in cases.items():
        path = documents.new_path("strict")
        documents.publish(path, client_metadata(documents.origin + path, []), **options)
        with pytest.raises(DocumentRefused, match=reason):
            fetcher.client(documents.origin + path)
    with pytest.raises(DocumentRefused, match="larger than"):
        fetcher.client(serve(documents, "large", padding="x" * 6000))


def test_documents_are_cached_for_their_max_age_and_errors_never(
    documents: ClientDocuments, fetcher: Fetcher
) -> None:
    url = serve(documents, "cached", headers=(("Cache-Control", "max-age=60"),))
    fetcher.client(url)
    since = documents.count()
    fetcher.client(url)
    assert documents.fetches(since) == []
    path = url.removeprefix(documents.origin).replace("cached", "flaky")
    documents.publish(path, b"{}", status=500, headers=(("Cache-Control", "max-age=60"),))
    with pytest.raises(DocumentRefused):
        fetcher.client(documents.origin + path)
    documents.publish(path, client_metadata(documents.origin + path, [REDIRECT_URI]))
    assert fetcher.client(documents.origin + path).client_id == documents.origin + path
