"""Reports of a certification run: results.json is the source, the other formats derive from it.

A requirement's outcome combines every check that proves it (the worst observation wins) and
takes its level from the profile being certified, so one run yields a verdict per profile.
A profile is conformant when none of its requirements failed or could not be judged, and every
one of them was exercised (its verdict: `reports.certificate.verdict`). A run that was
interrupted (Ctrl-C) or stopped early (`-x`) still writes its reports: they say so, list the
checks it did not reach as `not_run`, and certify no profile.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import jsonschema

from conformance.catalogue import load_catalogue
from conformance.settings import RunSettings
from conformance.verdict import Status, outcome_for, worst_status

OUTCOMES = ("passed", "failed", "warning", "skipped", "error", "not_run")


def results_schema() -> dict[str, Any]:
    text = resources.files("reports.schemas").joinpath("results.schema.json").read_text("utf-8")
    return json.loads(text)


def _suite_version() -> str:
    try:
        return metadata.version("mcp-auth-conformance")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def requirement_status(records: list[dict[str, Any]], rid: str) -> Status | None:
    statuses = [Status(r["statuses"][rid]) for r in records if rid in r["statuses"]]
    return worst_status(statuses) if statuses else None


def run_status(
    records: list[dict[str, Any]], collected: int | None = None, stopped: str = ""
) -> dict[str, Any]:
    """Whether the run reached every check it collected; `stopped` says why it did not."""
    ran = sum(1 for r in records if r["outcome"] != "not_run")
    collected = max(collected or 0, len(records), ran)
    complete = not stopped and ran == collected
    note = "" if complete else f"{stopped or 'incomplete'}: {ran} of {collected} checks ran"
    return {
        "complete": complete,
        "interrupted": "interrupted" in stopped,
        "checks_collected": collected,
        "checks_run": ran,
        "note": note,
    }


def build_results(
    records: list[dict[str, Any]],
    settings: RunSettings,
    run: dict[str, Any] | None = None,
    target: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`target`: the facts the checks' processes reported for the certificates
    (reports.certificate.target_facts); without them a certificate names `settings.target`."""
    from conformance.baseline import apply_baseline
    from profiles import load_profiles
    from reports.certificate import add_certificates

    run = run or run_status(records)

    catalogue = load_catalogue()
    records = sorted(records, key=lambda r: r["id"])
    by_requirement: dict[str, list[str]] = {}
    for record in records:
        for rid in record["requirements"]:
            by_requirement.setdefault(rid, []).append(record["id"])
    profiles = []
    for name in settings.profiles:
        profile = load_profiles()[name]
        rows = []
        for rid in profile.requirements:
            status = requirement_status(records, rid)
            level = profile.level_of(rid)
            outcome = (
                "not_run" if status is None else outcome_for(status, level, profile.strict).value
            )
            rows.append(
                {
                    "id": rid,
                    "level": level,
                    "outcome": outcome,
                    "checks": by_requirement.get(rid, []),
                }
            )
        counts = {o: sum(1 for row in rows if row["outcome"] == o) for o in OUTCOMES}
        profiles.append(
            {
                "name": profile.name,
                "title": profile.title,
                "conformant": run["complete"]
                and counts["failed"] == 0
                and counts["error"] == 0
                and counts["not_run"] == 0,
                "complete": counts["not_run"] == 0,
                "counts": counts,
                "requirements": rows,
            }
        )
    requirements = []
    for rid, requirement in catalogue.items():
        status = requirement_status(records, rid)
        reasons = [
            f["message"]
            for r in records
            for f in r["findings"]
            if f["requirement"] == rid and (not f["satisfied"] or f.get("tolerated"))
        ]
        requirements.append(
            {
                "id": rid,
                "level": requirement.level,
                "component": requirement.component,
                "title": requirement.title,
                "summary": requirement.summary,
                "note": requirement.note,
                "versions": list(requirement.versions),
                "refs": [
                    {"spec": r.spec, "section": r.section, "url": r.url} for r in requirement.refs
                ],
                "outcome": "not_run"
                if status is None
                else outcome_for(status, requirement.level).value,
                "reasons": reasons,
            }
        )
    results = {
        "schema_version": 1,
        "suite": {"name": "mcp-auth-conformance", "version": _suite_version()},
        "target": {
            "url": settings.target,
            "embedded": settings.embedded,
            "defects": sorted(settings.defects),
        },
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": run,
        "profiles": profiles,
        "requirements": requirements,
        "checks": records,
    }
    if settings.baseline is not None:
        apply_baseline(results, settings.baseline)
    add_certificates(results, target)
    jsonschema.validate(results, results_schema())
    return results


# The formats written from results.json, by the name `--report-format` takes, with their file.
REPORT_FORMATS = {"json": "results.json", "markdown": "summary.md", "html": "report.html"}
# Written during the run by pytest's junitxml and allure-pytest, which the suite points into
# the report directory unless `--junitxml` / `--alluredir` say otherwise.
REPORT_FORMATS |= {"junit": "junit.xml", "allure": "allure-results"}


def write_reports(
    results: dict[str, Any], directory: Path, formats: tuple[str, ...] = tuple(REPORT_FORMATS)
) -> None:
    """Write each of `formats` (default: all) into `directory`; results.json is always written."""
    from reports.markdown import render_summary

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results, indent=1) + "\n", "utf-8")
    if "markdown" in formats:
        (directory / "summary.md").write_text(render_summary(results), "utf-8")
    if "html" in formats:
        from reports.html import render_html

        (directory / "report.html").write_text(render_html(results), "utf-8")
