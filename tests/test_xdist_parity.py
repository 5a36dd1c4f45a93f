"""Under pytest-xdist (`-n 2`) the suite reaches the same verdicts as serially: the same
outcome for every check, the same outcome for every requirement, the same profile verdicts.

Two full certifications of the embedded reference: the session's serial `clean_run`, and one
with `-n 2` (each worker starts its own reference deployment).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.conftest import SuiteRun, run_suite_forked

SENT = r"(\d+) distinct mutated requests sent"  # a fuzz check's note


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What must not depend on how the run was distributed, by kind and key."""
    return {
        "check": {c["id"]: (c["outcome"], c["statuses"]) for c in results["checks"]},
        "requirement": {r["id"]: r["outcome"] for r in results["requirements"]},
        "profile": {p["name"]: (p["conformant"], p["counts"]) for p in results["profiles"]},
        "run": {"complete": results["run"]["complete"]},
    }


def differences(serial: dict[str, Any], parallel: dict[str, Any]) -> list[str]:
    """Each verdict that differs between the two runs, in words."""
    found = []
    theirs = verdicts(parallel)
    for kind, ours in verdicts(serial).items():
        for key in sorted(ours.keys() | theirs[kind].keys()):
            a, b = ours.get(key, "absent"), theirs[kind].get(key, "absent")
            if a != b:
                found.append(f"{kind} {key}: serially {a}, with -n 2 {b}")
    return found


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    return run_suite_forked(tmp_path_factory.mktemp("xdist"), "--target", "embedded", "-n", "2")


def test_xdist_reaches_the_serial_verdicts(clean_run: SuiteRun, parallel_run: SuiteRun) -> None:
    assert parallel_run.exit_code == clean_run.exit_code == 0, parallel_run.stdout[-3000:]
    assert "bringing up nodes" in parallel_run.stdout  # it did run distributed
    assert differences(clean_run.results, parallel_run.results) == []


def test_a_different_verdict_is_reported(clean_run: SuiteRun) -> None:
    """The comparison sees a change of any kind (a doctored copy of the serial results)."""
    serial = clean_run.results
    doctored = copy.deepcopy(serial)
    check, dropped = doctored["checks"][0], doctored["checks"].pop()
    check["outcome"] = "failed"
    doctored["requirements"][0]["outcome"] = "error"
    doctored["profiles"][0]["conformant"] = False
    doctored["run"]["complete"] = False
    found = differences(serial, doctored)
    assert len(found) == 5, found
    assert any(line.startswith(f"check {check['id']}: serially ('passed'") for line in found)
    assert any(f"check {dropped['id']}:" in line and "absent" in line for line in found)
    assert any(line.startswith(f"requirement {serial['requirements'][0]['id']}:") for line in found)
    assert any(line.startswith(f"profile {serial['profiles'][0]['name']}:") for line in found)
    assert "run complete: serially True, with -n 2 False" in found


def test_every_check_is_timed_in_both_runs(clean_run: SuiteRun, parallel_run: SuiteRun) -> None:
    """Each record's `timing` (what `make bench` sums) is there under xdist too, and counts
    the exchanges a fuzz check keeps out of its evidence."""
    for run in (clean_run, parallel_run):
        fuzzed = 0
        for check in run.results["checks"]:
            timing = check["timing"]
            assert 0 <= timing["waiting_s"] <= timing["duration_s"], check["id"]
            sent = [int(n) for note in check["notes"] for n in re.findall(SENT, note)]
            if sent:
                fuzzed += 1
                assert timing["exchanges"] >= sum(sent) > len(check["evidence"]), check["id"]
        assert fuzzed >= 5
