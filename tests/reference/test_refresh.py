"""Tests of the reference AS's refresh tokens: the refresh grant (OAuth 2.1 §4.3.1), their
lifetime and the lifetime test hook, revocation (RFC 7009) and introspection (RFC 7662), and
the refresh-token defect switches.

The AS runs in-process (starlette's TestClient, or httpx's ASGI transport for concurrent
requests). No sign-in is needed: a grant and its first tokens are put in the store directly,
as a code redemption would, and everything after that goes over HTTP.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from reference.authorization_server import create_app
from reference.authorization_server.context import Context
from reference.authorization_server.store import now
from reference.authorization_server.tokens import REFRESH_TOKEN_LIFETIME, issue_for_grant
from reference.settings import BASIC_SCOPE, PRIVILEGED_SCOPE, ReferenceSettings
from tests.reference.conftest import AS_ISSUER

MCP = "http://127.0.0.1:41002/mcp"
RS2 = "http://127.0.0.1:41003/rs2"
IDP = "http://127.0.0.1:9"  # never contacted: grants are put in the store directly
Response = Any  # starlette's TestClient may return httpx2 responses


class AS:
    """One reference AS with a public client, a confidential one, and alice's grant."""

    def __init__(self, *defects: str, test_hooks: bool = True) -> None:
        settings = ReferenceSettings(
            issuer=AS_ISSUER,
            mcp_url=MCP,
            second_resource=RS2,
            idp_issuer=IDP,
            defects=frozenset(defects),
            test_signer=test_hooks,
        )
        self.app: Starlette = create_app(settings)
        self.ctx: Context = self.app.state.ctx
        self.http = TestClient(self.app, base_url=AS_ISSUER, client=("127.0.0.1", 50000))
        self.public = self.register("none")
        self.other = self.register("none")
        self.confidential = self.register("client_secret_basic")

    def register(self, auth_method: str) -> dict[str, Any]:
        body = {
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": auth_method,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }
        response = self.http.post("/register", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def grant(self, client: dict[str, Any], scope: tuple[str, ...] = (BASIC_SCOPE,)) -> str:
        """Alice's grant for `client` (as a code redemption makes it); its refresh token."""
        grant = self.ctx.store.new_grant(
            client_id=client["client_id"],
            user="alice",
            scope=list(scope),
            resource=MCP,
            auth_time=now(),
        )
        issued = issue_for_grant(self.ctx, grant, scope=list(scope), with_refresh_token=True)
        assert issued.refresh_token is not None
        return issued.refresh_token

    def refresh(self, client: dict[str, Any], rt: str, **extra: str) -> Response:
        data = {"grant_type": "refresh_token", "refresh_token": rt, **extra}
        secret = client.get("client_secret")
        auth = (client["client_id"], secret) if secret else None
        if auth is None:
            data["client_id"] = client["client_id"]
        return self.http.post("/token", data=data, auth=auth)

    def introspect(self, token: str) -> dict[str, Any]:
        response = self.http.post(
            "/introspect",
            data={"token": token},
            auth=(self.confidential["client_id"], self.confidential["client_secret"]),
        )
        assert response.status_code == 200, response.text
        return response.json()

    def revoke(self, client: dict[str, Any], token: str) -> Response:
        return self.http.post("/revoke", data={"token": token, "client_id": client["client_id"]})

    def lifetimes(self, **body: Any) -> Response:
        return self.http.post("/_test/lifetimes", json=body)

    def expire(self, rt: str) -> None:
        """Move a refresh token past its lifetime (instead of waiting for it)."""
        self.ctx.store.refresh_tokens[rt].expires_at = time.time() - 1


def error(response: Response) -> str:
    return str(response.json()["error"])


# --- the grant -----------------------------------------------------------------------------


def test_refresh_rotates_and_invalidates_the_presented_token() -> None:
    a = AS()
    rt1 = a.grant(a.public)
    response = a.refresh(a.public, rt1, resource=MCP)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["refresh_token"] != rt1 and body["scope"] == BASIC_SCOPE
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == MCP
    assert a.introspect(rt1) == {"active": False}
    assert a.introspect(body["refresh_token"])["active"] is True


def test_scope_resource_and_client_stay_within_the_grant() -> None:
    a = AS()
    rt = a.grant(a.public, (BASIC_SCOPE,))
    assert error(a.refresh(a.public, rt, scope=f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}")) == (
        "invalid_scope"
    )
    assert error(a.refresh(a.public, rt, resource=RS2)) == "invalid_target"
    assert error(a.refresh(a.other, rt)) == "invalid_grant"
    no_secret = {"client_id": a.confidential["client_id"]}
    assert a.refresh(no_secret, a.grant(a.confidential)).status_code == 401
    assert a.refresh(a.public, rt).status_code == 200  # none of the refusals used it up


def test_replay_of_a_superseded_token_revokes_the_family() -> None:
    a = AS()
    rt1 = a.grant(a.public)
    second = a.refresh(a.public, rt1).json()
    assert error(a.refresh(a.public, rt1)) == "invalid_grant"
    assert error(a.refresh(a.public, second["refresh_token"])) == "invalid_grant"
    assert a.introspect(second["refresh_token"]) == {"active": False}
    assert a.introspect(second["access_token"]) == {"active": False}


def test_concurrent_refreshes_succeed_once() -> None:
    assert _concurrent_successes(AS()) == 1


def test_race_defect_lets_every_concurrent_refresh_succeed() -> None:
    assert _concurrent_successes(AS("rt-race-double-redeem")) == 5


def _concurrent_successes(a: AS, n: int = 5) -> int:
    """Redeem one refresh token n times at once on the AS's own event loop."""
    rt = a.grant(a.public)
    data = {"grant_type": "refresh_token", "refresh_token": rt, "client_id": a.public["client_id"]}

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=a.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=AS_ISSUER) as client:
            responses = await asyncio.gather(*(client.post("/token", data=data) for _ in range(n)))
        return [r.status_code for r in responses]

    return asyncio.run(burst()).count(200)


# --- expiry and the lifetime hook ----------------------------------------------------------


def test_refresh_tokens_expire_after_a_day_by_default() -> None:
    a = AS()
    rt = a.grant(a.public)
    expires_at = a.ctx.store.refresh_tokens[rt].expires_at
    assert expires_at is not None
    assert abs(expires_at - (time.time() + REFRESH_TOKEN_LIFETIME)) < 5


def test_expired_refresh_token_is_refused_and_inactive() -> None:
    a = AS()
    rt = a.grant(a.public)
    a.expire(rt)
    response = a.refresh(a.public, rt)
    assert response.status_code == 400 and error(response) == "invalid_grant"
    assert a.introspect(rt) == {"active": False}


def test_lifetime_hook_shortens_lifetimes_for_one_client_only() -> None:
    a = AS()
    response = a.lifetimes(client_id=a.public["client_id"], access_token=1, refresh_token=2)
    assert response.status_code == 200
    assert response.json() == {
        "client_id": a.public["client_id"],
        "access_token": 1,
        "refresh_token": 2,
    }
    short = a.refresh(a.public, a.grant(a.public)).json()
    assert short["expires_in"] == 1
    expires_at = a.ctx.store.refresh_tokens[short["refresh_token"]].expires_at
    assert expires_at is not None and expires_at - time.time() <= 2
    other = a.refresh(a.other, a.grant(a.other)).json()
    assert other["expires_in"] == a.ctx.settings.access_token_lifetime
    a.lifetimes(client_id=a.public["client_id"])  # nulls restore the defaults
    assert a.refresh(a.public, a.grant(a.public)).json()["expires_in"] == 300


def test_lifetime_hook_overrides_the_long_lived_defect() -> None:
    a = AS("at-long-lived")
    a.lifetimes(client_id=a.public["client_id"], access_token=1)
    assert a.refresh(a.public, a.grant(a.public)).json()["expires_in"] == 1
    assert a.refresh(a.other, a.grant(a.other)).json()["expires_in"] == 86400


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"client_id": "nobody", "access_token": 1}, 404),
        ({"access_token": 1}, 400),
        ({"client_id": "CLIENT", "access_token": 0}, 400),
        ({"client_id": "CLIENT", "refresh_token": "1"}, 400),
        ({"client_id": "CLIENT", "refresh_token": True}, 400),
    ],
)
def test_lifetime_hook_refuses_bad_requests(body: dict[str, Any], status: int) -> None:
    a = AS()
    if body.get("client_id") == "CLIENT":
        body = {**body, "client_id": a.public["client_id"]}
    assert a.lifetimes(**body).status_code == status
    assert a.http.post("/_test/lifetimes", content=b"not json").status_code == 400


