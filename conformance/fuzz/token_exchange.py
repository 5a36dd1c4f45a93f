"""Fuzzed token-exchange requests (RFC 8693 §2.1, §2.2.2) at the MCP server's authorization
server.

The known-good request exchanges a user's access token for a token for a downstream resource
(`conformance.oauth.token_exchange.exchange_request`), as the MCP server's confidential
client. Every mutation makes it invalid: `grant_type`, `subject_token` or
`subject_token_type` left out, edited or repeated (an edited type URI is an unknown type, even
one that extends a supported URI); the subject token mutated without a new signature
(`jws.unsigned_edits`); a `resource` that is no absolute URI without a fragment (RFC 8707 §2);
`actor_token_type` without `actor_token`, or `actor_token` without its type (§2.1); a body
declared as another media type. `scope` is left alone: an authorization server may narrow or
ignore a requested scope (RFC 6749 §3.3).
"""

from __future__ import annotations

from conformance.fuzz import jws
from conformance.fuzz.forms import Add, Field, FormMutation, edits, form_mutations, uri_edits
from conformance.fuzz.properties import TOKEN_ENDPOINT_ERRORS, token_error
from conformance.fuzz.runner import Judgement, Target
from conformance.fuzz.token_requests import post
from conformance.http import Http
from conformance.oauth.clients import Client
from conformance.oauth.token_exchange import (
    ACCESS_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    exchange_request,
    issued,
)

ADDITIONS = (Add("actor_token_type", ACCESS_TOKEN_TYPE), Add("actor_token", "not-a-token"))


def fields(subject_token: str, resource: str) -> list[Field]:
    """The fuzzable fields of the known-good request (one per stratum of the subject token)."""
    token_strata = jws.unsigned_edits(subject_token, unicode=True)
    return [
        Field("grant_type", edits(TOKEN_EXCHANGE)),
        *(
            Field("subject_token", stratum, required=i == 0, repeatable=i == 0)
            for i, stratum in enumerate(token_strata)
        ),
        Field("subject_token_type", edits(ACCESS_TOKEN_TYPE)),
        Field("resource", uri_edits(resource), required=False, repeatable=False),
    ]


def target(
    http: Http, endpoint: str, client: Client, subject_token: str, resource: str, scope: str | None
) -> Target[FormMutation]:
    """Mutations of the exchange of `subject_token` for a token for `resource`."""
    params = tuple(exchange_request(subject_token, resource, scope))

    def attempt(mutation: FormMutation) -> Judgement:
        response = post(http, endpoint, client, params, f"fuzz: {mutation}", mutation)
        body = issued(response)
        if body:  # whatever it issued stays out of the reports
            http.redactor.remember(body["access_token"])
        return token_error(response, TOKEN_ENDPOINT_ERRORS)

    strata = form_mutations(fields(subject_token, resource), ADDITIONS)
    return Target("token-exchange requests", strata, attempt)
