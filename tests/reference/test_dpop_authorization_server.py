"""The reference authorization server with DPoP (RFC 9449 §5, §6, §8, §10).

The AS runs in-process behind starlette's TestClient, with the helpers of
`test_authorization_server` (sign-in at a real mock IdP) and, for token exchange, those of
`test_exchange_grants`. Proofs come from the suite's own builder (`conformance.oauth.dpop`).
"""

from __future__ import annotations

import secrets
from typing import Any

import jwt
import pytest

from conformance.oauth.dpop import DPoPKey
from tests.reference import test_authorization_server as base
from tests.reference import test_exchange_grants as second_hop
from tests.reference.test_authorization_server import AS_ISSUER, Deployment

# The fixtures of the plain AS tests, shared (module-scoped per module).
dep = base.dep
make = base.make

TOKEN = f"{AS_ISSUER}/token"
KEY = DPoPKey()
OTHER_KEY = DPoPKey()
Response = Any


class DPoPClient:
    """Token requests with proofs, keeping the nonce the AS supplied last (§8)."""

    def __init__(self, dep: Any) -> None:
        self.dep = dep
        self.nonce: str | None = None

    def proof(self, key: DPoPKey = KEY, **changes: Any) -> str:
        changes.setdefault("nonce", self.nonce)
        return key.proof("POST", TOKEN, **changes)

    def post(
        self, data: dict[str, str], proofs: list[str], auth: tuple[str, str] | None = None
    ) -> Response:
        headers = [("DPoP", p) for p in proofs]
        resp = self.dep.http.post("/token", data=data, headers=headers, auth=auth)
        if "dpop-nonce" in resp.headers:
            self.nonce = resp.headers["dpop-nonce"]
        return resp

    def learn_nonce(self) -> None:
        """The nonce the AS would supply now (its use_dpop_nonce answer is tested below)."""
        self.nonce = self.dep.http.app.state.ctx.store.dpop_nonces.current()

    def redeem(
        self, client: dict[str, Any], code: str, verifier: str, proofs: list[str]
    ) -> Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": client["client_id"],
        }
        return self.post(data, proofs)

    def refresh(self, client: dict[str, Any], refresh_token: str, proofs: list[str]) -> Response:
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        method = client.get("token_endpoint_auth_method")
        if method == "client_secret_basic":
            return self.post(data, proofs, auth=(client["client_id"], client["client_secret"]))
        if method == "client_secret_post":
            data["client_secret"] = client["client_secret"]
        return self.post({**data, "client_id": client["client_id"]}, proofs)


def code_for(dep: Deployment, client: dict[str, Any], **params: str | None) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(40)
    return dep.code(client, verifier, **params), verifier


def bound(dep: Deployment, client: dict[str, Any], key: DPoPKey = KEY) -> dict[str, Any]:
    """Tokens for alice, the code redeemed with a proof by `key`."""
    dpop = DPoPClient(dep)
    dpop.learn_nonce()
    code, verifier = code_for(dep, client)
    resp = dpop.redeem(client, code, verifier, [dpop.proof(key)])
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def error(resp: Response) -> tuple[int, str]:
    return resp.status_code, resp.json()["error"]


# --- metadata and the bound token ---


def test_metadata_lists_asymmetric_proof_algorithms(make: Any) -> None:
    doc = make().http.get("/.well-known/oauth-authorization-server").json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "RS256", "PS256"]
    doc = make("as-dpop-metadata-symmetric").http.get("/.well-known/oauth-authorization-server")
    assert "HS256" in doc.json()["dpop_signing_alg_values_supported"]


def test_code_redeemed_with_proof_gets_bound_token(dep: Deployment) -> None:
    client = dep.register()
    dpop = DPoPClient(dep)
    dpop.learn_nonce()
    code, verifier = code_for(dep, client)
    resp = dpop.redeem(client, code, verifier, [dpop.proof()])
    assert resp.status_code == 200, resp.text
    assert len(resp.headers.get_list("dpop-nonce")) == 1  # §8.2: the next nonce
    body = resp.json()
    assert body["token_type"] == "DPoP"
    assert dep.verify(body["access_token"])["cnf"] == {"jkt": KEY.jkt}
    info = dep.introspect(body["access_token"])
    assert info["cnf"] == {"jkt": KEY.jkt} and info["token_type"] == "DPoP"


def test_without_proof_the_token_is_bearer(dep: Deployment) -> None:
    body = dep.tokens(dep.register())
    assert body["token_type"] == "Bearer"
    assert "cnf" not in claims(body["access_token"])
    assert "cnf" not in dep.introspect(body["access_token"])


def test_token_type_bearer_defect_keeps_the_binding(make: Any) -> None:
    dep = make("as-dpop-token-type-bearer")
    body = bound(dep, dep.register())
    assert body["token_type"] == "Bearer"
    assert claims(body["access_token"])["cnf"] == {"jkt": KEY.jkt}


