"""DPoP at the token endpoint: RFC 9449 §5 (proofs on token requests, bound tokens, bound
refresh tokens), §5.2 (`dpop_bound_access_tokens` clients), §6 (`cnf.jkt`), §8 (server nonces)
and §10 (`dpop_jkt` binds the authorization code to a key).

`proof_key` validates a token request's proof before any grant runs (so a refused proof
consumes nothing) and returns the thumbprint to bind to. The token endpoint then runs the grant
inside `bound_to(jkt)`: every access token signed meanwhile carries `cnf.jkt`, and a refresh
token issued to a public client remembers the key. Proof checks themselves are
`reference.dpop.validate`; the `as-dpop-*` defects switch single checks off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from reference.authorization_server.context import Context
from reference.authorization_server.errors import OAuthError
from reference.authorization_server.params import Params
from reference.authorization_server.store import Client, RefreshToken
from reference.dpop import ALGORITHMS, InvalidProof, Proof, Rules, validate

INVALID_PROOF = "invalid_dpop_proof"
USE_NONCE = "use_dpop_nonce"
TOKEN_PATH = "/token"

# The thumbprint the tokens issued by the current token request are bound to (None: Bearer).
_BOUND_KEY: ContextVar[str | None] = ContextVar("dpop_bound_key", default=None)


def signing_algorithms(ctx: Context) -> list[str]:
    """§5.1 `dpop_signing_alg_values_supported`: asymmetric algorithms only (§11.6)."""
    if ctx.defect("as-dpop-metadata-symmetric"):
        return [*ALGORITHMS, "HS256"]
    return list(ALGORITHMS)


def rules(ctx: Context) -> Rules:
    """The §4.3 checks this AS runs; each `as-dpop-*` proof defect turns some off."""
    claims_unchecked = ctx.defect("as-dpop-claims-unchecked")
    htu_unchecked = ctx.defect("as-dpop-htu-unchecked")
    return Rules(
        single_header=not claims_unchecked,
        required_claims=not claims_unchecked,
        typ=not ctx.defect("as-dpop-typ-unchecked"),
        signature=not ctx.defect("as-dpop-signature-unchecked"),
        htm=not htu_unchecked,
        htu=not htu_unchecked,
        iat=not ctx.defect("as-dpop-iat-unchecked"),
        jwk_object=not ctx.defect("as-dpop-jwk-type-crash"),
    )


def requires_dpop(client: Client) -> bool:
    """§5.2: the client registered `dpop_bound_access_tokens: true`."""
    return client.metadata.get("dpop_bound_access_tokens") is True


def _invalid(ctx: Context, description: str) -> OAuthError:
    """§5: an invalid proof is `invalid_dpop_proof` (`invalid_request` under the defect)."""
    code = "invalid_request" if ctx.defect("as-dpop-error-invalid-request") else INVALID_PROOF
    return OAuthError(code, description)


def _check_nonce(ctx: Context, proof: Proof) -> None:
    """§8: this AS always supplies nonces; a proof without the current (or previous) one is
    answered `use_dpop_nonce` with a fresh `DPoP-Nonce` (see `with_nonce`)."""
    if ctx.defect("as-dpop-nonce-ignored"):
        accepted = proof.nonce is not None
    else:
        accepted = ctx.store.dpop_nonces.valid(proof.nonce)
    if not accepted:
        raise OAuthError(USE_NONCE, "the authorization server requires a nonce in the DPoP proof")


def _bound_code_key(ctx: Context, form: Params) -> str | None:
    """§10: the `dpop_jkt` the authorization request bound the presented code to."""
    if form.get("grant_type") != "authorization_code" or ctx.defect("as-dpop-jkt-ignored"):
        return None
    code = ctx.store.codes.get(form.get("code") or "")
    return code.dpop_jkt if code is not None else None


def _without_proof(ctx: Context, client: Client, form: Params) -> None:
    """Token requests that must not go without a proof: from a §5.2 client, or redeeming a
    code bound with `dpop_jkt` (§10). Bound refresh tokens: `require_refresh_key`."""
    if requires_dpop(client) and not ctx.defect("as-dpop-client-flag-ignored"):
        raise _invalid(ctx, "this client is registered to use DPoP: a DPoP proof is required")
    if _bound_code_key(ctx, form) is not None:
        raise _invalid(ctx, "the authorization code is bound to a DPoP key: a proof is required")


async def proof_key(ctx: Context, request: Request, client: Client, form: Params) -> str | None:
    """Validate the token request's DPoP proof (§4.3, §5, §8, §11.1, §10); the thumbprint of
    its key, or None when the request carries no proof (a Bearer request)."""
    values = request.headers.getlist("dpop")
    if ctx.defect("as-dpop-unsupported"):
        return None  # the header is ignored, as by an AS that knows nothing of DPoP
    if not values:
        _without_proof(ctx, client, form)
        return None
    try:
        proof = validate(values, method="POST", url=ctx.url(TOKEN_PATH), rules=rules(ctx))
    except InvalidProof as exc:
        raise _invalid(ctx, exc.description) from exc
    _check_nonce(ctx, proof)
    if not ctx.defect("as-dpop-jti-replay") and not await ctx.store.dpop_jtis.first_use(proof):
        raise _invalid(ctx, "the DPoP proof was already used")
    expected = _bound_code_key(ctx, form)
    if expected is not None and expected != proof.jkt:
        raise OAuthError("invalid_grant", "the authorization code is bound to another DPoP key")
    return proof.jkt


@contextmanager
def bound_to(jkt: str | None) -> Iterator[None]:
    """Tokens issued inside the block are bound to `jkt` (none when it is None)."""
    reset = _BOUND_KEY.set(jkt)
    try:
        yield
    finally:
        _BOUND_KEY.reset(reset)


def bound_key() -> str | None:
    return _BOUND_KEY.get()


def confirm(claims: dict[str, Any]) -> dict[str, Any]:
    """§6.1: a bound access token names its key as `cnf.jkt`."""
    jkt = bound_key()
    return {**claims, "cnf": {"jkt": jkt}} if jkt is not None else claims


def token_type(ctx: Context, jkt: str | None) -> str:
    """§5: `DPoP` for a bound token (`Bearer` under `as-dpop-token-type-bearer`)."""
    if jkt is None or ctx.defect("as-dpop-token-type-bearer"):
        return "Bearer"
    return "DPoP"


def bind_refresh_token(ctx: Context, token: str) -> None:
    """§5: a refresh token issued to a public client under DPoP is bound to the proof key
    (confidential clients' refresh tokens are bound by client authentication instead)."""
    rt = ctx.store.refresh_tokens[token]
    client = ctx.store.clients.get(rt.client_id)
    if client is not None and not client.confidential:
        rt.jkt = bound_key()


def require_refresh_key(ctx: Context, rt: RefreshToken) -> None:
    """§5: a bound refresh token is redeemed only with a proof of the same key."""
    if rt.jkt is None or ctx.defect("as-dpop-refresh-unbound"):
        return
    presented = bound_key()
    if presented is None:
        raise _invalid(ctx, "the refresh token is bound to a DPoP key: a proof is required")
    if presented != rt.jkt:
        raise OAuthError("invalid_grant", "the refresh token is bound to another DPoP key")


def with_nonce(ctx: Context, request: Request, response: Response) -> Response:
    """§8, §8.2: every answer to a DPoP token request carries exactly one `DPoP-Nonce`, the
    nonce the next proof must include."""
    if "dpop" in request.headers:
        response.headers["DPoP-Nonce"] = ctx.store.dpop_nonces.current()
    return response