def test_lifetime_hook_answers_loopback_callers_only_and_only_in_test_deployments() -> None:
    a = AS()
    remote = TestClient(a.app, base_url=AS_ISSUER, client=("192.0.2.7", 50000))
    assert remote.post("/_test/lifetimes", json={"client_id": "x"}).status_code == 403
    b = AS(test_hooks=False)
    assert b.lifetimes(client_id=b.public["client_id"], access_token=1).status_code == 404


# --- revocation and introspection ----------------------------------------------------------


def test_revoking_a_refresh_token_revokes_its_grant() -> None:
    a = AS()
    body = a.refresh(a.public, a.grant(a.public)).json()
    assert a.revoke(a.public, body["refresh_token"]).status_code == 200
    assert error(a.refresh(a.public, body["refresh_token"])) == "invalid_grant"
    assert a.introspect(body["refresh_token"]) == {"active": False}
    assert a.introspect(body["access_token"]) == {"active": False}
    assert a.revoke(a.public, secrets.token_urlsafe(16)).status_code == 200
    assert a.revoke(a.public, body["refresh_token"]).status_code == 200


# --- defect switches change what they say --------------------------------------------------


def test_rotation_defects() -> None:
    a = AS("rt-not-rotated")
    rt = a.grant(a.public)
    assert a.refresh(a.public, rt).json()["refresh_token"] == rt
    assert a.refresh(a.public, rt).status_code == 200
    b = AS("rt-old-still-valid")
    rt = b.grant(b.public)
    assert b.refresh(b.public, rt).json()["refresh_token"] != rt
    assert b.refresh(b.public, rt).status_code == 200
    c = AS("rt-reuse-keeps-family")
    rt = c.grant(c.public)
    newest = c.refresh(c.public, rt).json()["refresh_token"]
    assert error(c.refresh(c.public, rt)) == "invalid_grant"
    assert c.refresh(c.public, newest).status_code == 200
    d = AS("rt-resource-param-refused")
    rt = d.grant(d.public)
    assert error(d.refresh(d.public, rt, resource=MCP)) == "invalid_target"
    assert d.refresh(d.public, rt).status_code == 200


