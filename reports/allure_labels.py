"""Allure results (allure-pytest's `--alluredir`): each check labelled with what it certifies.

epic: each selected profile that certifies one of its requirements; feature: its area (the
folder of the check: first_hop, dpop, ...); story: each requirement ID; links: the spec
sections; severity: from its level (MUST critical, SHOULD normal, MAY minor); label `outcome`:
the five-way verdict (a warning is passed in allure's terms, tagged `warning`, never broken);
one JSON attachment with the check's HTTP evidence, already redacted. Everything goes through
allure's public dynamic API while the check's result is still open (its `makereport`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import allure
import pytest

from conformance.catalogue import load_catalogue
from conformance.settings import RunSettings
from profiles import Profile
from reports.junit_properties import covering_profiles

SEVERITY = {
    "MUST": allure.severity_level.CRITICAL,
    "SHOULD": allure.severity_level.NORMAL,
    "MAY": allure.severity_level.MINOR,
}
EVIDENCE_BUDGET = 256_000  # characters of JSON per check; results.json keeps everything
ALLURE_LISTENER = "allure_listener"  # the name allure-pytest registers its listener under


def allure_active(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin(ALLURE_LISTENER)


def default_allure_dir(config: pytest.Config, settings: RunSettings) -> None:
    """With `--report-dir` and no `--alluredir`, write DIR/allure-results. allure-pytest reads
    the option in its own `pytest_configure`, which runs after the suite's (tryfirst)."""
    if settings.report_dir is None or getattr(config.option, "allure_report_dir", "") is not None:
        return
    if settings.report_formats and "allure" not in settings.report_formats:
        return
    config.option.allure_report_dir = str(settings.report_dir / "allure-results")


def area(check_id: str) -> str:
    """The folder of the check inside the bundled checks (`first_hop`, `dpop`, ...)."""
    path = check_id.split("::", 1)[0]
    return path.split("/", 1)[0] if "/" in path else "checks"


def evidence_attachment(evidence: list[dict[str, Any]]) -> str:
    """The exchanges as JSON, as many as fit the budget; the rest are counted, not shown."""
    kept: list[dict[str, Any]] = []
    size = 2
    for exchange in evidence:
        size += len(json.dumps(exchange)) + 2
        if size > EVIDENCE_BUDGET:
            break
        kept.append(exchange)
    left_out = len(evidence) - len(kept)
    shown: list[Any] = list(kept)
    if left_out:
        shown.append({"omitted": f"{left_out} more exchanges; results.json has them all"})
    return json.dumps(shown, indent=1)


def _description(record: dict[str, Any]) -> str:
    lines = [record["title"], "", f"Outcome: **{record['outcome']}** ({record['level']})"]
    if record["reason"]:
        lines += ["", record["reason"]]
    return "\n".join(lines)


def label_check(record: dict[str, Any], profiles: Iterable[Profile]) -> None:
    """Label the running check's allure result from its record (already redacted)."""
    catalogue = load_catalogue()
    allure.dynamic.epic(*covering_profiles(record["requirements"], profiles))
    allure.dynamic.feature(area(record["id"]))
    allure.dynamic.story(*record["requirements"])
    allure.dynamic.severity(SEVERITY[record["level"]])
    allure.dynamic.label("outcome", record["outcome"])
    if record["outcome"] == "warning":
        allure.dynamic.tag("warning")
    for rid in record["requirements"]:
        for ref in catalogue[rid].refs:
            allure.dynamic.link(ref.url, name=f"{rid}: {ref.spec} §{ref.section}")
    allure.dynamic.description(_description(record))
    if record["evidence"]:
        allure.attach(
            evidence_attachment(record["evidence"]),
            name="HTTP evidence (redacted)",
            attachment_type=allure.attachment_type.JSON,
        )
