"""Sign-in federated to the enterprise IdP: this AS is an OpenID Connect relying party.

The AS sends the user to the IdP with the OIDC authorization code flow (OIDC Core §3.1,
with PKCE and a nonce), then at `/callback` redeems the IdP code with `client_secret_basic`,
verifies the ID token (OIDC Core §3.1.3.7) and issues its own authorization code to the MCP
client (OAuth 2.1 §4.1.2).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import quote_plus

import httpx
import jwt
from starlette.requests import Request
from starlette.responses import Response

from reference.authorization_server.context import Context, context
from reference.authorization_server.errors import error_page
from reference.authorization_server.params import collect
from reference.authorization_server.redirects import (
    AuthorizationError,
    add_iss,
    error_redirect,
    redirect,
    with_params,
)
from reference.authorization_server.store import (
    AuthorizationCode,
    PendingAuthorization,
    ValidatedRequest,
    now,
    random_token,
)
from reference.authorization_server.tokens import mint_access_token
from reference.settings import ReferenceSettings
from reference.tls import default_tls_context

IDP_TIMEOUT = 5.0
ID_TOKEN_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
# IdP errors passed on to the client as they are; anything else becomes access_denied.
PASSED_ON_ERRORS = ("access_denied", "temporarily_unavailable", "server_error")


class IdpError(Exception):
    """The IdP could not be reached or answered something unusable."""


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class IdpClient:
    """Talks to the IdP; discovery and JWKS are fetched lazily and cached."""

    def __init__(self, settings: ReferenceSettings) -> None:
        self._settings = settings
        self._discovery: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKSet | None = None
        self._client: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    def _http(self) -> httpx.AsyncClient:
        """One client per event loop: a new client per call would cost a TLS context each."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client[0] is not loop:
            self._client = (
                loop,
                httpx.AsyncClient(
                    timeout=IDP_TIMEOUT, trust_env=False, verify=default_tls_context()
                ),
            )
        return self._client[1]

    async def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http().request(method, url, **kwargs)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IdpError(f"{method} {url} failed: {exc}") from exc
        if response.status_code != 200 or not isinstance(body, dict):
            raise IdpError(f"{method} {url} answered {response.status_code}: {body!r:.200}")
        return body

    async def discovery(self) -> dict[str, Any]:
        """OIDC Discovery §4: `{issuer}/.well-known/openid-configuration`."""
        if self._discovery is None:
            doc = await self._request(
                "GET", f"{self._settings.idp_issuer}/.well-known/openid-configuration"
            )
            for member in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(doc.get(member), str):
                    raise IdpError(f"IdP discovery lacks {member}")
            self._discovery = doc
        return self._discovery

    async def _jwk_set(self, refresh: bool = False) -> jwt.PyJWKSet:
        if self._jwks is None or refresh:
            doc = await self._request("GET", (await self.discovery())["jwks_uri"])
            try:
                self._jwks = jwt.PyJWKSet.from_dict(doc)
            except jwt.PyJWTError as exc:
                raise IdpError(f"unusable IdP JWKS: {exc}") from exc
        return self._jwks

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        """The IdP signing key `kid` from its JWKS (cached; refetched once for an unknown kid)."""
        for refresh in (False, True):
            keys = (await self._jwk_set(refresh)).keys
            if kid is None and len(keys) == 1:
                return keys[0]
            for key in keys:
                if key.key_id == kid:
                    return key
        raise IdpError(f"no IdP key with kid {kid!r}")

    async def exchange_code(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """OIDC Core §3.1.3.1 token request, authenticated with client_secret_basic."""
        s = self._settings
        return await self._request(
            "POST",
            (await self.discovery())["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(quote_plus(s.idp_client_id), quote_plus(s.idp_client_secret)),
            headers={"Accept": "application/json"},
        )

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """OIDC Core §3.1.3.7: signature (IdP JWKS), iss, aud, exp, nonce."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise IdpError(f"malformed ID token: {exc}") from exc
        alg = header.get("alg")
        if alg not in ID_TOKEN_ALGORITHMS:
            raise IdpError(f"ID token alg {alg!r} not accepted")
        key = await self.key_for(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=[alg],
                audience=self._settings.idp_client_id,
                issuer=self._settings.idp_issuer,
                leeway=30,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise IdpError(f"ID token rejected: {exc}") from exc
        if claims.get("nonce") != nonce:
            raise IdpError("ID token nonce mismatch")
        return claims


async def start_login(ctx: Context, req: ValidatedRequest) -> Response:
    """Park the validated request and send the user to the IdP (OIDC Core §3.1.2.1)."""
    try:
        discovery = await ctx.idp.discovery()
    except IdpError as exc:
        return error_page("Sign-in unavailable", str(exc), 502)
    pending = PendingAuthorization(
        id=random_token(32),
        request=req,
        nonce=random_token(16),
        idp_code_verifier=secrets.token_urlsafe(48),
    )
    ctx.store.pending[pending.id] = pending
    params = {
        "response_type": "code",
        "client_id": ctx.settings.idp_client_id,
        "redirect_uri": ctx.url("/callback"),
        "scope": "openid email",
        "state": pending.id,
        "nonce": pending.nonce,
        "code_challenge": s256(pending.idp_code_verifier),
        "code_challenge_method": "S256",
    }
    return redirect(with_params(discovery["authorization_endpoint"], params))


def issue_code(ctx: Context, pending: PendingAuthorization, user: str, auth_time: int) -> str:
    """OAuth 2.1 §4.1.2: a single-use, short-lived code bound to the request."""
    code = AuthorizationCode(
        code=random_token(32),
        client_id=pending.request.client.client_id,
        redirect_uri=pending.request.redirect_uri,
        code_challenge=pending.request.code_challenge,
        code_challenge_method=pending.request.code_challenge_method,
        resource=pending.request.resource,
        scope=pending.request.scope,
        user=user,
        auth_time=auth_time,
        expires_at=now() + ctx.settings.code_lifetime,
        dpop_jkt=pending.request.dpop_jkt,
    )
    ctx.store.codes[code.code] = code
    return code.code


def implicit_response(
    ctx: Context, pending: PendingAuthorization, user: str, auth_time: int
) -> Response:
    """Only under `authz-implicit-enabled`: an access token in the redirect fragment."""
    resource = pending.request.resource or ctx.settings.mcp_url
    grant = ctx.store.new_grant(
        client_id=pending.request.client.client_id,
        user=user,
        scope=pending.request.scope,
        resource=resource,
        auth_time=auth_time,
    )
    token, lifetime = mint_access_token(
        ctx,
        client_id=pending.request.client.client_id,
        user=user,
        scope=pending.request.scope,
        resource=resource,
        auth_time=auth_time,
        grant_id=grant.id,
    )
    params = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": str(lifetime),
        "scope": " ".join(pending.request.scope),
    }
    if pending.request.state is not None:
        params["state"] = pending.request.state
    return redirect(
        with_params(pending.request.redirect_uri, add_iss(ctx, params), fragment=True), 303
    )


async def callback_endpoint(request: Request) -> Response:
    """GET /callback: the IdP's authorization response (OIDC Core §3.1.2.5)."""
    ctx = context(request)
    params = collect(request.query_params.multi_items())
    pending = ctx.store.pending.pop(params.get("state") or "", None)
    if pending is None:
        return error_page("Sign-in failed", "unknown or expired sign-in state")

    def fail(error: str, description: str) -> Response:
        err = AuthorizationError(error, description)
        return error_redirect(ctx, pending.request.redirect_uri, err, pending.request.state, 303)

    idp_error = params.get("error")
    if idp_error is not None:
        return fail(
            idp_error if idp_error in PASSED_ON_ERRORS else "access_denied",
            params.get("error_description") or "sign-in was not completed",
        )
    # RFC 9207 §2.4: if the IdP identifies itself, it must be the IdP we sent the user to.
    idp_iss, idp_code = params.get("iss"), params.get("code")
    if idp_iss is not None and idp_iss != ctx.settings.idp_issuer:
        return fail("server_error", "the sign-in response came from an unexpected issuer")
    if idp_code is None:
        return fail("server_error", "the identity provider returned no code")
    try:
        tokens = await ctx.idp.exchange_code(
            idp_code, pending.idp_code_verifier, ctx.url("/callback")
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise IdpError("the IdP token response has no id_token")
        claims = await ctx.idp.verify_id_token(id_token, pending.nonce)
    except IdpError as exc:
        return fail("server_error", f"sign-in at the identity provider failed: {exc}")
    user = str(claims["sub"])
    auth_time = int(claims.get("auth_time") or now())
    ctx.upstream.remember(user, id_token, float(claims["exp"]))
    if pending.request.response_type == "token":
        return implicit_response(ctx, pending, user, auth_time)
    code = issue_code(ctx, pending, user, auth_time)
    response = {"code": code}
    if pending.request.state is not None:
        response["state"] = pending.request.state
    # OAuth 2.1 §7.5.4: 303, never 307, after the sign-in.
    return redirect(with_params(pending.request.redirect_uri, add_iss(ctx, response)), 303)
