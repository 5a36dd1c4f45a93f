"""The per-profile table printed at the end of a run.

Each profile's verdict is its certificate's (`reports.certificate.verdict`). On the terminal
its line is coloured by it (following pytest's `--color` and `NO_COLOR`): conformant green,
not conformant red, incomplete yellow; yellow too when every failure is expected by the
baseline. `-q` keeps the section with the table, which is the result, and the lines that
qualify it, but not where the reports went; `-qq` prints one line per profile, its name and
verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from conformance.baseline import baseline_lines
from reports.certificate import VERDICT_WORDS, verdict

_COLUMNS = ("passed", "failed", "warning", "skipped", "error", "not_run")
TITLE = "MCP authorization conformance"


class TerminalReporter(Protocol):
    """What this module uses of pytest's terminal reporter."""

    @property
    def verbosity(self) -> int: ...

    def section(self, title: str, sep: str = "=", **markup: bool) -> None: ...

    def write_line(self, line: str, **markup: bool) -> None: ...


def colour(profile: dict[str, Any]) -> str:
    """green, red or yellow: see the module's docstring."""
    judged = verdict(profile)
    if judged == "conformant":
        return "green"
    if judged == "not_conformant" and not profile.get("accepted"):
        return "red"
    return "yellow"


def _rows(results: dict[str, Any]) -> tuple[str, list[tuple[str, str, str]]]:
    """The header, and per profile its name and verdict (padded), its counts and colour."""
    width = max([len("profile")] + [len(p["name"]) for p in results["profiles"]])
    header = f"{'profile':<{width}}  {'verdict':<15}" + "".join(f"{c:>9}" for c in _COLUMNS)
    rows = [
        (
            f"{p['name']:<{width}}  {VERDICT_WORDS[verdict(p)]:<15}",
            "".join(f"{p['counts'][c]:>9}" for c in _COLUMNS),
            colour(p),
        )
        for p in results["profiles"]
    ]
    return header, rows


def _notes(results: dict[str, Any]) -> list[str]:
    run = results["run"]
    if not run["complete"]:
        return [f"INCOMPLETE RUN ({run['note']}): no profile is certified"]
    return [f"note: {run['note']}"] if run["note"] else []


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The table and what follows it, as plain text (summary.md shows it too)."""
    header, rows = _rows(results)
    table = [header, "-" * len(header), *(profile + counts for profile, counts, _ in rows)]
    return table + _notes(results) + baseline_lines(results)


def write_summary(
    reporter: TerminalReporter, results: dict[str, Any], report_dir: Path | None
) -> None:
    """The table on pytest's terminal, coloured, as verbose as pytest was asked to be."""
    header, rows = _rows(results)
    if reporter.verbosity <= -2:
        for profile, _, colour_name in rows:
            reporter.write_line(profile.rstrip(), **{colour_name: True})
        return
    reporter.section(TITLE)
    reporter.write_line(header)
    reporter.write_line("-" * len(header))
    for profile, counts, colour_name in rows:
        reporter.write_line(profile + counts, **{colour_name: True})
    incomplete = not results["run"]["complete"]
    for line in _notes(results):
        reporter.write_line(line, yellow=incomplete)
    for line in baseline_lines(results):
        reporter.write_line(line)
    if reporter.verbosity >= 0 and report_dir is not None:
        reporter.write_line(f"reports written to {report_dir}/")
