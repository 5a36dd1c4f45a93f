"""The clean reference deployment passes every check, and the reports say so."""

from __future__ import annotations

import re

import jsonschema

from conformance import embedded
from reference.settings import ReferenceSettings
from reports import results_schema
from tests.conftest import SuiteRun


def test_clean_reference_passes_every_check(clean_run: SuiteRun) -> None:
    not_passed = {k: v for k, v in clean_run.check_outcomes().items() if v != "passed"}
    assert clean_run.exit_code == 0, clean_run.stdout[-3000:]
    assert not not_passed


def test_every_profile_is_conformant(clean_run: SuiteRun) -> None:
    profiles = clean_run.results["profiles"]
    assert profiles and all(p["conformant"] and p["complete"] for p in profiles)


def test_results_validate_against_the_shipped_schema(clean_run: SuiteRun) -> None:
    jsonschema.validate(clean_run.results, results_schema())


def test_at_least_45_requirements_are_proven(clean_run: SuiteRun) -> None:
    passed = {r for r, o in clean_run.requirement_outcomes().items() if o == "passed"}
    assert len(passed) >= 45


def test_summary_and_terminal_table_are_written(clean_run: SuiteRun) -> None:
    summary = (clean_run.report_dir / "summary.md").read_text()
    assert "mcp-2025-11-25: conformant" in summary
    assert "MCP authorization conformance" in clean_run.stdout
    assert "CONFORMANT" in clean_run.stdout


def test_reports_keep_no_secret_in_the_clear(clean_run: SuiteRun) -> None:
    """Passwords, codes, client secrets and replayable tokens are redacted in the evidence."""
    text = (clean_run.report_dir / "results.json").read_text()
    assert "alice-password" not in text and "bob-password" not in text
    second_hop_secrets = [
        ReferenceSettings.mcp_client_secret,  # the MCP server's exchange client
        ReferenceSettings.audit_token,
        *(c.client_secret for c in embedded.SUITE_CLIENTS),  # at the IdP and the resource AS
    ]
    for secret in second_hop_secrets:
        assert secret and secret not in text, secret
    signed_jwts = re.findall(r"eyJ[\w-]+\.eyJ[\w-]*\.[\w-]+", text)
    assert not signed_jwts  # JWTs keep header and claims, never the signature
    assert not re.findall(r"[?&#]code=(?!%3Credacted)[\w-]{8,}", text)
    assert not re.findall(r'"client_secret": "(?!<redacted)', text)
    for check in clean_run.results["checks"]:
        for exchange in check["evidence"]:
            for name, value in exchange["request_headers"].items():
                if name.lower() == "authorization":
                    assert "<redacted" in value, value
