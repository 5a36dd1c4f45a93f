"""Tests of the reference AS against token-endpoint and registration attacks, and of the defect
switches that open each one: concurrent redemption of one code (OAuth 2.1 §4.1.3), client
authentication by the registered method only (RFC 7591 §2, OAuth 2.1 §3.2.2), repeated
parameters (§3.2), parameters outside the POST content (§3.2, §3.2.2), unknown client metadata
(RFC 7591 §2) and `application_type` (OpenID Connect Dynamic Client Registration 1.0 §2).

The AS runs in-process (starlette's TestClient, or httpx's ASGI transport for concurrent
requests). No sign-in is needed: codes are put in the store directly, as /callback would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from reference.authorization_server import create_app
from reference.authorization_server.context import Context
from reference.authorization_server.store import AuthorizationCode, now
from reference.settings import BASIC_SCOPE, ReferenceSettings
from tests.reference.conftest import AS_ISSUER

MCP = "http://127.0.0.1:41002/mcp"
CALLBACK = "http://127.0.0.1/cb"
Response = Any  # starlette's TestClient may return httpx2 responses


class AS:
    """One reference AS with a public and a client_secret_basic client."""

    def __init__(self, *defects: str) -> None:
        settings = ReferenceSettings(
            issuer=AS_ISSUER,
            mcp_url=MCP,
            second_resource="http://127.0.0.1:41003/rs2",
            idp_issuer="http://127.0.0.1:9",  # never contacted: codes go in the store directly
            defects=frozenset(defects),
        )
        self.app: Starlette = create_app(settings)
        self.ctx: Context = self.app.state.ctx
        self.http = TestClient(self.app, base_url=AS_ISSUER, client=("127.0.0.1", 50000))
        self.public = self.register(token_endpoint_auth_method="none")
        self.confidential = self.register(token_endpoint_auth_method="client_secret_basic")

    def register(self, **metadata: Any) -> dict[str, Any]:
        response = self.post_registration(**metadata)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def post_registration(self, **metadata: Any) -> Response:
        body = {"redirect_uris": [CALLBACK], "grant_types": ["authorization_code"], **metadata}
        return self.http.post("/register", json=body)

    def code(self, client: dict[str, Any]) -> tuple[str, str]:
        """A code for alice and `client`, as /callback issues it, and its verifier."""
        verifier = secrets.token_urlsafe(40)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        code = AuthorizationCode(
            code=secrets.token_urlsafe(24),
            client_id=client["client_id"],
            redirect_uri=CALLBACK,
            code_challenge=challenge.rstrip(b"=").decode(),
            code_challenge_method="S256",
            resource=MCP,
            scope=[BASIC_SCOPE],
            user="alice",
            auth_time=now(),
            expires_at=now() + 60,
        )
        self.ctx.store.codes[code.code] = code
        return code.code, verifier

    def redemption(self, client: dict[str, Any]) -> list[tuple[str, str]]:
        code, verifier = self.code(client)
        return [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("client_id", client["client_id"]),
        ]

    def post(self, pairs: list[tuple[str, str]], **kwargs: Any) -> Response:
        """POST /token with `pairs` as form content, repeats included."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.http.post("/token", content=urlencode(pairs), headers=headers, **kwargs)


def error(response: Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["error"])


# --- one code, redeemed at once (OAuth 2.1 §4.1.3) -----------------------------------------


def _concurrent_successes(a: AS, n: int = 5) -> int:
    pairs = a.redemption(a.public)

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=a.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=AS_ISSUER) as client:
            content, headers = (
                urlencode(pairs),
                {"Content-Type": "application/x-www-form-urlencoded"},
            )
            sends = (client.post("/token", content=content, headers=headers) for _ in range(n))
            responses = await asyncio.gather(*sends)
        return [r.status_code for r in responses]

    return asyncio.run(burst()).count(200)


def test_concurrent_redemptions_of_a_code_succeed_once() -> None:
    assert _concurrent_successes(AS()) == 1
    assert _concurrent_successes(AS("token-code-race-double-redeem")) == 5