def test_binding_defects() -> None:
    a = AS("rt-not-bound-to-client")
    assert a.refresh(a.other, a.grant(a.public)).status_code == 200
    b = AS("rt-confidential-client-unauthenticated")
    no_secret = {"client_id": b.confidential["client_id"]}
    assert b.refresh(no_secret, b.grant(b.confidential)).status_code == 200
    c = AS("rt-scope-widening")
    wide = f"{BASIC_SCOPE} {PRIVILEGED_SCOPE}"
    assert c.refresh(c.public, c.grant(c.public), scope=wide).json()["scope"] == wide
    d = AS("rt-resource-not-bound")
    token = d.refresh(d.public, d.grant(d.public), resource=RS2).json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == RS2


def test_lifecycle_defects() -> None:
    a = AS("rt-never-expires")
    rt = a.grant(a.public)
    assert a.ctx.store.refresh_tokens[rt].expires_at is None
    b = AS("rt-revocation-ignored")
    rt = b.grant(b.public)
    assert b.revoke(b.public, rt).status_code == 200
    assert b.refresh(b.public, rt).status_code == 200
    c = AS("revocation-keeps-access-tokens")
    body = c.refresh(c.public, c.grant(c.public)).json()
    assert c.revoke(c.public, body["refresh_token"]).status_code == 200
    assert error(c.refresh(c.public, body["refresh_token"])) == "invalid_grant"
    assert c.introspect(body["access_token"])["active"] is True
    d = AS("revocation-unknown-token-error")
    assert d.revoke(d.public, secrets.token_urlsafe(16)).status_code == 400
    assert d.revoke(d.public, d.grant(d.public)).status_code == 200


def test_introspection_defects() -> None:
    a = AS("introspection-reports-inactive-as-active")
    rt = a.grant(a.public)
    a.expire(rt)
    assert a.introspect(rt)["active"] is True
    assert a.introspect("unknown") == {"active": False}
    b = AS("introspection-inactive-details")
    inactive = b.introspect("unknown")
    assert inactive["active"] is False and set(inactive) != {"active"}
