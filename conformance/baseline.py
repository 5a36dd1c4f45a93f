"""Expected failures (`--baseline FILE`): known non-conformances that do not fail the run.

The baseline is TOML, one `[[expected]]` table per known problem, naming a check (its ID as
in results.json; without `[...]` it names every parametrization of the function) or a
requirement, and why it is expected:

    [[expected]]
    check = "first_hop/test_token_endpoint.py::test_code_is_single_use"
    reason = "known: VENDOR-123, fix in 2.4"

A listed check that ends failed, error or warning keeps its outcome and gets
`expected_failure`; a profile whose every failure is listed stays not conformant but is
`accepted`, and the run exits 0. A listed check that passes now is stale and fails the run,
so a baseline cannot outlive the problems it lists. A listed check that was deselected,
skipped or not reached is neither.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.catalogue import load_catalogue
from conformance.errors import ConfigError
from conformance.records import CHECKS_DIR

_ENTRY_KEYS = {"check", "requirement", "reason"}
_NOT_PASSING = ("failed", "error", "warning")
# A requirement status that keeps it from passing (a tolerated variant warns, or fails under a
# strict profile).
_FAILING_STATUSES = ("violated", "error", "tolerated")


@dataclass(frozen=True)
class Expected:
    reason: str
    check: str | None = None
    requirement: str | None = None

    @property
    def name(self) -> str:
        return self.check or self.requirement or ""

    def names_check(self, check_id: str) -> bool:
        """A check entry names its check, or every parametrization of a bare function."""
        return self.check is not None and (
            check_id == self.check or check_id.startswith(f"{self.check}[")
        )


@dataclass(frozen=True)
class Baseline:
    file: str
    sha256: str  # of the file's bytes, so a certificate names exactly the baseline applied
    entries: tuple[Expected, ...]


def known_check_functions() -> set[str]:
    """`path::function` of every bundled check, read from the sources (nothing imported)."""
    found = set()
    for path in sorted(CHECKS_DIR.rglob("test_*.py")):
        relative = path.relative_to(CHECKS_DIR).as_posix()
        for node in ast.parse(path.read_text("utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                found.add(f"{relative}::{node.name}")
    return found


def _unknown(what: str, name: str, known: Iterable[str], source: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return ConfigError(f"--baseline {source}: unknown {what} {name!r}{hint}")


def _entry(data: object, index: int, source: str) -> Expected:
    where = f"--baseline {source}: [[expected]] entry {index}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} is not a table")
    if unknown := sorted(set(data) - _ENTRY_KEYS):
        raise ConfigError(
            f"{where} has unknown key {unknown[0]!r}; valid: check, reason, requirement"
        )
    named = [key for key in ("check", "requirement") if key in data]
    if len(named) != 1:
        raise ConfigError(f"{where} must name exactly one of check or requirement")
    name = data[named[0]]
    reason = data.get("reason")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: {named[0]} must be a non-empty string")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"{where} ({named[0]} = {name!r}) has no reason; say why it is expected")
    return Expected(reason.strip(), **{named[0]: name})


def parse_baseline(data: dict[str, Any], source: str, digest: str = "") -> Baseline:
    if unknown := sorted(set(data) - {"expected"}):
        raise ConfigError(f"--baseline {source}: unknown key {unknown[0]!r}; valid: expected")
    tables = data.get("expected", [])
    if not isinstance(tables, list):
        raise ConfigError(f"--baseline {source}: write each entry as an [[expected]] table")
    entries = tuple(_entry(table, i, source) for i, table in enumerate(tables, 1))
    catalogue = load_catalogue()
    functions = known_check_functions()
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ConfigError(f"--baseline {source}: {entry.name!r} is listed twice")
        seen.add(entry.name)
        if entry.requirement is not None and entry.requirement not in catalogue:
            raise _unknown("requirement", entry.requirement, catalogue, source)
        if entry.check is not None and entry.check.split("[", 1)[0] not in functions:
            raise _unknown("check", entry.check, functions, source)
    return Baseline(source, digest, entries)


def load_baseline(path: str | Path) -> Baseline:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--baseline {path}: no such file")
    raw = file.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--baseline {path}: not valid TOML ({exc})") from None
    return parse_baseline(data, str(path), hashlib.sha256(raw).hexdigest())


def check_parametrizations(baseline: Baseline, collected: Iterable[str]) -> None:
    """An entry naming one parametrization (`...::test_x[case]`) must name a collected one;
    the function itself was checked when the baseline was loaded."""
    ids = set(collected)
    for entry in baseline.entries:
        if entry.check and "[" in entry.check and entry.check not in ids:
            base = entry.check.split("[", 1)[0]
            raise _unknown(
                "check", entry.check, [i for i in ids if i.startswith(base)], baseline.file
            )


def _responsible(records: list[dict[str, Any]], rid: str) -> list[dict[str, Any]]:
    """The checks that keep requirement `rid` from passing."""
    return [r for r in records if r["statuses"].get(rid) in _FAILING_STATUSES]


def _requirement_outcome(status: str) -> str:
    if status in _FAILING_STATUSES:
        return "failed"
    return "passed" if status == "satisfied" else "skipped"


def _state(entry: Expected, records: list[dict[str, Any]]) -> str:
    """`expected` (it names a check that did not pass), `stale` (what it names passes now) or
    `not_run` (deselected, skipped or not reached: neither)."""
    if entry.check is not None:
        outcomes = {r["outcome"] for r in records if entry.names_check(r["id"])}
    else:
        rid = entry.requirement or ""
        outcomes = {
            _requirement_outcome(r["statuses"][rid]) for r in records if rid in r["statuses"]
        }
    if outcomes & set(_NOT_PASSING):
        return "expected"
    return "stale" if "passed" in outcomes else "not_run"


class _Coverage:
    """Which checks and requirements a baseline's entries name."""

    def __init__(self, baseline: Baseline, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.by_check = [e for e in baseline.entries if e.check is not None]
        self.by_requirement = {e.requirement: e for e in baseline.entries if e.requirement}

    def expecting(self, record: dict[str, Any]) -> list[Expected]:
        """The entries that expect this check not to pass: its own, or else entries for
        every requirement it did not satisfy."""
        listed = [e for e in self.by_check if e.names_check(record["id"])]
        failing = [rid for rid, s in record["statuses"].items() if s in _FAILING_STATUSES]
        if not listed and failing and all(rid in self.by_requirement for rid in failing):
            listed = [self.by_requirement[rid] for rid in failing]
        return listed

    def covers(self, rid: str) -> bool:
        """The requirement is listed, or every check that kept it from passing is."""
        responsible = _responsible(self.records, rid)
        return rid in self.by_requirement or (
            bool(responsible)
            and all(any(e.names_check(r["id"]) for e in self.by_check) for r in responsible)
        )


def apply_baseline(results: dict[str, Any], baseline: Baseline) -> None:
    """Mark expected failures, accepted profiles and stale entries in `results` (in place)."""
    records = results["checks"]
    coverage = _Coverage(baseline, records)
    for record in records:
        expecting = coverage.expecting(record) if record["outcome"] in _NOT_PASSING else []
        if expecting:
            record["expected_failure"] = {"reason": "; ".join(e.reason for e in expecting)}
    for profile in results["profiles"]:
        problems = [r["id"] for r in profile["requirements"] if r["outcome"] in _NOT_PASSING]
        blocking = [r["id"] for r in profile["requirements"] if r["outcome"] in ("failed", "error")]
        profile["accepted"] = (
            not profile["conformant"]
            and results["run"]["complete"]
            and profile["counts"]["not_run"] == 0
            and all(coverage.covers(rid) for rid in blocking)
        )
        profile["baselined"] = sorted(
            {
                r["id"]
                for rid in problems
                if coverage.covers(rid)
                for r in _responsible(records, rid)
            }
        )
    states = [(entry, _state(entry, records)) for entry in baseline.entries]
    results["baseline"] = {
        "file": baseline.file,
        "sha256": baseline.sha256,
        "entries": [
            {
                ("check" if entry.check is not None else "requirement"): entry.name,
                "reason": entry.reason,
                "state": state,
            }
            for entry, state in states
        ],
        "stale": [entry.name for entry, state in states if state == "stale"],
    }


def expected_reason(baseline: Baseline, record: dict[str, Any]) -> str | None:
    """Why the baseline expects this finished check not to pass, or None."""
    if record["outcome"] not in _NOT_PASSING:
        return None
    expecting = _Coverage(baseline, [record]).expecting(record)
    return "; ".join(e.reason for e in expecting) if expecting else None


def stale_entry(baseline: Baseline, record: dict[str, Any]) -> Expected | None:
    """The entry naming exactly this check, when the check passed: stale already, whatever
    else the run finds (an entry for a bare function is judged over all its cases at the end)."""
    if record["outcome"] != "passed":
        return None
    return next((e for e in baseline.entries if e.check == record["id"]), None)


def run_succeeded(results: dict[str, Any]) -> bool:
    """Every selected profile is conformant or accepted, and no baseline entry is stale."""
    baseline = results.get("baseline")
    if baseline and baseline["stale"]:
        return False
    return all(p["conformant"] or p.get("accepted", False) for p in results["profiles"])


def baseline_lines(results: dict[str, Any]) -> list[str]:
    """What the baseline did, for the terminal and summary.md."""
    baseline = results.get("baseline")
    if not baseline:
        return []
    from reports.certificate import VERDICT_WORDS, verdict  # reports imports this module

    expected = [c["id"] for c in results["checks"] if "expected_failure" in c]
    lines = [f"baseline {baseline['file']}: {len(expected)} expected failure(s)"]
    for profile in results["profiles"]:
        if profile.get("accepted"):
            words = VERDICT_WORDS[verdict(profile)].lower()
            lines.append(f"  {profile['name']}: {words}, every failure is expected by the baseline")
    for name in baseline["stale"]:
        lines.append(f"STALE baseline entry {name}: it passes now; remove it from the baseline")
    return lines
