"""Fuzzed access tokens at the MCP server (RFC 9068 §4, RFC 6750 §3.1, MCP "Token Handling").

The known-good token is a user's JWT access token for the MCP server. Unsigned mutations
corrupt, cut, reshape it or change a header member or claim under the old signature; with the
target's test signer, tokens are signed again with one rule of RFC 9068 §4 broken: `typ` not
`at+jwt`, an unknown `kid`, another issuer or audience, expired, not yet valid, issued in the
future, or `exp`, `nbf`, `iat`, `sub`, `jti` of the wrong JSON type. Numeric strings for the
time claims are not sent: common JWT libraries read them as numbers, and the time check RFC
9068 §4 asks for still happens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import strategies as st

from conformance.fuzz import jws
from conformance.fuzz.forms import Edit, edits
from conformance.fuzz.runner import Judgement, Target
from conformance.oauth.jwt import is_jwt

Mutation = Edit | jws.Resign
ELSEWHERE = "https://attacker.invalid"


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def token_changes() -> dict[tuple[int, str], list[str | None]]:
    """Re-signed breaks of RFC 9068 §4 (and RFC 7519 §4.1 claim types)."""
    now = int(time.time())
    return {
        (0, "typ"): ['["at+jwt"]', '"JWT"', '"dpop+jwt"', None],
        (0, "kid"): ['"no-such-key"'],
        (1, "iss"): [_text(ELSEWHERE), None],  # a signer may refuse a non-string iss
        (1, "aud"): [_text(f"{ELSEWHERE}/mcp"), _text([f"{ELSEWHERE}/mcp"]), "0", None],
        (1, "exp"): [str(now - 3600), '"x"', "null", None],
        (1, "nbf"): [str(now + 3600), '"x"'],
        (1, "iat"): [str(now + 3600), '"x"'],
        (1, "sub"): ["0", '["x"]'],
        (1, "jti"): ["0"],
    }


def resign(signer: jws.Signer, token: str, mutation: jws.Resign) -> str:
    """`token` signed again through `signer` with `mutation`'s one change (the hook sets the
    header's defaults, so only a changed header member is passed, None to leave it out)."""
    header, claims = mutation.apply_to(*jws.parts(token))
    overrides = {mutation.name: header.get(mutation.name)} if mutation.segment == 0 else {}
    return signer(claims, **overrides)


def target(
    token: str,
    present: Callable[[str], httpx.Response],
    judge: Callable[[httpx.Response], Judgement],
    signer: jws.Signer | None,
) -> Target[Mutation]:
    """Mutations of `token`, each `present`ed to the MCP server and judged with `judge`;
    re-signed ones only with a `signer`."""
    # An opaque token: its characters are all there is to change.
    strata: list[st.SearchStrategy[Mutation]] = (
        [*jws.unsigned_edits(token)] if is_jwt(token) else [edits(token, unicode=False)]
    )
    if signer is not None and is_jwt(token):
        strata += jws.resigned(token_changes())

    def attempt(mutation: Mutation) -> Judgement:
        if isinstance(mutation, jws.Resign):
            assert signer is not None
            return judge(present(resign(signer, token, mutation)))
        return judge(present(mutation.apply(token)))

    return Target("access tokens", strata, attempt)
