"""The reference MCP server as a DPoP resource server (RFC 9449 §7), over loopback HTTP.

Tokens come from the fake authorization server of `test_mcp_server`, bound to a key with
`cnf.jkt`; proofs from the suite's own builder (`conformance.oauth.dpop`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from conformance.oauth.challenge import Challenge, parse_www_authenticate
from conformance.oauth.dpop import DPoPKey
from tests.reference import test_mcp_server as base
from tests.reference.test_mcp_server import ACCEPT, INITIALIZE, FakeAS, McpServer

# The fixtures of the plain resource-server tests, shared (module-scoped per module).
fake_as = base.fake_as
mcp_factory = base.mcp_factory
mcp = base.mcp
client = base.client

KEY = DPoPKey()
OTHER_KEY = DPoPKey()
ALGS = "ES256 RS256 PS256"


def bound_token(fake_as: FakeAS, server: McpServer, key: DPoPKey = KEY) -> str:
    return fake_as.mint(server.url, cnf={"jkt": key.jkt})


def send(
    http: httpx.Client,
    server: McpServer,
    token: str,
    proofs: list[str] | None = None,
    *,
    scheme: str = "DPoP",
) -> httpx.Response:
    """initialize with `Authorization: <scheme> <token>` and one `DPoP` header per proof."""
    headers = [*ACCEPT.items(), ("Authorization", f"{scheme} {token}")]
    headers += [("DPoP", proof) for proof in proofs or []]
    return http.post(server.url, json=INITIALIZE, headers=headers)


def proof(server: McpServer, token: str, key: DPoPKey = KEY, **changes: object) -> str:
    """A valid proof for `POST server.url` with `token`, changed as asked."""
    arguments: dict[str, object] = {"access_token": token, **changes}
    return key.proof("POST", server.url, **arguments)  # type: ignore[arg-type]


def challenge(response: httpx.Response, scheme: str) -> Challenge:
    parsed = parse_www_authenticate(response.headers.get_list("www-authenticate"))
    assert not parsed.errors, parsed.errors
    found = parsed.scheme(scheme)
    assert found is not None, response.headers.get_list("www-authenticate")
    return found


def assert_refused(response: httpx.Response, error: str = "invalid_dpop_proof") -> None:
    assert response.status_code == 401, response.text
    dpop = challenge(response, "DPoP")
    assert dpop.get("error") == error, dpop
    assert dpop.get("algs") == ALGS
    assert dpop.get("resource_metadata")
    assert challenge(response, "Bearer") is not None
    assert "result" not in response.json()


# --- conformant behaviour ------------------------------------------------------------------


def test_metadata_lists_dpop_algorithms(client: httpx.Client, mcp: McpServer) -> None:
    document = client.get(mcp.prm_url).json()
    assert document["dpop_signing_alg_values_supported"] == ["ES256", "RS256", "PS256"]
    assert document["dpop_bound_access_tokens_required"] is False
    assert "offline_access" not in document["scopes_supported"]


def test_unauthenticated_request_gets_both_challenges(client: httpx.Client, mcp: McpServer) -> None:
    response = client.post(mcp.url, json=INITIALIZE, headers=ACCEPT)
    assert response.status_code == 401
    bearer, dpop = challenge(response, "Bearer"), challenge(response, "DPoP")
    assert dpop.get("algs") == ALGS
    assert dpop.get("resource_metadata") == bearer.get("resource_metadata") == mcp.prm_url
    assert bearer.get("error") is None and dpop.get("error") is None
    assert "offline_access" not in (bearer.get("scope") or "")


def test_bound_token_with_valid_proof_is_served(
    client: httpx.Client, mcp: McpServer, fake_as: FakeAS
) -> None:
    token = bound_token(fake_as, mcp)
    assert send(client, mcp, token, [proof(mcp, token)]).status_code == 200
    # The scheme name is case-insensitive (RFC 9110 §11.1); an RSA key works as well.
    assert send(client, mcp, token, [proof(mcp, token)], scheme="dpop").status_code == 200
    rsa_key = DPoPKey("RS256")
    rsa_token = bound_token(fake_as, mcp, rsa_key)
    assert send(client, mcp, rsa_token, [proof(mcp, rsa_token, rsa_key)]).status_code == 200
    # htu compares after normalisation; the query is not part of it.
    upper = mcp.url.replace("http://", "HTTP://")
    assert send(client, mcp, token, [KEY.proof("POST", upper, access_token=token)]).is_success


def test_bound_token_as_bearer_is_refused(
    client: httpx.Client, mcp: McpServer, fake_as: FakeAS
) -> None:
    token = bound_token(fake_as, mcp)
    for proofs in ([], [proof(mcp, token)]):
        response = send(client, mcp, token, proofs, scheme="Bearer")
        assert_refused(response, "invalid_token")
        assert challenge(response, "Bearer").get("error") == "invalid_token"


def test_unbound_token_is_bearer_only(
    client: httpx.Client, mcp: McpServer, fake_as: FakeAS
) -> None:
    token = fake_as.mint(mcp.url)
    assert send(client, mcp, token, scheme="Bearer").status_code == 200
    assert_refused(send(client, mcp, token, [proof(mcp, token)]), "invalid_token")


def test_bad_proofs_are_refused(client: httpx.Client, mcp: McpServer, fake_as: FakeAS) -> None:
    token = bound_token(fake_as, mcp)
    other_token = bound_token(fake_as, mcp)
    now = int(time.time())
    cases = {
        "no proof": [],
        "two proofs": [proof(mcp, token), proof(mcp, token)],
        "another key": [proof(mcp, token, OTHER_KEY)],
        "no ath": [KEY.proof("POST", mcp.url)],
        "ath of another token": [proof(mcp, other_token)],
        "typ JWT": [proof(mcp, token, typ="JWT")],
        "alg none": [proof(mcp, token, alg="none")],
        "HS256": [proof(mcp, token, alg="HS256")],
        "private jwk": [proof(mcp, token, include_private_key=True)],
        "no jti": [proof(mcp, token, claims={"jti": None})],
        "htm GET": [KEY.proof("GET", mcp.url, access_token=token)],
        "htu elsewhere": [KEY.proof("POST", mcp.url + "/other", access_token=token)],
        "iat -360 s": [proof(mcp, token, iat=now - 360)],
        "iat +360 s": [proof(mcp, token, iat=now + 360)],
        "garbage": ["not-a-jwt"],
    }
    for case, proofs in cases.items():
        response = send(client, mcp, token, proofs)
        assert response.status_code == 401, case
        assert_refused(response)
    assert send(client, mcp, token, [proof(mcp, token, iat=now - 60)]).status_code == 200


def test_replayed_proof_is_refused(client: httpx.Client, mcp: McpServer, fake_as: FakeAS) -> None:
    token = bound_token(fake_as, mcp)
    once = proof(mcp, token)
    assert send(client, mcp, token, [once]).status_code == 200
    assert_refused(send(client, mcp, token, [once]))


def _concurrent_successes(http: httpx.Client, server: McpServer, token: str, n: int = 5) -> int:
    one = proof(server, token)
    barrier = threading.Barrier(n)

    def use(_: int) -> int:
        barrier.wait()
        return send(http, server, token, [one]).status_code

    with ThreadPoolExecutor(n) as pool:
        return sum(status == 200 for status in pool.map(use, range(n)))


def test_concurrent_uses_of_one_proof(
    client: httpx.Client, mcp: McpServer, fake_as: FakeAS
) -> None:
    assert _concurrent_successes(client, mcp, bound_token(fake_as, mcp)) == 1


# --- defect switches -----------------------------------------------------------------------


def test_proof_check_defects(
    client: httpx.Client, mcp_factory: Callable[..., McpServer], fake_as: FakeAS
) -> None:
    now = int(time.time())
    accepted = {
        "rs-dpop-bearer-downgrade": lambda s, t: send(client, s, t, scheme="Bearer"),
        "rs-dpop-key-binding-ignored": lambda s, t: send(client, s, t, [proof(s, t, OTHER_KEY)]),
        "rs-dpop-ath-ignored": lambda s, t: send(client, s, t, [KEY.proof("POST", s.url)]),
        "rs-dpop-typ-unchecked": lambda s, t: send(client, s, t, [proof(s, t, typ="JWT")]),
        "rs-dpop-claims-unchecked": lambda s, t: send(
            client, s, t, [proof(s, t, include_private_key=True), "not-a-jwt"]
        ),
        "rs-dpop-htu-unchecked": lambda s, t: send(
            client, s, t, [KEY.proof("POST", s.url + "/other", access_token=t)]
        ),
        "rs-dpop-iat-unchecked": lambda s, t: send(client, s, t, [proof(s, t, iat=now - 3600)]),
    }
    for defect, request in accepted.items():
        server = mcp_factory(defect)
        assert request(server, bound_token(fake_as, server)).status_code == 200, defect


def test_jti_defects(
    client: httpx.Client, mcp_factory: Callable[..., McpServer], fake_as: FakeAS
) -> None:
    forgetful = mcp_factory("rs-dpop-jti-replay")
    token = bound_token(fake_as, forgetful)
    once = proof(forgetful, token)
    assert send(client, forgetful, token, [once]).status_code == 200
    assert send(client, forgetful, token, [once]).status_code == 200

    racy = mcp_factory("rs-dpop-jti-race")
    token = bound_token(fake_as, racy)
    assert _concurrent_successes(client, racy, token) > 1
    once = proof(racy, token)
    assert send(client, racy, token, [once]).status_code == 200
    assert_refused(send(client, racy, token, [once]))


def test_metadata_and_challenge_defects(
    client: httpx.Client, mcp_factory: Callable[..., McpServer]
) -> None:
    quiet = mcp_factory("prm-no-dpop-algs", "rs-dpop-challenge-without-algs")
    assert "dpop_signing_alg_values_supported" not in client.get(quiet.prm_url).json()
    response = client.post(quiet.url, json=INITIALIZE, headers=ACCEPT)
    assert challenge(response, "DPoP").get("algs") is None

    offline = mcp_factory("prm-lists-offline-access")
    assert "offline_access" in client.get(offline.prm_url).json()["scopes_supported"]
    response = client.post(offline.url, json=INITIALIZE, headers=ACCEPT)
    assert "offline_access" in (challenge(response, "Bearer").get("scope") or "").split()
