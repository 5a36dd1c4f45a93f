"""The 401 challenge an MCP server sends a client that presents no access token.

RFC 6750 §3 (the Bearer challenge and its attributes), RFC 9728 §5.1 (`resource_metadata`)
and MCP authorization "Protected Resource Metadata Discovery Requirements" (the challenge
points to the metadata and names the scopes to request). The request judged is the
unauthenticated `initialize` that discovery sends first, as an MCP client does.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from conformance.discovery import Discovery
from conformance.fixtures import Run
from conformance.oauth.challenge import Challenge
from conformance.verdict import Verdict

_TOKEN_SCHEMES = ("bearer", "dpop")
# RFC 6750 §3: error, error_description and scope values use %x20-21 / %x23-5B / %x5D-7E.
_ATTRIBUTE_VALUE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
# RFC 6749 §3.3 scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), joined by single spaces.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")


def _token_challenges(discovery: Discovery) -> list[Challenge]:
    """The Bearer and DPoP challenges of the unauthenticated response."""
    header = discovery.challenge
    return [c for c in header.challenges if c.scheme.lower() in _TOKEN_SCHEMES] if header else []


def _challenges_to_inspect(discovery: Discovery, verdict: Verdict) -> list[Challenge]:
    """The token challenges, or a lost precondition when there is none (judged elsewhere)."""
    verdict.attach(discovery.exchanges)
    challenges = _token_challenges(discovery)
    verdict.precondition(
        challenges,
        "the unauthenticated request got no Bearer or DPoP "
        "challenge to inspect (see RS-401-WWW-AUTHENTICATE)",
    )
    return challenges


def _same_resource(a: str, b: str) -> bool:
    """Loosely the same resource: case of scheme and host, trailing slash and fragment ignored.

    Exact equality is PRM-RESOURCE-EQUALS-ID's to judge; here only a document for another
    resource is a finding.
    """
    pa, pb = urlsplit(a), urlsplit(b)
    return (
        pa.scheme.lower(),
        (pa.hostname or "").lower(),
        pa.port,
        pa.path.rstrip("/"),
        pa.query,
    ) == (pb.scheme.lower(), (pb.hostname or "").lower(), pb.port, pb.path.rstrip("/"), pb.query)


def _secure_or_loopback(url: str) -> bool:
    # RFC 9728 §7.1 requires TLS; the loopback exemption lets local test deployments pass.
    parts = urlsplit(url)
    return parts.scheme == "https" or (
        parts.scheme == "http" and (parts.hostname or "") in ("127.0.0.1", "::1", "localhost")
    )


@pytest.mark.requirement("RS-401-WWW-AUTHENTICATE")
def test_unauthenticated_request_gets_401_bearer_challenge(
    discovery: Discovery, verdict: Verdict
) -> None:
    """No token: 401 and a well-formed Bearer or DPoP challenge (RFC 6750 §3, OAuth 2.1 §5.3.1)."""
    verdict.attach(discovery.exchanges)
    response = discovery.unauthenticated
    verdict.precondition(response is not None, "the unauthenticated request was not answered")
    assert response is not None
    # Serving the request at all is RS-MISSING-TOKEN-401's finding; there is no challenge to judge.
    verdict.precondition(
        not response.is_success,
        f"the request without a token was served ({response.status_code}); "
        "see RS-MISSING-TOKEN-401",
    )
    verdict.expect(
        "RS-401-WWW-AUTHENTICATE",
        response.status_code == 401,
        f"a request without a token got {response.status_code}, not 401",
    )
    values = response.headers.get_list("www-authenticate")
    if not verdict.expect(
        "RS-401-WWW-AUTHENTICATE",
        bool(values),
        f"the {response.status_code} response has no WWW-Authenticate header",
    ):
        return
    errors = discovery.challenge.errors if discovery.challenge else ["not parsed"]
    verdict.expect(
        "RS-401-WWW-AUTHENTICATE",
        not errors,
        f"WWW-Authenticate {values!r} cannot be parsed: {errors}",
    )
    challenges = _token_challenges(discovery)
    if not verdict.expect(
        "RS-401-WWW-AUTHENTICATE",
        bool(challenges),
        f"no Bearer or DPoP challenge in WWW-Authenticate {values!r}",
    ):
        return
    for challenge in challenges:
        repeated = sorted({n for n in challenge.duplicated if n in ("realm", "scope")})
        verdict.expect(
            "RS-401-WWW-AUTHENTICATE",
            not repeated,
            f"{challenge.scheme} challenge repeats {repeated}",
        )
        bad = [
            n
            for n in ("error", "error_description", "scope")
            if challenge.get(n) is not None
            and not _ATTRIBUTE_VALUE.fullmatch(challenge.get(n) or "")
        ]
        verdict.expect(
            "RS-401-WWW-AUTHENTICATE",
            not bad,
            f"{challenge.scheme} challenge attributes {bad} use characters "
            "RFC 6750 §3 does not allow",
        )
        if challenge.get("error"):
            # RFC 6750 §3.1: SHOULD NOT include an error code when no credentials were sent.
            verdict.tolerate(
                "RS-401-WWW-AUTHENTICATE",
                f"the {challenge.scheme} challenge to a request without credentials "
                f"carries error={challenge.get('error')!r} (RFC 6750 §3.1: SHOULD NOT)",
            )


@pytest.mark.requirement("RS-401-RESOURCE-METADATA")
def test_challenge_points_to_resource_metadata(
    run: Run, discovery: Discovery, verdict: Verdict
) -> None:
    """`resource_metadata` is an absolute URL serving this server's metadata (RFC 9728 §5.1)."""
    challenges = _challenges_to_inspect(discovery, verdict)
    url = next((c.get("resource_metadata") for c in challenges if c.get("resource_metadata")), None)
    if not verdict.expect(
        "RS-401-RESOURCE-METADATA",
        url is not None,
        "the challenge has no resource_metadata parameter",
    ):
        return
    assert url is not None
    parts = urlsplit(url)
    if not verdict.expect(
        "RS-401-RESOURCE-METADATA",
        parts.scheme in ("http", "https") and bool(parts.netloc),
        f"resource_metadata {url!r} is not an absolute URL",
    ):
        return
    verdict.expect(
        "RS-401-RESOURCE-METADATA",
        _secure_or_loopback(url),
        f"resource_metadata {url!r} is neither https nor loopback",
    )
    attempt = next((a for a in discovery.prm_attempts if a.url == url), None)
    verdict.precondition(
        attempt is not None,
        f"resource_metadata {url} is outside the run's scope; add its host to "
        "[target] allowed_hosts if it belongs to the deployment",
    )
    assert attempt is not None
    Verdict.precondition(
        attempt.response is not None, f"the metadata it names could not be fetched: {attempt.error}"
    )
    assert attempt.response is not None
    status = attempt.response.status_code
    if not verdict.expect(
        "RS-401-RESOURCE-METADATA", status == 200 and bool(attempt.document), attempt.describe()
    ):
        return
    assert attempt.document is not None
    resource = attempt.document.get("resource")
    verdict.expect(
        "RS-401-RESOURCE-METADATA",
        isinstance(resource, str) and _same_resource(resource, run.mcp_url),
        f"the document at {url} describes resource {resource!r}, "
        f"not this MCP server {run.mcp_url!r}",
    )


@pytest.mark.requirement("RS-401-SCOPE-HINT")
def test_challenge_names_needed_scopes(discovery: Discovery, verdict: Verdict) -> None:
    """The challenge has one `scope` of space-delimited scope tokens (RFC 6750 §3, MCP)."""
    challenges = _challenges_to_inspect(discovery, verdict)
    with_scope = [c for c in challenges if c.get("scope") is not None]
    if not verdict.expect(
        "RS-401-SCOPE-HINT", bool(with_scope), "the challenge has no scope attribute"
    ):
        return
    for challenge in with_scope:
        scope = challenge.get("scope") or ""
        verdict.expect(
            "RS-401-SCOPE-HINT",
            "scope" not in challenge.duplicated,
            f"the {challenge.scheme} challenge carries scope more than once",
        )
        verdict.expect(
            "RS-401-SCOPE-HINT",
            bool(_SCOPE.fullmatch(scope)),
            f"scope {scope!r} is not a space-delimited list of scope tokens",
        )
