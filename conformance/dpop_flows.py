"""DPoP token requests (RFC 9449 §5, §8): proofs at the token endpoint, the server nonce, and
DPoP-bound token sets for the DPoP checks at the authorization server and at the MCP server.

`DPoPFlows.send` makes one token request with `DPoP` header(s) built for the server's last
nonce and, when the answer is `use_dpop_nonce` with a `DPoP-Nonce`, retries exactly once with a
fresh proof for that nonce (§8). `bound_tokens` runs the authorization code flow with a proof
and returns a `DPoPTokenSet`. Session fixtures: `dpop_support` (the AS's proof algorithms, or
skipped), `dpop_flows`, `dpop_key` (the suite's key) and `alice_dpop_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conformance.discovery import AuthorizationServer
from conformance.errors import PreconditionFailed
from conformance.fixtures import Clients
from conformance.flows import Flows, TokenSet
from conformance.http import recording
from conformance.oauth.authorization import AuthorizationRequest
from conformance.oauth.clients import Client, token_request
from conformance.oauth.dpop import DPoPKey
from conformance.oauth.token_exchange import error_code

NO_DPOP = "the authorization server does not advertise DPoP (dpop_signing_alg_values_supported)"
# The algorithms `DPoPKey` signs with, in the order the suite prefers them.
SUITE_ALGORITHMS = ("ES256", "PS256", "RS256")
USE_DPOP_NONCE = "use_dpop_nonce"

Headers = list[tuple[str, str]]
Proofs = Callable[[str | None], list[str]]
"""The `DPoP` header value(s) of one request attempt, built for the server's nonce (None when
the server has supplied none yet)."""


def proofs(key: DPoPKey, url: str, method: str = "POST", **options: Any) -> Proofs:
    """A fresh proof by `key` for `method url` on every attempt (§4.2), carrying the server's
    nonce; `options` are `DPoPKey.proof`'s (negative variants)."""
    return lambda nonce: [key.proof(method, url, nonce=nonce, **options)]


def fixed(*values: str) -> Proofs:
    """Exactly these header values, whatever the nonce: a replayed proof, a value that is not
    a JWT, or (with no values) no `DPoP` header at all."""
    return lambda _nonce: list(values)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


@dataclass
class DPoPTokenSet(TokenSet):
    """A token set obtained with proofs by `key`."""

    key: DPoPKey = field(kw_only=True)

    @property
    def token_type(self) -> str:
        return str(self.body.get("token_type", ""))


class DPoPFlows:
    """DPoP token requests against the target AS, remembering its last nonce (§8.2)."""

    def __init__(self, flows: Flows, algorithm: str) -> None:
        self.flows = flows
        self.algorithm = algorithm  # the proof algorithm the AS and the suite share
        self._nonces: dict[str, str] = {}  # the last DPoP-Nonce per server origin

    @property
    def token_endpoint(self) -> str:
        return self.flows.token_endpoint

    def new_key(self) -> DPoPKey:
        return DPoPKey(self.algorithm)

    def proofs(self, key: DPoPKey, **options: Any) -> Proofs:
        """Fresh proofs by `key` for the token endpoint."""
        return proofs(key, self.token_endpoint, **options)

    def nonce(self, url: str) -> str | None:
        """The nonce the server at `url` supplied last, if any."""
        return self._nonces.get(_origin(url))

    def send(
        self,
        url: str,
        request: Callable[[Headers], httpx.Response],
        dpop: Proofs,
        *,
        retry: bool = True,
    ) -> httpx.Response:
        """`request(headers)` with the `DPoP` headers `dpop` builds for the last nonce of the
        server at `url`; on `use_dpop_nonce` with a `DPoP-Nonce`, once more with that nonce."""
        response = self._attempt(url, request, dpop)
        if retry and error_code(response) == USE_DPOP_NONCE and "dpop-nonce" in response.headers:
            response = self._attempt(url, request, dpop)
        return response

    def _attempt(
        self, url: str, request: Callable[[Headers], httpx.Response], dpop: Proofs
    ) -> httpx.Response:
        response = request([("DPoP", value) for value in dpop(self.nonce(url))])
        supplied = response.headers.get_list("dpop-nonce")
        if supplied:
            self._nonces[_origin(url)] = supplied[-1]
        return response

    def redeem(
        self,
        client: Client,
        code: str,
        request: AuthorizationRequest,
        dpop: Proofs,
        *,
        note: str = "token request with a DPoP proof",
        retry: bool = True,
    ) -> httpx.Response:
        """Redeem `code` (OAuth 2.1 §4.1.3) with the DPoP header(s) `dpop` builds."""
        return self.send(
            self.token_endpoint,
            lambda headers: self.flows.redeem(client, code, request, note=note, headers=headers),
            dpop,
            retry=retry,
        )

    def refresh(
        self,
        client: Client,
        refresh_token: str,
        dpop: Proofs,
        *,
        note: str = "refresh with a DPoP proof",
        retry: bool = True,
    ) -> httpx.Response:
        """A refresh-token request (OAuth 2.1 §4.3.1) with the DPoP header(s) `dpop` builds."""
        params = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)]
        return self.send(
            self.token_endpoint,
            lambda headers: token_request(
                self.flows.http, self.token_endpoint, client, params, note=note, headers=headers
            ),
            dpop,
            retry=retry,
        )


