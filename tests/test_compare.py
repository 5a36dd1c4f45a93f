"""`python -m reports.compare OLD NEW` (issue 6): what broke, what was fixed, which verdicts
changed, from two results.json files.

The old run is the session's clean run of the whole suite; the new one is a copy of it with
one check failed, one warning, one removed, one added and a profile's verdict changed.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reports import results_schema
from reports.compare import compare, main
from tests.conftest import REPO_ROOT, SuiteRun

BROKEN = "first_hop/test_token_endpoint.py::test_code_is_single_use"
WARNS = "first_hop/test_token_endpoint.py::test_code_replay_revokes_issued_tokens"
REMOVED = "first_hop/test_token_endpoint.py::test_unknown_code_is_invalid_grant"
ADDED = "first_hop/test_token_endpoint.py::test_a_check_added_since"
PROFILE = "oauth-2.1-as"


def _check(results: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(c for c in results["checks"] if c["id"] == check_id)


@pytest.fixture(scope="module")
def old(clean_run: SuiteRun) -> dict[str, Any]:
    return clean_run.results


@pytest.fixture(scope="module")
def new(old: dict[str, Any]) -> dict[str, Any]:
    results = copy.deepcopy(old)
    _check(results, BROKEN).update(outcome="failed", reason="replayed code accepted")
    _check(results, WARNS).update(outcome="warning", reason="tokens survive the replay")
    results["checks"] = [c for c in results["checks"] if c["id"] != REMOVED]
    results["checks"].append({**_check(old, REMOVED), "id": ADDED})
    profile = next(p for p in results["profiles"] if p["name"] == PROFILE)
    profile["conformant"] = False
    profile["counts"].update(passed=profile["counts"]["passed"] - 1, failed=1)
    profile["certificate"]["verdict"] = "not_conformant"
    jsonschema.validate(results, results_schema())
    return results


def test_compare_lists_new_failures_changes_and_verdicts(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    diff = compare(old, new)
    assert diff["new_failures"] == [
        {"id": BROKEN, "old": "passed", "new": "failed", "reason": "replayed code accepted"}
    ]
    assert diff["changed"] == [
        {"id": WARNS, "old": "passed", "new": "warning", "reason": "tokens survive the replay"}
    ]
    assert diff["fixed"] == []
    assert diff["added"] == [{"id": ADDED, "outcome": "passed"}]
    assert diff["removed"] == [{"id": REMOVED, "outcome": "passed"}]
    assert diff["verdicts"] == [{"profile": PROFILE, "old": "conformant", "new": "not_conformant"}]
    assert diff["new"]["target"].startswith("http://127.0.0.1:")  # the URL certified


def test_compare_the_other_way_lists_fixes(old: dict[str, Any], new: dict[str, Any]) -> None:
    diff = compare(new, old)
    assert diff["new_failures"] == []
    assert [f["id"] for f in diff["fixed"]] == [BROKEN]
    assert [c["id"] for c in diff["changed"]] == [WARNS]
    assert diff["verdicts"] == [{"profile": PROFILE, "old": "not_conformant", "new": "conformant"}]


def test_results_without_certificates_still_compare(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    """results.json written before certificates existed is still schema version 1."""
    older = copy.deepcopy(new)
    for profile in older["profiles"]:
        del profile["certificate"]
    jsonschema.validate(older, results_schema())
    assert compare(old, older)["verdicts"] == compare(old, new)["verdicts"]


def _write(tmp_path: Path, name: str, value: Any) -> Path:
    path = tmp_path / name
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reports.compare", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_exits_1_on_new_failures_and_0_otherwise(
    old: dict[str, Any], new: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old_file, new_file = _write(tmp_path, "old.json", old), _write(tmp_path, "new.json", new)
    worse = _cli(str(old_file), str(new_file))  # as a user runs it
    assert worse.returncode == 1, worse.stderr
    assert "new failures (1):" in worse.stdout and BROKEN in worse.stdout
    assert f"{PROFILE}: conformant -> not_conformant" in worse.stdout
    assert main([str(new_file), str(old_file)]) == 0
    better = capsys.readouterr().out
    assert "fixed (1):" in better and "no new failures" in better
    assert main([str(old_file), str(new_file), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["new_failures"][0]["id"] == BROKEN


def test_console_script_is_declared() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["mcp-conformance-compare"] == "reports.compare:main"
    assert callable(main)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        ("[[expected]]\n", "not JSON"),
        ({"profiles": []}, "not a results.json (no schema_version)"),
        ("drop-checks", "not a valid results.json (at the top level: 'checks' is a required"),
        ("bad-outcome", "not a valid results.json (at checks/0/outcome:"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(
    old: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: Any,
    problem: str,
) -> None:
    good = _write(tmp_path, "good.json", old)
    if content == "drop-checks":
        content = {k: v for k, v in old.items() if k != "checks"}
    elif content == "bad-outcome":
        content = copy.deepcopy(old)
        content["checks"][0]["outcome"] = "so-so"
    bad = tmp_path / "bad.json" if content is None else _write(tmp_path, "bad.json", content)
    assert main([str(good), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"mcp-conformance-compare: {bad}: {problem}"), err
