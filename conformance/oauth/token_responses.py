"""Judging token endpoint responses: caching directives and refusals (RFC 6749 §5.1, §5.2)."""

from __future__ import annotations

import httpx

from conformance.oauth.token_exchange import describe, error_code, issued
from conformance.verdict import Verdict


def cache_directives(response: httpx.Response) -> set[str]:
    """The `Cache-Control` directive names of a response, lower-cased (RFC 9111 §5.2)."""
    return {
        d.split("=")[0].strip().lower()
        for value in response.headers.get_list("cache-control")
        for d in value.split(",")
    }


def expect_refused(
    verdict: Verdict,
    requirement: str,
    response: httpx.Response,
    what: str,
    codes: tuple[str, ...] = ("invalid_grant",),
    statuses: tuple[int, ...] = (400,),
) -> bool:
    """`what` is refused without a token. The defined statuses and codes pass; another 4xx
    error is a tolerated variant (AMB-ERROR-CODE-VARIANTS); a token or any other status
    violates the requirement."""
    expected = f"{'/'.join(map(str, statuses))} {' or '.join(codes)}"
    if issued(response) is not None or not 400 <= response.status_code < 500:
        verdict.fail(requirement, f"{what}: got {describe(response)}, expected {expected}")
        return False
    if response.status_code in statuses and error_code(response) in codes:
        return verdict.expect(requirement, True, what)
    verdict.tolerate(
        requirement, f"{what}: got {describe(response)}, where {expected} is the defined answer"
    )
    return True
