"""Fuzzed DPoP proofs (RFC 9449 §4.2, §4.3), at the token endpoint (§5) and at the MCP server
(§7.1).

The suite owns the proof key, so besides the unsigned mutations of a known-good proof
(`jws.unsigned_edits`) it signs proofs that break one rule of §4.3 each: `typ` other than
`dpop+jwt` (never a media-type variant of it), `alg` not the signing one or `none`, `jwk` of
another JSON type, another key or with its private members, `htm` another method, `htu`
another URI (never one that normalises to the request URI: no case, default port, query or
fragment changes), `iat` far off or not a number, and at a resource `ath` missing or over
another token. Nonces are never mutated: a server need not demand them. Nor is `jti` left
out: a server that skips the required-claims check would take one such proof and refuse the
next as a replay of the same (empty) `jti`, so the verdict would depend on which check sent
one first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from hypothesis import strategies as st

from conformance.fuzz import jws
from conformance.fuzz.forms import Edit
from conformance.fuzz.runner import Judgement, Target
from conformance.oauth.dpop import DPoPKey, access_token_hash

Mutation = Edit | jws.Resign
Send = Callable[[str], httpx.Response]
"""Sends one request carrying the given `DPoP` header value."""


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _other_alg(key: DPoPKey) -> str:
    return "RS256" if key.alg != "RS256" else "ES256"


def proof_changes(
    key: DPoPKey, url: str, *, at_resource: bool
) -> dict[tuple[int, str], list[str | None]]:
    """The re-signed rule breaks of RFC 9449 §4.3 for proofs by `key` for `POST url`."""
    now = int(time.time())
    origin = f"{urlsplit(url).scheme}://127.0.0.2"
    changes: dict[tuple[int, str], list[str | None]] = {
        (0, "typ"): ['["dpop+jwt"]', '"jwt"', '"at+jwt"', '"dpop"', "0", None],
        (0, "alg"): ['["ES256"]', '"none"', '"HS256"', _text(_other_alg(key)), None],
        (0, "jwk"): [
            '["x"]',
            '"x"',
            "0",
            "{}",
            _text(DPoPKey(key.alg).jwk),
            _text(jws.parts(key.proof("POST", url, include_private_key=True))[0]["jwk"]),
            None,
        ],
        (1, "htm"): ['["POST"]', '"GET"', '"post"', "0", None],
        (1, "htu"): ['["x"]', _text(url + "/x"), _text(origin + urlsplit(url).path), "0", None],
        (1, "iat"): [_text(str(now)), str(now - 3600), str(now + 3600), "true", None],
    }
    if at_resource:
        changes[(1, "ath")] = ['["x"]', _text(access_token_hash("another token")), "0", None]
    return changes


def target(
    what: str,
    key: DPoPKey,
    url: str,
    proof: Callable[[], str],
    send: Send,
    judge: Callable[[httpx.Response], Judgement],
    remember: Callable[[str], None],
    *,
    at_resource: bool = False,
) -> Target[Mutation]:
    """Mutations of the known-good proofs `proof()` builds (fresh ones each time), each sent
    with `send` and judged with `judge`. Every proof sent is `remember`ed for redaction."""
    base = proof()
    strata: list[st.SearchStrategy[Mutation]] = [
        *jws.unsigned_edits(base),
        *jws.resigned(proof_changes(key, url, at_resource=at_resource)),
    ]

    def attempt(mutation: Mutation) -> Judgement:
        if isinstance(mutation, jws.Resign):
            header, claims = mutation.apply_to(*jws.parts(proof()))
            value = jws.sign(header, claims, key.private_key, key.alg)
        else:
            value = mutation.apply(base)
        remember(value)
        return judge(send(value))

    return Target(what, strata, attempt)
