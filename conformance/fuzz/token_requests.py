"""Fuzzed token requests: the authorization code grant (OAuth 2.1 §3.2.2, §4.1.3), mutated.

The known-good request redeems an unused code with its verifier, `resource` and
`redirect_uri`, as the public test client (`client_id` in the form, OAuth 2.1 §2.4). Every
mutation makes it invalid: a required parameter left out, a value edited (the code, the
verifier, the client and the grant type are compared exactly, the resource and redirect URI
must equal those of the authorization request), a parameter repeated, or the body declared
as something other than a form. `post` sends any such form to a token endpoint; the exchange
and jwt-bearer targets use it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from conformance.evidence import SECRET_FIELDS
from conformance.flows import Flows
from conformance.fuzz.forms import (
    Field,
    FormMutation,
    Params,
    content_type,
    edits,
    form_mutations,
)
from conformance.fuzz.properties import TOKEN_ENDPOINT_ERRORS, token_error
from conformance.fuzz.runner import Judgement, Target
from conformance.http import Http, form
from conformance.oauth.authorization import AuthorizationRequest
from conformance.oauth.clients import Client, authentication

OPTIONAL = ("resource", "redirect_uri")  # may be left out, must match when sent
MAY_REPEAT = ("resource", "audience")  # RFC 8707 §2, RFC 8693 §2.1


def post(
    http: Http,
    endpoint: str,
    client: Client,
    params: Params,
    note: str,
    mutation: FormMutation | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> httpx.Response:
    """`params` and the client's authentication, with `mutation` applied (when given), POSTed
    to `endpoint`."""
    auth_headers, auth_params = authentication(client)
    sent = (*params, *auth_params)
    if mutation is not None:
        sent = mutation.apply(sent)
    fields = [*auth_headers, *headers, ("Accept", "application/json")]
    media_type = content_type(mutation)
    if media_type is not None:
        fields.append(("Content-Type", media_type))
    return http.post(endpoint, headers=fields, content=form(list(sent)), note=note)


def fields_of(params: Params, *, required: Sequence[str] = ()) -> list[Field]:
    """Every parameter of a known-good form as a fuzzable field: `required` ones may also be
    left out; all but `resource` and `audience` may not be repeated."""
    return [
        Field(name, edits(value), required=name in required, repeatable=name not in MAY_REPEAT)
        for name, value in params
    ]


def target(
    flows: Flows, client: Client, code: str, request: AuthorizationRequest
) -> Target[FormMutation]:
    """Mutations of the request that would redeem `code`, which stays unused."""
    params = tuple(flows.redemption(code, request, [("redirect_uri", request.redirect_uri)]))
    _, auth_params = authentication(client)
    for name, value in params:
        if name in SECRET_FIELDS:  # shown as sent where the body is not declared a form
            flows.http.redactor.remember(value)
    required = [name for name, _ in (*params, *auth_params) if name not in OPTIONAL]

    def attempt(mutation: FormMutation) -> Judgement:
        note = f"fuzz: {mutation}"
        response = post(flows.http, flows.token_endpoint, client, params, note, mutation)
        flows.token_body(response)  # whatever it issued stays out of the reports
        return token_error(response, TOKEN_ENDPOINT_ERRORS)

    strata = form_mutations(fields_of((*params, *auth_params), required=required))
    return Target("token requests", strata, attempt)
