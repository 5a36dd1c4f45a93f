"""RFC 9728 protected resource metadata of the MCP server, as MCP clients discover it.

MCP 2025-06-18 and later make the MCP server an OAuth protected resource that publishes
this document; clients find it through the 401 challenge or the well-known URL. MCP
2026-07-28 adds that it does not offer `offline_access` as a resource scope.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from conformance.discovery import PRM_SUFFIX, Discovery, path_inserted, unjudgeable
from conformance.fixtures import Run
from conformance.verdict import Verdict

_OMNIBUS_SCOPES = {"*", "all", "admin", "admin:*", "root"}


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "::1", "localhost")


def _secure_or_loopback(url: str) -> bool:
    # RFC 9728 §7.1 requires TLS; the loopback exemption lets local test deployments pass.
    return url.startswith("https://") or (url.startswith("http://") and _is_loopback(url))


@pytest.mark.requirement("PRM-DISCOVERABLE")
def test_metadata_is_discoverable(discovery: Discovery, verdict: Verdict) -> None:
    """An unauthenticated client can find the protected resource metadata."""
    verdict.attach(discovery.exchanges)
    fault = unjudgeable(discovery.prm_attempts)
    Verdict.precondition(fault is None, f"the metadata could not be fetched: {fault}")
    tried = "; ".join(a.describe() for a in discovery.prm_attempts)
    verdict.expect(
        "PRM-DISCOVERABLE",
        discovery.prm is not None,
        f"no metadata via the challenge or the well-known URLs ({tried})",
    )


@pytest.mark.requirement("PRM-WELLKNOWN-PATH-INSERTION")
def test_metadata_at_path_inserted_well_known_url(run: Run, verdict: Verdict) -> None:
    """The metadata is served where RFC 9728 §3.1 puts it for this resource identifier."""
    url = path_inserted(run.mcp_url, PRM_SUFFIX)
    response = run.http.get_following(url, headers={"Accept": "application/json"})
    verdict.expect(
        "PRM-WELLKNOWN-PATH-INSERTION",
        response.status_code == 200,
        f"GET {url} answered {response.status_code}",
    )


@pytest.mark.requirement("PRM-RESPONSE-FORMAT")
def test_metadata_response_is_json_without_empty_members(
    discovery: Discovery, resource_metadata: dict, verdict: Verdict
) -> None:
    """200, application/json, a JSON object, and no members without a value (RFC 9728 §3.2)."""
    assert discovery.prm is not None and discovery.prm.response is not None
    verdict.attach(discovery.exchanges)
    content_type = discovery.prm.response.headers.get("content-type", "")
    verdict.expect(
        "PRM-RESPONSE-FORMAT",
        content_type.split(";")[0].strip() == "application/json",
        f"content type is {content_type!r}, not application/json",
    )
    empty = [k for k, v in resource_metadata.items() if v is None or v == [] or v == ""]
    verdict.expect("PRM-RESPONSE-FORMAT", not empty, f"members without a value: {empty}")


@pytest.mark.requirement("PRM-RESOURCE-FIELD")
def test_metadata_resource_is_absolute_url_without_fragment(
    resource_metadata: dict, verdict: Verdict
) -> None:
    """`resource` is present, absolute, https (or loopback http), and has no fragment."""
    resource = resource_metadata.get("resource")
    if not isinstance(resource, str) or not resource:
        verdict.fail("PRM-RESOURCE-FIELD", f"`resource` is missing or not a string: {resource!r}")
        return
    parts = urlsplit(resource)
    verdict.expect(
        "PRM-RESOURCE-FIELD",
        bool(parts.scheme and parts.netloc),
        f"`resource` {resource!r} is not an absolute URL",
    )
    verdict.expect(
        "PRM-RESOURCE-FIELD", "#" not in resource, f"`resource` {resource!r} has a fragment"
    )
    verdict.expect(
        "PRM-RESOURCE-FIELD",
        _secure_or_loopback(resource),
        f"`resource` {resource!r} is neither https nor loopback",
    )


@pytest.mark.requirement("PRM-RESOURCE-EQUALS-ID")
def test_metadata_resource_equals_mcp_url(
    run: Run, resource_metadata: dict, verdict: Verdict
) -> None:
    """`resource` is identical to the URL the client called (RFC 9728 §3.3, no normalization)."""
    resource = resource_metadata.get("resource")
    message = f"`resource` is {resource!r}, the MCP endpoint is {run.mcp_url!r}"
    if isinstance(resource, str) and resource.rstrip("/") == run.mcp_url.rstrip("/"):
        message += " (they differ only in a trailing slash, the most common mismatch)"
    verdict.expect("PRM-RESOURCE-EQUALS-ID", resource == run.mcp_url, message)


@pytest.mark.requirement("PRM-AUTHZ-SERVERS")
def test_metadata_lists_authorization_servers(resource_metadata: dict, verdict: Verdict) -> None:
    """`authorization_servers` names at least one issuer identifier (MCP makes it required)."""
    servers = resource_metadata.get("authorization_servers")
    if not isinstance(servers, list) or not servers:
        verdict.fail(
            "PRM-AUTHZ-SERVERS", f"`authorization_servers` is missing or empty: {servers!r}"
        )
        return
    for issuer in servers:
        parts = urlsplit(issuer) if isinstance(issuer, str) else None
        verdict.expect(
            "PRM-AUTHZ-SERVERS",
            bool(
                parts
                and parts.scheme
                and parts.netloc
                and not parts.query
                and not parts.fragment
                and _secure_or_loopback(issuer)
            ),
            f"{issuer!r} is not an https issuer identifier without query or fragment",
        )


@pytest.mark.requirement("PRM-AUTHZ-SERVERS-RESOLVE")
def test_listed_authorization_servers_resolve(
    discovery: Discovery, resource_metadata: dict, verdict: Verdict
) -> None:
    """Every listed issuer serves metadata whose `issuer` is that identifier (RFC 8414 §3.3)."""
    servers = resource_metadata.get("authorization_servers")
    if not isinstance(servers, list) or not servers:
        pytest.skip("the metadata lists no authorization servers (see PRM-AUTHZ-SERVERS)")
    verdict.attach(discovery.exchanges)
    for issuer in servers:
        attempts = discovery.as_attempts.get(issuer, [])
        fault = unjudgeable(attempts)
        Verdict.precondition(fault is None, f"metadata of {issuer!r} could not be fetched: {fault}")
        hit = next((a.document for a in attempts if a.ok), None)
        if not verdict.expect(
            "PRM-AUTHZ-SERVERS-RESOLVE",
            hit is not None,
            f"{issuer!r} serves no authorization server metadata",
        ):
            continue
        assert hit is not None
        verdict.expect(
            "PRM-AUTHZ-SERVERS-RESOLVE",
            hit.get("issuer") == issuer,
            f"metadata of {issuer!r} declares issuer {hit.get('issuer')!r}",
        )


@pytest.mark.requirement("PRM-SCOPES-SUPPORTED")
def test_metadata_advertises_minimal_scopes(resource_metadata: dict, verdict: Verdict) -> None:
    """`scopes_supported` is present and holds no omnibus scope (MCP scope minimization)."""
    scopes = resource_metadata.get("scopes_supported")
    if not isinstance(scopes, list) or not scopes:
        verdict.fail("PRM-SCOPES-SUPPORTED", f"`scopes_supported` is missing or empty: {scopes!r}")
        return
    omnibus = sorted(set(scopes) & _OMNIBUS_SCOPES)
    verdict.expect("PRM-SCOPES-SUPPORTED", not omnibus, f"omnibus scopes advertised: {omnibus}")


@pytest.mark.requirement("RS-NO-OFFLINE-ACCESS")
def test_offline_access_is_not_a_resource_scope(
    discovery: Discovery, resource_metadata: dict[str, Any], verdict: Verdict
) -> None:
    """MCP 2026-07-28 authorization "Refresh Tokens" (SEP-2207): refresh tokens are the
    authorization server's business, so neither PRM `scopes_supported` nor a challenge's `scope`
    names offline_access."""
    verdict.attach(discovery.exchanges)
    supported = resource_metadata.get("scopes_supported")
    verdict.expect(
        "RS-NO-OFFLINE-ACCESS",
        not (isinstance(supported, list) and "offline_access" in supported),
        f"the protected resource metadata lists offline_access in scopes_supported {supported!r}",
    )
    for challenge in discovery.challenge.challenges if discovery.challenge else []:
        scope = (challenge.get("scope") or "").split()
        verdict.expect(
            "RS-NO-OFFLINE-ACCESS",
            "offline_access" not in scope,
            f"the {challenge.scheme} challenge of the 401 asks for scope {' '.join(scope)!r}",
        )
