"""Expected failures (`--baseline`), both ways (issue 6).

A baseline that lists every failure a defect causes lets the run pass while the checks still
show failed and the profile stays not conformant; a baseline that lists a check the clean
reference passes is stale and fails the run. Both runs certify only the `dpop` profile.
"""

from __future__ import annotations

import copy
import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.baseline import (
    Baseline,
    Expected,
    check_parametrizations,
    load_baseline,
    run_succeeded,
)
from conformance.config import TargetConfig
from conformance.errors import ConfigError
from conformance.settings import RunSettings
from reports import build_results
from tests.conftest import REPO_ROOT, SuiteRun, run_suite, run_suite_forked

DEFECT = "as-dpop-signature-unchecked"  # fails DPOP-AS-PROOF-KEY and FUZZ-DPOP-PROOF
PROOF_KEY_CHECK = "dpop/test_authorization_server.py::test_proof_key_is_public_and_signed_the_proof"
FUZZ_CHECK = "robustness/test_fuzz_authorization_server.py::test_malformed_dpop_proofs_get_no_token"
OTHER_PROFILE_CHECK = "first_hop/test_token_endpoint.py::test_code_is_single_use"  # not in dpop

COVERING = f"""
[[expected]]
check = "{PROOF_KEY_CHECK}"
reason = "known: VENDOR-123, fix in 2.4"

[[expected]]
requirement = "FUZZ-DPOP-PROOF"
reason = "known: VENDOR-124"
"""

STALE = f"""
[[expected]]
check = "{PROOF_KEY_CHECK}"
reason = "fixed since, but still listed"

[[expected]]
check = "{OTHER_PROFILE_CHECK}"
reason = "deselected by --profile dpop: neither stale nor covering"
"""


def _run_with_baseline(tmp_path: Path, text: str, *args: str) -> tuple[SuiteRun, Path]:
    baseline = tmp_path / "baseline.toml"
    baseline.write_text(text)
    run = run_suite_forked(
        tmp_path, "--target", "embedded", "--profile", "dpop", f"--baseline={baseline}", *args
    )
    return run, baseline


@pytest.fixture(scope="module")
def covered_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[SuiteRun, Path]:
    """The defect's failures, every one listed in the baseline."""
    return _run_with_baseline(tmp_path_factory.mktemp("covered"), COVERING, "--defect", DEFECT)


@pytest.fixture(scope="module")
def stale_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[SuiteRun, Path]:
    """The clean reference, with a baseline that still lists a check it passes."""
    return _run_with_baseline(tmp_path_factory.mktemp("stale"), STALE)


def _dpop(results: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in results["profiles"] if p["name"] == "dpop")


def test_covered_failures_pass_the_run_but_stay_failed(covered_run: tuple[SuiteRun, Path]) -> None:
    run, baseline = covered_run
    assert run.exit_code == 0, run.stdout[-3000:]
    outcomes = run.check_outcomes()
    assert outcomes[PROOF_KEY_CHECK] == outcomes[FUZZ_CHECK] == "failed"
    checks = {c["id"]: c for c in run.results["checks"]}
    assert checks[PROOF_KEY_CHECK]["expected_failure"]["reason"] == "known: VENDOR-123, fix in 2.4"
    assert checks[FUZZ_CHECK]["expected_failure"] == {"reason": "known: VENDOR-124"}
    assert not [c for c in checks.values() if c["outcome"] == "passed" and "expected_failure" in c]
    # pytest's own view (terminal, JUnit XML) shows them as expected failures, not failures.
    assert "2 xfailed" in run.stdout and " failed" not in run.stdout.splitlines()[-1]
    cases = ET.parse(run.report_dir / "junit.xml").getroot().iter("testcase")
    xfails = {c.get("name"): c.find("skipped") for c in cases if c.find("skipped") is not None}
    name = PROOF_KEY_CHECK.split("::")[1]
    assert xfails[name] is not None and xfails[name].get("type") == "pytest.xfail"
    assert "VENDOR-123" in (xfails[name].get("message") or "")


def test_a_baseline_never_makes_a_profile_conformant(covered_run: tuple[SuiteRun, Path]) -> None:
    run, baseline = covered_run
    profile = _dpop(run.results)
    assert profile["conformant"] is False and profile["accepted"] is True
    assert profile["baselined"] == sorted([PROOF_KEY_CHECK, FUZZ_CHECK])
    certificate = profile["certificate"]
    assert certificate["verdict"] == "not_conformant"
    assert certificate["baselined"] == profile["baselined"]
    digest = hashlib.sha256(baseline.read_bytes()).hexdigest()
    assert certificate["baseline"] == {"file": str(baseline), "sha256": digest}
    assert [e["state"] for e in run.results["baseline"]["entries"]] == ["expected", "expected"]
    assert run.results["baseline"]["stale"] == []
    assert "every failure is expected by the baseline" in run.stdout
    summary = (run.report_dir / "summary.md").read_text()
    assert "every failure is expected by the baseline" in summary
    assert "expected (known: VENDOR-123, fix in 2.4)" in summary