# --- client authentication (OAuth 2.1 §3.2.2, RFC 7591 §2) ---------------------------------


def test_secret_by_an_unregistered_method_is_refused() -> None:
    a = AS()
    pairs = [*a.redemption(a.confidential), ("client_secret", a.confidential["client_secret"])]
    assert error(a.post(pairs)) == (401, "invalid_client")
    lax = AS("token-auth-method-not-enforced")
    pairs = [
        *lax.redemption(lax.confidential),
        ("client_secret", lax.confidential["client_secret"]),
    ]
    assert lax.post(pairs).status_code == 200


def test_public_client_secret_is_refused() -> None:
    a = AS()
    pairs = [*a.redemption(a.public), ("client_secret", "made-up-secret")]
    assert error(a.post(pairs)) == (401, "invalid_client")
    basic = a.redemption(a.public)
    assert error(a.post(basic, auth=(a.public["client_id"], "made-up-secret"))) == (
        401,
        "invalid_client",
    )
    lax = AS("token-public-client-secret-ignored")
    pairs = [*lax.redemption(lax.public), ("client_secret", "made-up-secret")]
    assert lax.post(pairs).status_code == 200


# --- the request itself (OAuth 2.1 §3.2, §3.2.2) -------------------------------------------


@pytest.mark.parametrize("name", ["grant_type", "code", "code_verifier", "client_id"])
def test_repeated_parameters_are_refused(name: str) -> None:
    a = AS()
    pairs = a.redemption(a.public)
    assert error(a.post([*pairs, (name, dict(pairs)[name])])) == (400, "invalid_request")
    lax = AS("token-repeated-params-accepted")
    pairs = lax.redemption(lax.public)
    assert lax.post([*pairs, (name, dict(pairs)[name])]).status_code == 200
    # Conflicting repeats stay refused under the defect.
    pairs = lax.redemption(lax.public)
    assert error(lax.post([*pairs, (name, "other")])) == (400, "invalid_request")


def test_token_requests_only_as_post_content() -> None:
    a = AS()
    pairs = a.redemption(a.public)
    got = a.http.get("/token", params=pairs)
    assert error(got) == (405, "invalid_request") and got.headers["allow"] == "POST"
    # Parameters in the URI of a POST are not read: the content has no grant_type.
    assert error(a.http.post("/token", params=pairs)) == (400, "invalid_request")
    lax = AS("token-get-accepted")
    assert lax.http.get("/token", params=lax.redemption(lax.public)).status_code == 200
    assert lax.http.post("/token", params=lax.redemption(lax.public)).status_code == 200


# --- registration (RFC 7591 §2, §3.2.2) ----------------------------------------------------


def test_wildcard_redirect_uri_is_refused() -> None:
    response = AS().post_registration(redirect_uris=["https://*.client.example/cb"])
    assert error(response) == (400, "invalid_redirect_uri")


def test_unknown_metadata_is_ignored() -> None:
    client = AS().register(x_unknown={"nested": [1, None]}, x_other=42)
    assert client["redirect_uris"] == [CALLBACK] and "x_unknown" not in client
    strict = AS("dcr-rejects-unknown-metadata").post_registration(x_unknown=1)
    assert error(strict) == (400, "invalid_client_metadata")


def test_application_type_constrains_redirect_uris() -> None:
    a = AS()
    assert a.register(application_type="native")["application_type"] == "native"
    assert "application_type" not in a.register()  # omitted: nothing recorded or constrained
    web = a.post_registration(application_type="web")
    assert error(web) == (400, "invalid_redirect_uri")
    native = a.post_registration(application_type="native", redirect_uris=["https://c.example/cb"])
    assert error(native) == (400, "invalid_redirect_uri")
    assert a.register(application_type="web", redirect_uris=["https://c.example/cb"])
    bogus = a.post_registration(application_type="desktop")
    assert error(bogus) == (400, "invalid_client_metadata")
    lax = AS("dcr-application-type-not-enforced")
    assert lax.register(application_type="web")["application_type"] == "web"
