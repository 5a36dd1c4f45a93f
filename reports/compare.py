"""Compare two certification runs: what broke, what was fixed, which verdicts changed.

    python -m reports.compare OLD/results.json NEW/results.json [--json]
    mcp-conformance-compare OLD/results.json NEW/results.json [--json]

Exit status 1 when the new run has new failures (a check failed or errored where it had
passed, warned or been skipped), else 0; 2 when an input is not a valid results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema

from reports import results_schema
from reports.certificate import verdict

BROKEN = ("failed", "error")
JUDGED_FINE = ("passed", "warning", "skipped")


class InputError(Exception):
    """An input file that is not a results.json; the message names the file and the problem."""


def profile_verdict(profile: dict[str, Any]) -> str:
    """The certificate's verdict, or the same verdict derived for results written before
    certificates existed."""
    if "certificate" in profile:
        return str(profile["certificate"]["verdict"])
    return verdict(profile)


def _change(check_id: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {"id": check_id, "old": old["outcome"], "new": new["outcome"], "reason": new["reason"]}


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The differences from `old` to `new` (two results.json documents)."""
    old_checks = {c["id"]: c for c in old["checks"]}
    new_checks = {c["id"]: c for c in new["checks"]}
    new_failures, fixed, changed = [], [], []
    for check_id in sorted(old_checks.keys() & new_checks.keys()):
        before, after = old_checks[check_id], new_checks[check_id]
        if before["outcome"] == after["outcome"]:
            continue
        change = _change(check_id, before, after)
        if after["outcome"] in BROKEN and before["outcome"] in JUDGED_FINE:
            new_failures.append(change)
        elif before["outcome"] in BROKEN and after["outcome"] == "passed":
            fixed.append(change)
        else:
            changed.append(change)
    old_profiles = {p["name"]: profile_verdict(p) for p in old["profiles"]}
    new_profiles = {p["name"]: profile_verdict(p) for p in new["profiles"]}
    verdicts = [
        {"profile": name, "old": old_profiles.get(name), "new": new_profiles.get(name)}
        for name in sorted(old_profiles.keys() | new_profiles.keys())
        if old_profiles.get(name) != new_profiles.get(name)
    ]
    return {
        "old": _describe(old),
        "new": _describe(new),
        "new_failures": new_failures,
        "fixed": fixed,
        "changed": changed,
        "added": [
            {"id": i, "outcome": new_checks[i]["outcome"]}
            for i in sorted(new_checks.keys() - old_checks.keys())
        ],
        "removed": [
            {"id": i, "outcome": old_checks[i]["outcome"]}
            for i in sorted(old_checks.keys() - new_checks.keys())
        ],
        "verdicts": verdicts,
    }


def _describe(results: dict[str, Any]) -> dict[str, Any]:
    """Which run: the URL certified (a certificate's, which is the real URL also for the
    embedded reference), when, by which suite version."""
    certified = next(
        (p["certificate"]["target"] for p in results["profiles"] if "certificate" in p), None
    )
    return {
        "target": certified["url"] if certified else results["target"]["url"],
        "generated_at": results["generated_at"],
        "suite_version": results["suite"]["version"],
    }


def render(diff: dict[str, Any]) -> str:
    """The comparison for a reader."""
    old, new = diff["old"], diff["new"]
    lines = [
        f"old: {old['target']} at {old['generated_at']} (suite {old['suite_version']})",
        f"new: {new['target']} at {new['generated_at']} (suite {new['suite_version']})",
    ]
    if diff["verdicts"]:
        lines += ["", "profile verdicts:"]
        lines += [
            f"  {v['profile']}: {v['old'] or 'absent'} -> {v['new'] or 'absent'}"
            for v in diff["verdicts"]
        ]
    for key, title in (
        ("new_failures", "new failures"),
        ("fixed", "fixed"),
        ("changed", "changed"),
    ):
        if diff[key]:
            lines += ["", f"{title} ({len(diff[key])}):"]
            for change in diff[key]:
                why = f": {change['reason']}" if change["reason"] and key != "fixed" else ""
                lines.append(f"  {change['id']}: {change['old']} -> {change['new']}{why}")
    for key in ("added", "removed"):
        if diff[key]:
            lines += ["", f"checks {key} ({len(diff[key])}):"]
            lines += [f"  {c['id']} ({c['outcome']})" for c in diff[key]]
    count = len(diff["new_failures"])
    lines += ["", f"{count} new failure(s)" if count else "no new failures"]
    return "\n".join(lines)


def load_results(path: str) -> dict[str, Any]:
    """A results.json, validated against the schema; InputError says what is wrong."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file")
    try:
        data = json.loads(file.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise InputError(f"{path}: not a results.json (no schema_version)")
    try:
        jsonschema.validate(data, results_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise InputError(
            f"{path}: not a valid results.json (at {where}: {exc.message[:200]})"
        ) from None
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mcp-conformance-compare",
        description="Compare two results.json files; exit 1 when the new run has new failures.",
    )
    parser.add_argument("old", help="results.json of the earlier run")
    parser.add_argument("new", help="results.json of the later run")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = parser.parse_args(argv)
    try:
        old, new = load_results(args.old), load_results(args.new)
    except InputError as exc:
        print(f"mcp-conformance-compare: {exc}", file=sys.stderr)
        return 2
    diff = compare(old, new)
    print(json.dumps(diff, indent=1) if args.json else render(diff))
    return 1 if diff["new_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