def bound_tokens(
    dpop_flows: DPoPFlows,
    client: Client,
    user: str = "alice",
    key: DPoPKey | None = None,
    *,
    request: AuthorizationRequest | None = None,
) -> DPoPTokenSet:
    """`user` signs in through `client` (with `request`, default the known-good authorization
    request) and the code is redeemed with a proof by `key` (a fresh key when None): a complete
    known-good DPoP flow, whose failure is a lost precondition, not a verdict."""
    flows = dpop_flows.flows
    key = key or dpop_flows.new_key()
    request = request or flows.request(client)
    with recording() as exchanges:
        code = flows.code_for(request, user)
        response = dpop_flows.redeem(client, code, request, dpop_flows.proofs(key))
    body = flows.token_body(response)
    if body is None:
        raise PreconditionFailed(
            f"a known-good token request with a DPoP proof failed with {response.status_code}"
            f" ({error_code(response) or 'no error code'})"
        )
    return DPoPTokenSet(client, user, response, body, exchanges, key=key)


# --- session fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dpop_support(authorization_server: AuthorizationServer) -> tuple[str, ...]:
    """The AS's `dpop_signing_alg_values_supported` (§5.1); DPoP checks skip without it."""
    algorithms = authorization_server.metadata.get("dpop_signing_alg_values_supported")
    if not algorithms:
        pytest.skip(NO_DPOP)
    if not isinstance(algorithms, list):
        return ()
    return tuple(a for a in algorithms if isinstance(a, str))


@pytest.fixture(scope="session")
def dpop_flows(flows: Flows, dpop_support: tuple[str, ...]) -> DPoPFlows:
    algorithm = next((a for a in SUITE_ALGORITHMS if a in dpop_support), None)
    if algorithm is None:
        raise PreconditionFailed(
            f"the authorization server accepts none of the suite's proof algorithms "
            f"({', '.join(SUITE_ALGORITHMS)}); it lists {list(dpop_support)}"
        )
    return DPoPFlows(flows, algorithm)


@pytest.fixture(scope="session")
def dpop_key(dpop_flows: DPoPFlows) -> DPoPKey:
    """The suite's DPoP key: alice's DPoP-bound tokens are bound to it."""
    return dpop_flows.new_key()


@pytest.fixture(scope="session")
def alice_dpop_tokens(dpop_flows: DPoPFlows, clients: Clients, dpop_key: DPoPKey) -> DPoPTokenSet:
    """Alice signed in through the public client, her code redeemed with a proof by
    `dpop_key`: a DPoP-bound token for the MCP server (and a refresh token, if issued)."""
    return bound_tokens(dpop_flows, clients.public, "alice", dpop_key)
