"""The per-profile table printed at the end of a run."""

from __future__ import annotations

from typing import Any

_COLUMNS = ("passed", "failed", "warning", "skipped", "error", "not_run")


def summary_lines(results: dict[str, Any]) -> list[str]:
    width = max([len("profile")] + [len(p["name"]) for p in results["profiles"]])
    header = f"{'profile':<{width}}  {'verdict':<15}" + "".join(f"{c:>9}" for c in _COLUMNS)
    lines = [header, "-" * len(header)]
    for profile in results["profiles"]:
        verdict = "CONFORMANT" if profile["conformant"] else "NOT CONFORMANT"
        counts = "".join(f"{profile['counts'][c]:>9}" for c in _COLUMNS)
        lines.append(f"{profile['name']:<{width}}  {verdict:<15}{counts}")
    if not results["run"]["complete"]:
        lines.append(f"INCOMPLETE RUN ({results['run']['note']}): no profile is certified")
    return lines
