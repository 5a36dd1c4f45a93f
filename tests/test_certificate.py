"""The per-profile certificate in results.json (issue 6): what was certified, and the verdict.

Read from the session's clean run of the whole suite against the embedded reference; the
metadata fingerprint is recomputed from the documents the reference served, as the run's
evidence recorded them. Under xdist, see tests/test_junit_allure.py (one `-n 2` run serves
both).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from conformance.discovery import PRM_SUFFIX, Discovery, Fetched
from reports import results_schema
from reports.certificate import (
    agreed_target,
    certificate,
    metadata_fingerprint,
    target_facts,
    verdict,
)
from tests.conftest import SuiteRun


def served_documents(results: dict[str, Any], mcp_url: str) -> tuple[dict[str, Any], str, dict]:
    """The protected resource metadata of `mcp_url` and its AS's metadata, as served (from
    the evidence: the documents hold no secrets, so redaction leaves them whole)."""
    host = urlsplit(mcp_url).netloc
    exchanges = [e for c in results["checks"] for e in c["evidence"] if e["status"] == 200]
    prm_url = f"http://{host}{PRM_SUFFIX}{urlsplit(mcp_url).path}"
    prm = next(json.loads(e["response_body"]) for e in exchanges if e["url"] == prm_url)
    issuer = prm["authorization_servers"][0]
    as_url = f"{issuer}/.well-known/oauth-authorization-server"
    as_metadata = next(json.loads(e["response_body"]) for e in exchanges if e["url"] == as_url)
    return prm, issuer, as_metadata


def assert_certifies_the_served_target(results: dict[str, Any]) -> None:
    target = results["profiles"][0]["certificate"]["target"]
    assert target["url"].startswith("http://127.0.0.1:") and target["url"].endswith("/mcp")
    assert target["embedded"] is True
    prm, issuer, as_metadata = served_documents(results, target["url"])
    assert target["issuers"] == [issuer] and as_metadata["issuer"] == issuer
    documents = {
        "protected_resource_metadata": prm,
        "authorization_server_metadata": {issuer: as_metadata},
    }
    canonical = json.dumps(documents, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert target["metadata_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert all(p["certificate"]["target"] == target for p in results["profiles"])


def test_every_profile_has_a_certificate_of_the_clean_reference(clean_run: SuiteRun) -> None:
    results = clean_run.results
    jsonschema.validate(results, results_schema())
    for profile in results["profiles"]:
        certificate = profile["certificate"]
        assert certificate["profile"] == profile["name"]
        assert certificate["suite"] == results["suite"]
        assert certificate["verdict"] == "conformant"
        assert certificate["counts"] == profile["counts"]
        assert certificate["baseline"] is None and certificate["baselined"] == []
        assert certificate["target"]["defects"] == []
        date = datetime.fromisoformat(certificate["date"])
        assert date.utcoffset() == UTC.utcoffset(None)
        assert certificate["date"] == results["generated_at"]
    assert results["run"]["note"] == ""  # one process: nothing to disagree about
    assert_certifies_the_served_target(results)


def test_the_fingerprint_is_over_canonical_json() -> None:
    """Sorted keys and no whitespace: the same documents in any order hash alike, and the
    hash is exactly that of the documented form."""
    prm = {"resource": "https://mcp.example/mcp", "authorization_servers": ["https://as.example"]}
    as_metadata = {"issuer": "https://as.example", "token_endpoint": "https://as.example/t"}
    reordered = dict(reversed(list(prm.items())))
    literal = (
        '{"authorization_server_metadata":{"https://as.example":{"issuer":"https://as.example",'
        '"token_endpoint":"https://as.example/t"}},"protected_resource_metadata":'
        '{"authorization_servers":["https://as.example"],"resource":"https://mcp.example/mcp"}}'
    )
    expected = hashlib.sha256(literal.encode()).hexdigest()
    assert metadata_fingerprint(prm, {"https://as.example": as_metadata}) == expected
    assert metadata_fingerprint(reordered, {"https://as.example": as_metadata}) == expected
    assert metadata_fingerprint(prm, {"https://as.example": None}) != expected


def test_target_facts_hash_what_discovery_found() -> None:
    discovery = Discovery("https://mcp.example/mcp")
    prm = {"resource": "https://mcp.example/mcp", "authorization_servers": ["https://as.example"]}
    discovery.prm = Fetched("https://mcp.example/.well-known/x", None, prm)
    discovery.issuers = ["https://as.example", "https://down.example"]
    facts = target_facts(discovery, embedded=False)
    assert facts == {
        "url": "https://mcp.example/mcp",
        "embedded": False,
        "issuers": ["https://as.example", "https://down.example"],
        "metadata_sha256": metadata_fingerprint(
            prm, {"https://as.example": None, "https://down.example": None}
        ),
    }


def test_workers_that_disagree_are_named() -> None:
    first = {"url": "http://127.0.0.1:1/mcp", "embedded": False, "issuers": [], "x": 1}
    other = {**first, "url": "http://127.0.0.1:2/mcp"}
    assert agreed_target({}) == (None, "")
    assert agreed_target({"gw0": first, "gw1": dict(first)}) == (first, "")
    target, note = agreed_target({"gw1": other, "gw0": first, "gw2": first})
    assert target == first
    assert "3 workers did not certify the same target" in note and "gw1 saw other" in note
    embedded = {**first, "embedded": True}
    assert agreed_target(
        {"gw0": embedded, "gw1": {**embedded, "url": "http://127.0.0.1:2/mcp"}}
    ) == (
        embedded,
        "",
    )


def _profile(conformant: bool = False, **counts: int) -> dict[str, Any]:
    every = dict.fromkeys(("passed", "failed", "warning", "skipped", "error", "not_run"), 0)
    return {"name": "p", "conformant": conformant, "counts": every | {"passed": 1} | counts}


def test_verdicts_of_incomplete_and_failing_runs() -> None:
    """A failure makes a profile not conformant even in a partial run; what was not run or
    not judged (error) leaves it incomplete, never not conformant."""
    results: dict[str, Any] = {
        "suite": {"name": "s", "version": "1"},
        "target": {"url": "https://mcp.example/mcp", "embedded": False, "defects": []},
        "generated_at": "2026-01-01T00:00:00+00:00",
        "run": {"complete": True},
    }
    failing = certificate(_profile(failed=1), results, None)
    assert failing["verdict"] == "not_conformant"
    assert failing["target"]["url"] == "https://mcp.example/mcp"
    assert failing["target"]["metadata_sha256"] is None
    assert verdict(_profile(conformant=True, warning=2)) == "conformant"
    assert verdict(_profile(failed=1, not_run=3)) == "not_conformant"  # in any run
    assert verdict(_profile()) == "incomplete"  # nothing failed, but the run stopped early
    assert verdict(_profile(not_run=1)) == "incomplete"
    assert verdict(_profile(error=1)) == "incomplete"
