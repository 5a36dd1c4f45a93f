"""Fuzzed ID-JAGs at the resource authorization server (RFC 7523 §2.1, §3, §3.1;
draft-ietf-oauth-identity-assertion-authz-grant §3, §4.4.1).

The known-good request redeems a fresh ID-JAG from the IdP with the jwt-bearer grant, as the
client it names. Mutations: `grant_type` or `assertion` left out, edited or repeated; the
ID-JAG mutated without a new signature (`jws.unsigned_edits`); and, with the IdP's test
signer, ID-JAGs signed again (each with a fresh `jti`) with one rule broken: `typ` not
`oauth-id-jag+jwt`, `iss`, `sub`, `aud`, `client_id` or `jti` missing, of another JSON type or
wrong, `exp` past, missing or not a number (a numeric string is not a NumericDate, RFC 7519
§2), `iat` or `nbf` in the future or not a number, `resource` not served. Never generated: an
`aud` array that includes the server (RFC 7523 §3 allows it) and a missing `iat` (optional
there).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from hypothesis import strategies as st

from conformance.fuzz import jws
from conformance.fuzz.forms import (
    Change,
    Field,
    FormMutation,
    Params,
    Replace,
    edits,
    form_mutations,
)
from conformance.fuzz.properties import TOKEN_ENDPOINT_ERRORS, token_error
from conformance.fuzz.runner import Judgement, Target
from conformance.fuzz.token_requests import post
from conformance.http import Http
from conformance.oauth.clients import Client
from conformance.oauth.token_exchange import JWT_BEARER, issued

Mutation = FormMutation | jws.Resign
ELSEWHERE = "https://attacker.invalid"


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def id_jag_changes(claims: dict[str, Any]) -> dict[tuple[int, str], list[str | None]]:
    """Re-signed breaks of RFC 7523 §3 and the ID-JAG processing rules, for the claims the
    known-good ID-JAG carries."""
    now = int(time.time())
    changes: dict[tuple[int, str], list[str | None]] = {
        (0, "typ"): ['["oauth-id-jag+jwt"]', '"JWT"', '"at+jwt"', None],
        (1, "exp"): [_text(str(claims.get("exp", now + 300))), str(now - 3600), "null", None],
        (1, "iat"): [_text(str(claims.get("iat", now))), str(now + 3600)],
        (1, "nbf"): [_text(str(now)), str(now + 3600)],
        (1, "iss"): [_text(ELSEWHERE), None],  # a signer may refuse a non-string iss
        (1, "aud"): ["0", _text(ELSEWHERE), _text([ELSEWHERE]), None],
        (1, "sub"): ["0", '""', None],
        (1, "client_id"): ["0", '"someone-else"', None],
        (1, "jti"): ["0", None],
    }
    if "resource" in claims:
        changes[(1, "resource")] = ["0", _text(f"{ELSEWHERE}/mcp")]
    return changes


def redemption(id_jag: str) -> Params:
    """The jwt-bearer grant (RFC 7523 §2.1) presenting `id_jag`."""
    return (("grant_type", JWT_BEARER), ("assertion", id_jag))


def target(
    http: Http, endpoint: str, client: Client, id_jag: str, signer: jws.Signer | None
) -> Target[Mutation]:
    """Mutations of the redemption of `id_jag` (unused) by `client`; re-signed ID-JAGs only
    with the IdP's `signer`."""
    params = redemption(id_jag)
    http.redactor.remember(id_jag)
    header, claims = jws.parts(id_jag)
    fields = [
        Field("grant_type", edits(JWT_BEARER)),
        *(
            Field("assertion", stratum, required=i == 0, repeatable=i == 0)
            for i, stratum in enumerate(jws.unsigned_edits(id_jag, unicode=True))
        ),
    ]
    strata: list[st.SearchStrategy[Mutation]] = [*form_mutations(fields)]
    if signer is not None:
        strata += jws.resigned(id_jag_changes(claims))

    def resigned(mutation: jws.Resign) -> FormMutation:
        assert signer is not None
        changed_header, changed = mutation.apply_to(header, {**claims, "jti": uuid.uuid4().hex})
        overrides = {"typ": changed_header.get("typ"), "kid": changed_header.get("kid")}
        return Change("assertion", Replace(signer(changed, **overrides)))

    def attempt(mutation: Mutation) -> Judgement:
        form = resigned(mutation) if isinstance(mutation, jws.Resign) else mutation
        response = post(http, endpoint, client, params, f"fuzz: {mutation}", form)
        body = issued(response)
        if body:  # whatever it issued stays out of the reports
            http.redactor.remember(body["access_token"])
        return token_error(response, TOKEN_ENDPOINT_ERRORS)

    return Target("ID-JAG redemptions", strata, attempt)
