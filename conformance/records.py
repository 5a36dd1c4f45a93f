"""Turning one pytest test run into one check record (outcome, per-requirement status, evidence).

A record is plain JSON, kept on the check's final report as the attribute `RECORD_ATTR`: pytest
serializes a report's attributes across xdist's worker boundary, while `user_properties` (which
JUnit XML writes out) carry only the short properties of reports.junit_properties.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance.errors import HarnessError
from conformance.verdict import (
    Outcome,
    Status,
    Verdict,
    catalogue_level,
    outcome_for,
    worst_outcome,
)

CHECKS_DIR = Path(__file__).parent / "checks"
RECORD_ATTR = "conformance_record"
# The facts of the target a process certified (reports.certificate.target_facts), sent once
# per process with a check's final report.
TARGET_ATTR = "conformance_target"


def check_id(item: pytest.Item) -> str:
    """A stable ID: the check's path inside the bundled checks, then its name."""
    path = Path(str(item.path))
    try:
        relative = path.relative_to(CHECKS_DIR).as_posix()
    except ValueError:
        relative = path.name
    return f"{relative}::{item.name}"


def declared_requirements(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for marker in item.iter_markers("requirement"):
        ids.extend(str(a) for a in marker.args)
    return tuple(dict.fromkeys(ids))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, HarnessError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _skip_reason(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    return str(getattr(excinfo.value, "msg", "") or excinfo.value) or "skipped"


def build_record(
    item: pytest.Item,
    when: str,
    excinfo: pytest.ExceptionInfo[BaseException] | None,
    verdict: Verdict | None,
) -> dict[str, Any]:
    requirements = declared_requirements(item)
    statuses: dict[str, Status]
    reason = ""
    messages: list[str] = []
    if verdict is not None:
        messages = [f"{f.requirement}: {f.message}" for f in verdict.failures()]
    violated = verdict.statuses() if verdict is not None else {}
    if excinfo is not None and excinfo.errisinstance(pytest.skip.Exception):
        statuses = dict.fromkeys(requirements, Status.SKIPPED)
        reason = _skip_reason(excinfo)
    elif excinfo is not None:
        # The check could not finish: what it already proved violated stays violated,
        # everything else is an error of the harness or a lost precondition.
        phase = "setup" if when == "setup" else "check"
        reason = f"{phase} could not complete: {_one_line(excinfo.value)}"
        statuses = {
            rid: Status.VIOLATED if violated.get(rid) is Status.VIOLATED else Status.ERROR
            for rid in requirements
        }
    else:
        statuses = violated or dict.fromkeys(requirements, Status.SATISFIED)
    outcome = worst_outcome([outcome_for(s, catalogue_level(r)) for r, s in statuses.items()])
    if not reason and messages:
        reason = "; ".join(messages)
    levels = [catalogue_level(r) for r in requirements]
    return {
        "id": check_id(item),
        "nodeid": item.nodeid,
        "title": (item.function.__doc__ or "").strip().splitlines()[0]  # type: ignore[attr-defined]
        if getattr(item, "function", None) is not None and item.function.__doc__  # type: ignore[attr-defined]
        else item.name,
        "requirements": list(requirements),
        "statuses": {r: s.value for r, s in statuses.items()},
        "level": "MUST" if "MUST" in levels else ("SHOULD" if "SHOULD" in levels else "MAY"),
        "outcome": outcome.value,
        "reason": reason,
        "findings": [
            {
                "requirement": f.requirement,
                "satisfied": f.satisfied,
                "tolerated": f.tolerated,
                "message": f.message,
            }
            for f in (verdict.findings if verdict else [])
        ],
        "notes": list(verdict.notes) if verdict else [],
        "evidence": [e.to_json() for e in verdict.evidence] if verdict else [],
    }


def failure_text(record: dict[str, Any]) -> str:
    lines = [f"{record['outcome'].upper()}: {record['id']}"]
    for finding in record["findings"]:
        if not finding["satisfied"] or finding.get("tolerated"):
            level = catalogue_level(finding["requirement"])
            variant = ", tolerated variant" if finding.get("tolerated") else ""
            lines.append(f"  {finding['requirement']} ({level}{variant}): {finding['message']}")
    if record["reason"] and record["outcome"] == Outcome.ERROR:
        lines.append(f"  {record['reason']}")
    shown = record["evidence"][-6:]
    if shown:
        lines.append("  evidence (last exchanges, redacted):")
        lines.extend(f"    {e['method']} {e['url']} -> {e['error'] or e['status']}" for e in shown)
    return "\n".join(lines)
