"""Tokens left to expire, for the expiry checks (OAuth 2.1 §4.3.1, §3.2.4; RFC 7662 §2.2).

Waiting for a token to expire is the slowest thing a run does, so the tokens are obtained as
the run starts (by an autouse session fixture) and the wait overlaps the other checks.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import httpx
import pytest

from conformance.checks.refresh import refresh, refreshable
from conformance.config import TargetConfig
from conformance.errors import PreconditionFailed
from conformance.evidence import Exchange
from conformance.fixtures import Clients, Run, redirect_uris_for, register_test_client
from conformance.flows import Flows
from conformance.http import recording
from conformance.oauth import jwt
from conformance.oauth.clients import Client
from conformance.oauth.token_exchange import describe, issued

HOOK_LIFETIME = 1  # seconds the lifetime hook is asked for, for both token kinds
EXPIRY_MARGIN = 1.0  # waited beyond a lifetime, for servers that count in whole seconds


@dataclass
class ExpiredTokens:
    """A grant whose tokens were left to expire; `skipped` says why a kind was not."""

    client: Client
    refreshed: httpx.Response  # the known-good refresh, right after sign-in
    access_token: str | None
    refresh_token: str | None
    skipped: dict[str, str]
    exchanges: list[Exchange]
    expired_at: float = 0.0  # monotonic time after which every chosen token has expired


@dataclass
class _Plan:
    """How long each kind of token lives for the expiry client, or why it cannot be waited for."""

    client: Client
    lifetimes: dict[str, float]
    skipped: dict[str, str]


def _max_expiry_wait(pytestconfig: pytest.Config, config: TargetConfig) -> float:
    option = pytestconfig.getoption("max_expiry_wait", None)
    return float(option) if option is not None else config.lifetimes.max_expiry_wait


def _expiry_plan(run: Run, clients: Clients, registration_endpoint: str | None) -> _Plan:
    """The lifetime hook shortens lifetimes for a client registered for the purpose (so the
    rest of the run keeps the normal ones); without it, the declared lifetimes apply to the
    public test client."""
    hook, declared = run.config.lifetime_hook, run.config.lifetimes
    if hook and registration_endpoint and run.config.registration == "dcr":
        client = register_test_client(
            run, registration_endpoint, redirect_uris_for(run), "none", "expiry"
        )
        payload = {
            "client_id": client.client_id,
            "access_token": HOOK_LIFETIME,
            "refresh_token": HOOK_LIFETIME,
        }
        response = run.http.post(hook, json=payload, note="shorten token lifetimes (test hook)")
        if response.status_code != 200:
            raise PreconditionFailed(f"the lifetime hook answered {describe(response)}")
        lifetimes = {"access_token": float(HOOK_LIFETIME), "refresh_token": float(HOOK_LIFETIME)}
        return _Plan(client, lifetimes, {})
    why = (
        "the lifetime hook (hooks.lifetimes) needs dynamic client registration"
        if hook
        else "no lifetime hook (hooks.lifetimes)"
    )
    plan = _Plan(clients.public, {}, {})
    for kind, seconds in (
        ("access_token", declared.access_token),
        ("refresh_token", declared.refresh_token),
    ):
        if seconds is None:
            plan.skipped[kind] = f"{why} and no declared lifetime ([lifetimes] {kind})"
        else:
            plan.lifetimes[kind] = float(seconds)
    return plan


def _access_token_lifetime(body: dict[str, object], plan: _Plan) -> float | None:
    """What the token response says (`expires_in`, else the JWT's exp - iat), else the plan."""
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        return float(expires_in)
    token = str(body["access_token"])
    claims = jwt.claims(token) if jwt.is_jwt(token) else {}
    if isinstance(claims.get("exp"), int | float) and isinstance(claims.get("iat"), int | float):
        return float(claims["exp"]) - float(claims["iat"])
    return plan.lifetimes.get("access_token")


@pytest.fixture(scope="session")
def expiring_tokens(
    pytestconfig: pytest.Config,
    run: Run,
    flows: Flows,
    clients: Clients,
    registration_endpoint: str | None,
) -> ExpiredTokens:
    """Sign in with short-lived tokens and refresh once (known-good); say when both the access
    token and the refresh token will be past their lifetimes."""
    max_wait = _max_expiry_wait(pytestconfig, run.config)
    with recording() as exchanges:
        plan = _expiry_plan(run, clients, registration_endpoint)
        tokens = refreshable(flows, plan.client)
        signed_in = time.monotonic()
        assert tokens.refresh_token is not None
        refreshed = refresh(flows, plan.client, tokens.refresh_token, note="known-good: refresh")
    refreshed_at = time.monotonic()
    body = issued(refreshed) or {}
    candidates = {
        "access_token": (tokens.access_token, _access_token_lifetime(tokens.body, plan), signed_in),
        "refresh_token": (
            str(body.get("refresh_token") or tokens.refresh_token),
            plan.lifetimes.get("refresh_token"),
            refreshed_at,
        ),
    }
    chosen: dict[str, str] = {}
    deadline = 0.0
    for kind, (token, lifetime, issued_at) in candidates.items():
        name = kind.replace("_", " ")
        if kind in plan.skipped or lifetime is None:
            plan.skipped.setdefault(kind, f"the {name} lifetime is unknown")
        elif lifetime > max_wait:
            plan.skipped[kind] = (
                f"the {name} lives {lifetime:g} s, longer than --max-expiry-wait {max_wait:g} s"
            )
        else:
            chosen[kind] = token
            deadline = max(deadline, issued_at + lifetime + EXPIRY_MARGIN)
    return ExpiredTokens(
        plan.client,
        refreshed,
        chosen.get("access_token"),
        chosen.get("refresh_token"),
        plan.skipped,
        exchanges,
        deadline,
    )


@pytest.fixture(scope="session", autouse=True)
def _expiry_starts_early(request: pytest.FixtureRequest) -> None:
    """Obtain the expiring tokens before the first check, when some check will need them."""
    if any("expiring_tokens" in getattr(i, "fixturenames", ()) for i in request.session.items):
        # A failure stays with the fixture; the checks that use it report it.
        with contextlib.suppress(Exception, pytest.skip.Exception, pytest.fail.Exception):
            request.getfixturevalue("expiring_tokens")