# --- proofs and nonces ---


def test_proof_without_nonce_gets_use_dpop_nonce_and_consumes_nothing(dep: Deployment) -> None:
    client = dep.register()
    dpop = DPoPClient(dep)
    code, verifier = code_for(dep, client)
    resp = dpop.redeem(client, code, verifier, [dpop.proof()])
    assert error(resp) == (400, "use_dpop_nonce")
    assert len(resp.headers.get_list("dpop-nonce")) == 1
    assert dpop.redeem(client, code, verifier, [dpop.proof()]).status_code == 200


def test_invalid_proof_is_invalid_dpop_proof_and_consumes_nothing(dep: Deployment) -> None:
    client = dep.register()
    dpop = DPoPClient(dep)
    dpop.learn_nonce()
    code, verifier = code_for(dep, client)
    for bad in (
        [dpop.proof(typ="JWT")],
        [dpop.proof(alg="none")],
        [dpop.proof(alg="HS256")],
        [dpop.proof(signer=OTHER_KEY)],
        [dpop.proof(include_private_key=True)],
        [dpop.proof(), dpop.proof()],
        ["not-a-jwt"],
        [dpop.proof(claims={"jti": None})],
        [dpop.proof(claims={"htm": "GET"})],
        [dpop.proof(claims={"htu": f"{AS_ISSUER}/authorize"})],
        [dpop.proof(iat=0)],
    ):
        assert error(dpop.redeem(client, code, verifier, bad)) == (400, "invalid_dpop_proof")
    query_htu = dpop.proof(claims={"htu": f"{TOKEN}?x=1"})  # §4.3 (9): the query is ignored
    assert dpop.redeem(client, code, verifier, [query_htu]).status_code == 200


@pytest.mark.parametrize(
    ("defect", "changes"),
    [
        ("as-dpop-typ-unchecked", {"typ": "JWT"}),
        ("as-dpop-signature-unchecked", {"signer": OTHER_KEY}),
        ("as-dpop-claims-unchecked", {"claims": {"jti": None}}),
        ("as-dpop-htu-unchecked", {"claims": {"htu": f"{AS_ISSUER}/authorize"}}),
        ("as-dpop-iat-unchecked", {"iat": 0}),
    ],
)
def test_proof_defects_accept_one_kind_of_bad_proof(
    make: Any, defect: str, changes: dict[str, Any]
) -> None:
    dep = make(defect)
    client = dep.register()
    dpop = DPoPClient(dep)
    dpop.learn_nonce()
    code, verifier = code_for(dep, client)
    assert error(dpop.redeem(client, code, verifier, ["not-a-jwt"])) == (400, "invalid_dpop_proof")
    assert dpop.redeem(client, code, verifier, [dpop.proof(**changes)]).status_code == 200


def test_error_code_defect(make: Any) -> None:
    dep = make("as-dpop-error-invalid-request")
    resp = DPoPClient(dep).refresh(dep.register(), "unknown-refresh-token", ["not-a-jwt"])
    assert error(resp) == (400, "invalid_request")


def test_replayed_proof_is_refused(make: Any) -> None:
    for defect, replay_status in (((), 400), (("as-dpop-jti-replay",), 200)):
        dep = make(*defect)
        client = dep.register()
        body = bound(dep, client)
        dpop = DPoPClient(dep)
        dpop.learn_nonce()
        proof = dpop.proof()
        first = dpop.refresh(client, body["refresh_token"], [proof])
        assert first.status_code == 200, first.text
        again = dpop.refresh(client, first.json()["refresh_token"], [proof])
        assert again.status_code == replay_status, again.text


def test_wrong_or_missing_nonce_is_refused(make: Any) -> None:
    for defect, wrong_status in (((), 400), (("as-dpop-nonce-ignored",), 200)):
        dep = make(*defect)
        client = dep.register()
        dpop = DPoPClient(dep)
        dpop.learn_nonce()
        code, verifier = code_for(dep, client)
        wrong = dpop.redeem(client, code, verifier, [dpop.proof(nonce="not-the-nonce")])
        assert wrong.status_code == wrong_status, wrong.text
        if wrong_status == 400:
            assert wrong.json()["error"] == "use_dpop_nonce"
        code, verifier = code_for(dep, client)
        missing = dpop.redeem(client, code, verifier, [dpop.proof(nonce=None)])
        assert error(missing) == (400, "use_dpop_nonce")


# --- dpop_jkt (§10) ---


