"""The certificate of each profile in results.json: a machine-readable statement, fit to
publish, of what was certified (the MCP URL, its authorization servers, a fingerprint of
their metadata), by which suite, when, and with which verdict.

The target facts come from discovery, which runs in each process that runs checks (under
xdist: each worker). Every such process sends its facts along with one check report; the
controller only compares them and never fetches anything itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the compare command reads certificates without the suite's HTTP stack
    from conformance.discovery import Discovery


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def metadata_fingerprint(
    resource_metadata: dict[str, Any] | None, as_metadata: dict[str, dict[str, Any] | None]
) -> str:
    """SHA-256 (hex) of the canonical JSON of
    `{"protected_resource_metadata": PRM, "authorization_server_metadata": {issuer: AS}}`,
    each document as discovered, null where none was found."""
    documents = {
        "protected_resource_metadata": resource_metadata,
        "authorization_server_metadata": as_metadata,
    }
    return hashlib.sha256(canonical_json(documents)).hexdigest()


def target_facts(
    discovery: Discovery, embedded: bool, scrub: Callable[[str], str] = str
) -> dict[str, Any]:
    """What this process certified: the MCP URL, the issuers listed for it, and the
    fingerprint of the metadata documents discovery found."""
    as_metadata = {
        issuer: next((a.document for a in discovery.as_attempts.get(issuer, []) if a.ok), None)
        for issuer in discovery.issuers
    }
    prm = discovery.prm.document if discovery.prm else None
    return {
        "url": scrub(discovery.mcp_url),
        "embedded": embedded,
        "issuers": [scrub(issuer) for issuer in discovery.issuers],
        "metadata_sha256": metadata_fingerprint(prm, as_metadata),
    }


def agreed_target(facts: dict[str, dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The target facts every process (by worker ID) reported, and a note when they differ
    (the certificate then names the first worker's)."""
    if not facts:
        return None, ""
    names = sorted(facts)
    first = facts[names[0]]
    differing = [name for name in names if facts[name] != first]
    # Each worker starts its own embedded reference, on its own ports: the same deployment,
    # other URLs (and so another fingerprint). Only a real target must be the same for all.
    if not differing or all(f.get("embedded") for f in facts.values()):
        return first, ""
    return first, (
        f"the {len(names)} workers did not certify the same target: "
        f"{', '.join(differing)} saw other URLs, issuers or metadata than {names[0]}, "
        f"whose target the certificates name"
    )


VERDICT_WORDS = {
    "conformant": "CONFORMANT",
    "not_conformant": "NOT CONFORMANT",
    "incomplete": "INCOMPLETE",
}


def verdict(profile: dict[str, Any]) -> str:
    """The one verdict every report shows for a profile.

    `not_conformant` once one of its requirements failed: a failure stands even when the run
    stopped early. Otherwise `incomplete` while the profile cannot be certified: the run
    stopped early, a requirement was not exercised, or one could not be judged (an error is
    never the target's failure). Otherwise `conformant`. A baseline never changes it.
    """
    if profile["counts"]["failed"]:
        return "not_conformant"
    return "conformant" if profile["conformant"] else "incomplete"


def certificate(
    profile: dict[str, Any], results: dict[str, Any], target: dict[str, Any] | None
) -> dict[str, Any]:
    settings_target = results["target"]
    certified = target or {
        "url": settings_target["url"],
        "embedded": settings_target["embedded"],
        "issuers": [],
        "metadata_sha256": None,
    }
    baseline = results.get("baseline")
    return {
        "suite": dict(results["suite"]),
        "profile": profile["name"],
        "target": {**certified, "defects": list(settings_target["defects"])},
        "date": results["generated_at"],
        "verdict": verdict(profile),
        "counts": dict(profile["counts"]),
        "baseline": {"file": baseline["file"], "sha256": baseline["sha256"]} if baseline else None,
        "baselined": list(profile.get("baselined", [])),
    }


def add_certificates(results: dict[str, Any], target: dict[str, Any] | None) -> None:
    for profile in results["profiles"]:
        profile["certificate"] = certificate(profile, results, target)
