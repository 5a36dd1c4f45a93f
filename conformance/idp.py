"""The enterprise IdP, seen as the suite's own client sees it: discovery, sign-in, ID-JAGs.

OpenID Connect Discovery §4 and Core §3.1 (the suite signs a test user in with the
authorization code flow and PKCE to get an ID token issued to its IdP client), RFC 8693 §2.1
with the ID-JAG profile (draft-ietf-oauth-identity-assertion-authz-grant §4.3: an ID token
exchanged for an Identity Assertion JWT Authorization Grant).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from conformance.config import ClientCredentials
from conformance.discovery import as_metadata_candidates, json_object
from conformance.errors import HarnessError, PreconditionFailed
from conformance.flows import Flows
from conformance.http import Http
from conformance.oauth.authorization import AuthorizationRequest
from conformance.oauth.clients import Client, token_request
from conformance.oauth.jwt import is_jwt
from conformance.oauth.token_exchange import (
    ID_JAG_TOKEN_TYPE,
    ID_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    describe,
    issued,
)


def client_of(credentials: ClientCredentials, redirect_uri: str) -> Client:
    uris = credentials.redirect_uris or (redirect_uri,)
    return Client(
        credentials.client_id, tuple(uris), credentials.client_secret, credentials.auth_method
    )


@dataclass
class EnterpriseIdp:
    issuer: str
    metadata_url: str
    metadata: dict[str, Any]

    def endpoint(self, name: str) -> str:
        value = self.metadata.get(name)
        if not isinstance(value, str):
            raise PreconditionFailed(f"the IdP metadata has no {name}")
        return value


def discover_idp(http: Http, issuer: str) -> EnterpriseIdp:
    """The IdP's metadata: OIDC discovery or RFC 8414, whichever answers first."""
    for url in reversed(as_metadata_candidates(issuer)):
        try:
            response = http.get(url, headers={"Accept": "application/json"}, note="IdP metadata")
        except HarnessError:
            continue
        body = json_object(response)
        if response.status_code == 200 and body and body.get("issuer"):
            for value in body.values():
                if isinstance(value, str) and value.startswith(("http://", "https://")):
                    http.scope.add_url(value)
            return EnterpriseIdp(issuer, url, body)
    raise PreconditionFailed(f"no metadata for the enterprise IdP {issuer}")


def id_token(flows: Flows, idp: EnterpriseIdp, client: Client, user: str) -> str:
    """Sign `user` in at the IdP through `client` and redeem the code for an ID token."""
    request = AuthorizationRequest.build(
        idp.endpoint("authorization_endpoint"),
        client.client_id,
        client.redirect_uri,
        resource=None,
        scope="openid",
    ).with_param("nonce", secrets.token_urlsafe(12))
    code = flows.code_for(request, user)
    assert request.pkce is not None
    response = token_request(
        flows.http,
        idp.endpoint("token_endpoint"),
        client,
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", client.redirect_uri),
            ("code_verifier", request.pkce.verifier),
        ],
        note=f"IdP: redeem {user}'s code for an ID token",
    )
    body = json_object(response) or {}
    token = body.get("id_token")
    if response.status_code != 200 or not isinstance(token, str):
        raise PreconditionFailed(f"the IdP gave no ID token for {user}: {describe(response)}")
    flows.http.redactor.remember(token)
    flows.http.redactor.remember(body.get("access_token"))
    return token


def request_id_jag(
    http: Http,
    idp: EnterpriseIdp,
    client: Client,
    subject: str,
    *,
    audience: str | None,
    resource: str | None,
    scope: str | None,
    subject_token_type: str = ID_TOKEN_TYPE,
    requested_token_type: str | None = ID_JAG_TOKEN_TYPE,
    extra: list[tuple[str, str]] | None = None,
    note: str = "IdP: exchange an ID token for an ID-JAG",
) -> httpx.Response:
    """RFC 8693 §2.1 with the ID-JAG profile; `None` leaves a parameter out."""
    params = [("grant_type", TOKEN_EXCHANGE)]
    optional = [
        ("requested_token_type", requested_token_type),
        ("audience", audience),
        ("resource", resource),
        ("scope", scope),
        ("subject_token", subject),
        ("subject_token_type", subject_token_type),
    ]
    params += [(k, v) for k, v in optional if v is not None]
    params += extra or []
    response = token_request(http, idp.endpoint("token_endpoint"), client, params, note=note)
    body = issued(response)
    if body:
        http.redactor.remember(body["access_token"])
    return response


def minted_id_jag(
    http: Http,
    idp: EnterpriseIdp,
    client: Client,
    subject: str,
    *,
    audience: str | None,
    resource: str | None,
    scope: str | None,
    note: str = "known-good: a fresh ID-JAG from the IdP",
) -> str:
    """A fresh ID-JAG (`request_id_jag`); without one nothing built on it can be judged."""
    response = request_id_jag(
        http, idp, client, subject, audience=audience, resource=resource, scope=scope, note=note
    )
    body = issued(response)
    token = body.get("access_token") if body else None
    if not isinstance(token, str) or not is_jwt(token):
        raise PreconditionFailed(
            f"the IdP answered a known-good ID-JAG request with {describe(response)}"
        )
    return token