def test_code_bound_with_dpop_jkt(make: Any) -> None:
    dep = make()
    client = dep.register()
    dpop = DPoPClient(dep)
    dpop.learn_nonce()
    code, verifier = code_for(dep, client, dpop_jkt=KEY.jkt)
    assert error(dpop.redeem(client, code, verifier, [])) == (400, "invalid_dpop_proof")
    other = dpop.redeem(client, code, verifier, [dpop.proof(OTHER_KEY)])
    assert error(other) == (400, "invalid_grant")
    good = dpop.redeem(client, code, verifier, [dpop.proof(KEY)])
    assert good.status_code == 200 and claims(good.json()["access_token"])["cnf"]["jkt"] == KEY.jkt

    ignored = make("as-dpop-jkt-ignored")
    client = ignored.register()
    code, verifier = code_for(ignored, client, dpop_jkt=KEY.jkt)
    assert ignored.redeem(client, code, verifier).status_code == 200


def test_malformed_dpop_jkt_is_refused(dep: Deployment) -> None:
    client = dep.register()
    location = dep.follow(dep.authorize(client, dpop_jkt="not a thumbprint"))
    assert base.query(location)["error"] == "invalid_request"


# --- refresh tokens (§5) ---


def test_public_client_refresh_token_is_bound_to_the_key(make: Any) -> None:
    dep = make()
    client = dep.register()
    rt = bound(dep, client)["refresh_token"]
    dpop = DPoPClient(dep)
    dpop.learn_nonce()
    assert error(dpop.refresh(client, rt, [])) == (400, "invalid_dpop_proof")
    assert error(dpop.refresh(client, rt, [dpop.proof(OTHER_KEY)])) == (400, "invalid_grant")
    good = dpop.refresh(client, rt, [dpop.proof(KEY)])
    assert good.status_code == 200 and good.json()["token_type"] == "DPoP"
    # the rotated refresh token is bound to the same key
    rotated = good.json()["refresh_token"]
    assert error(dpop.refresh(client, rotated, [])) == (400, "invalid_dpop_proof")

    unbound = make("as-dpop-refresh-unbound")
    client = unbound.register()
    rt = bound(unbound, client)["refresh_token"]
    resp = DPoPClient(unbound).refresh(client, rt, [])
    assert resp.status_code == 200 and resp.json()["token_type"] == "Bearer"


def test_confidential_client_refresh_token_is_not_key_bound(dep: Deployment) -> None:
    client = dep.register(token_endpoint_auth_method="client_secret_post")
    dpop = DPoPClient(dep)
    dpop.learn_nonce()
    code, verifier = code_for(dep, client)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }
    resp = dpop.post(data, [dpop.proof()])
    assert resp.status_code == 200 and resp.json()["token_type"] == "DPoP"
    refreshed = dpop.refresh(client, resp.json()["refresh_token"], [])
    assert refreshed.status_code == 200 and refreshed.json()["token_type"] == "Bearer"


# --- clients that require DPoP (§5.2) ---


def test_client_registered_for_dpop_needs_a_proof(make: Any) -> None:
    dep = make()
    client = dep.register(dpop_bound_access_tokens=True)
    assert client["dpop_bound_access_tokens"] is True
    dpop = DPoPClient(dep)
    dpop.learn_nonce()
    code, verifier = code_for(dep, client)
    assert error(dep.redeem(client, code, verifier)) == (400, "invalid_dpop_proof")
    assert dpop.redeem(client, code, verifier, [dpop.proof()]).status_code == 200

    ignored = make("as-dpop-client-flag-ignored")
    client = ignored.register(dpop_bound_access_tokens=True)
    code, verifier = code_for(ignored, client)
    assert ignored.redeem(client, code, verifier).status_code == 200


def test_dpop_bound_access_tokens_must_be_a_boolean(dep: Deployment) -> None:
    resp = dep.http.post(
        "/register",
        json={"redirect_uris": [base.CLIENT_CB], "dpop_bound_access_tokens": "yes"},
    )
    assert error(resp) == (400, "invalid_client_metadata")


# --- token exchange (§5: every grant) ---


@pytest.mark.parametrize(
    ("defect", "token_type"), [((), "DPoP"), (("as-dpop-exchange-unbound",), "Bearer")]
)
def test_token_exchange_with_proof(
    idp: second_hop.Idp, defect: tuple[str, ...], token_type: str
) -> None:
    dep = second_hop.Deployment(idp, defect)
    dpop = DPoPClient(dep)
    dpop.learn_nonce()
    data = {
        "grant_type": second_hop.TE,
        "subject_token": dep.user_token(),
        "subject_token_type": second_hop.AT,
        "resource": second_hop.SF_RESOURCE,
    }
    resp = dpop.post(data, [dpop.proof()], auth=second_hop.MCP_CLIENT)
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == token_type
    cnf = claims(resp.json()["access_token"]).get("cnf")
    assert cnf == ({"jkt": KEY.jkt} if token_type == "DPoP" else None)
