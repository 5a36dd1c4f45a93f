"""summary.md: the per-profile verdicts and every requirement that did not pass."""

from __future__ import annotations

from typing import Any

from conformance.fuzz.runner import REPRODUCER
from reports.certificate import VERDICT_WORDS, verdict
from reports.terminal import summary_lines


def render_summary(results: dict[str, Any]) -> str:
    target = results["target"]
    lines = [
        "# MCP authorization conformance",
        "",
        f"- Target: `{target['url']}`" + (" (embedded reference)" if target["embedded"] else ""),
    ]
    if not results["run"]["complete"]:
        lines.append(f"- **Incomplete run** ({results['run']['note']}): no profile is certified")
    if target["defects"]:
        lines.append(f"- Defects switched on: {', '.join(f'`{d}`' for d in target['defects'])}")
    lines += [
        f"- Suite: {results['suite']['name']} {results['suite']['version']}",
        f"- Generated: {results['generated_at']}",
        "",
        "```",
        *summary_lines(results),
        "```",
        "",
    ]
    requirements = {r["id"]: r for r in results["requirements"]}
    checks = {c["id"]: c for c in results["checks"]}
    for profile in results["profiles"]:
        judged = verdict(profile)
        words = VERDICT_WORDS[judged].lower()
        heading = words if judged == "conformant" else f"**{words}**"
        if profile.get("accepted"):
            heading += " (every failure is expected by the baseline)"
        lines += [f"## {profile['name']}: {heading}", "", profile["title"], ""]
        problems = [row for row in profile["requirements"] if row["outcome"] != "passed"]
        if not problems:
            lines += ["Every requirement passed.", ""]
            continue
        lines += ["| requirement | level | outcome | spec | why |", "|---|---|---|---|---|"]
        for row in problems:
            requirement = requirements[row["id"]]
            ref = requirement["refs"][0]
            why = "; ".join(
                _why(checks[c]) for c in row["checks"] if checks[c]["outcome"] != "passed"
            ) or ("no check ran" if row["outcome"] == "not_run" else "")
            why = why.replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {row['id']} | {row['level']} | {row['outcome']} | "
                f"[{ref['spec']} §{ref['section']}]({ref['url']}) | {why} |"
            )
        lines.append("")
    lines += _reproducers(results["checks"])
    return "\n".join(lines)


def _why(check: dict[str, Any]) -> str:
    expected = check.get("expected_failure")
    return f"expected ({expected['reason']}): {check['reason']}" if expected else check["reason"]


def _reproducers(checks: list[dict[str, Any]]) -> list[str]:
    """Each failed fuzz check's shrunk example: the exact request it sent (redacted) and the
    answer, as the evidence marked "minimal reproducer" keeps them."""
    found = [
        (check, exchange)
        for check in checks
        if check["outcome"] != "passed"
        for exchange in check["evidence"]
        if str(exchange.get("note", "")).startswith(REPRODUCER)
    ]
    if not found:
        return []
    lines = ["## Minimal reproducers", ""]
    for check, exchange in found:
        headers = [f"{name}: {value}" for name, value in exchange["request_headers"].items()]
        lines += [f"### {check['id']}", "", exchange["note"], "", "~~~http"]
        lines += [f"{exchange['method']} {exchange['url']}", *headers, ""]
        lines += [exchange["request_body"] or "", "~~~", ""]
        lines += [f"Answer: {exchange['error'] or exchange['status']}", ""]
        if exchange.get("response_body"):
            lines += ["~~~", exchange["response_body"][:2000], "~~~", ""]
    return lines