def test_a_baseline_missing_one_failure_fails_the_run(covered_run: tuple[SuiteRun, Path]) -> None:
    """The same records, with the requirement entry left out: the fuzz failure is no longer
    covered, so the profile is not accepted and the run fails."""
    run, baseline = covered_run
    records = copy.deepcopy(run.results["checks"])
    for record in records:
        record.pop("expected_failure", None)
    partial = load_baseline(baseline)
    partial = Baseline(partial.file, partial.sha256, partial.entries[:1])
    settings = RunSettings(
        "embedded", TargetConfig(), ("dpop",), None, frozenset({DEFECT}), baseline=partial
    )
    results = build_results(records, settings, run.results["run"])
    assert _dpop(results)["accepted"] is False
    assert _dpop(results)["baselined"] == [PROOF_KEY_CHECK]
    assert not run_succeeded(results)
    checks = {c["id"]: c for c in results["checks"]}
    assert "expected_failure" not in checks[FUZZ_CHECK]


def test_a_listed_check_that_passes_is_stale_and_fails_the_run(
    stale_run: tuple[SuiteRun, Path],
) -> None:
    run, _ = stale_run
    assert run.exit_code == 1, run.stdout[-3000:]
    assert run.check_outcomes()[PROOF_KEY_CHECK] == "passed"
    assert _dpop(run.results)["conformant"] is True
    baseline = run.results["baseline"]
    assert baseline["stale"] == [PROOF_KEY_CHECK]
    assert [e["state"] for e in baseline["entries"]] == ["stale", "not_run"]
    message = f"STALE baseline entry {PROOF_KEY_CHECK}: it passes now; remove it from the baseline"
    assert message in run.stdout
    assert message in (run.report_dir / "summary.md").read_text()
    # pytest fails the listed check itself too (a strict xpass), naming the entry.
    assert f"FAILED {PROOF_KEY_CHECK.split('::')[0]}" in run.stdout
    assert "passes now but" in run.stdout


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "baseline.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[expected]\n", "not valid TOML"),
        (f'[[expected]]\ncheck = "{PROOF_KEY_CHECK}"\n', "has no reason"),
        (f'[[expected]]\ncheck = "{PROOF_KEY_CHECK}"\nreason = " "\n', "has no reason"),
        ('[[expected]]\nreason = "x"\n', "exactly one of check or requirement"),
        (
            f'[[expected]]\ncheck = "{PROOF_KEY_CHECK}"\nrequirement = "DPOP-AS-PROOF-KEY"\n'
            'reason = "x"\n',
            "exactly one of check or requirement",
        ),
        (f'[[expected]]\ncheck = "{PROOF_KEY_CHECK}"\nreason = "x"\nticket = 1\n', "'ticket'"),
        (
            f'[[expected]]\ncheck = "{PROOF_KEY_CHECK}x"\nreason = "x"\n',
            f"unknown check '{PROOF_KEY_CHECK}x'; did you mean {PROOF_KEY_CHECK}",
        ),
        (
            '[[expected]]\nrequirement = "DPOP-AS-PROOF-KEYS"\nreason = "x"\n',
            "unknown requirement 'DPOP-AS-PROOF-KEYS'; did you mean DPOP-AS-PROOF-KEY",
        ),
        (
            f'[[expected]]\ncheck = "{PROOF_KEY_CHECK}"\nreason = "a"\n'
            f'[[expected]]\ncheck = "{PROOF_KEY_CHECK}"\nreason = "b"\n',
            "listed twice",
        ),
        ('[expected]\ncheck = "x"\n', "write each entry as an [[expected]] table"),
    ],
)
def test_bad_baselines_name_what_to_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_baseline(path)
    message = str(raised.value)
    assert message.startswith(f"--baseline {path}") and expected in message, message
    assert "\n" not in message


def test_a_listed_parametrization_must_exist() -> None:
    function = "first_hop/test_client_registration.py::test_unsafe_redirect_uri_is_refused"
    collected = [f"{function}[data]", f"{function}[file]"]
    listed = Baseline("b.toml", "", (Expected("x", check=f"{function}[dta]"),))
    with pytest.raises(ConfigError, match=r"unknown check .*\[dta\]'; did you mean .*\[data\]"):
        check_parametrizations(listed, collected)
    check_parametrizations(Baseline("b.toml", "", (Expected("x", check=collected[1]),)), collected)
    check_parametrizations(Baseline("b.toml", "", (Expected("x", check=function),)), collected)


def test_a_bad_baseline_ends_the_run_with_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, f'[[expected]]\ncheck = "{PROOF_KEY_CHECK}"\n')
    result = run_suite(tmp_path, "--target", "embedded", "--baseline", str(path), timeout=60)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.exit_code == 4  # pytest's usage error
    assert len(lines) == 1 and "has no reason" in lines[0], lines


def test_the_example_baseline_names_real_checks_and_requirements() -> None:
    baseline = load_baseline(REPO_ROOT / "examples" / "baseline.toml")
    assert {bool(e.check) for e in baseline.entries} == {True, False}
