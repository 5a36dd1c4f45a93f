"""Every check can fail: each defect switch makes exactly its requirements fail.

For every defect the reference deployment offers, the whole suite runs with that defect on.
Each requirement the defect names must end `failed` (MUST) or `warning` (SHOULD), named by a
finding; every check about other requirements keeps its clean-run outcome, except where the
defect declares that it masks a precondition (then `error` or `skipped` is allowed too).

The matrix runs the fuzz checks with fewer examples than the default (MATRIX_FUZZ_EXAMPLES,
for the clean baseline and every defect alike), which keeps `make test` within its budget:
each fuzz check tries the harshest mutation of every part first, so a few examples suffice to
show it can fail. `tests/test_fuzzing.py` shows the fuzz defects are found with the defaults.

A defect that names no FUZZ-* requirement runs without the fuzz checks (`robustness/`, a fifth
of a run's time): the matrix then does not watch them for collateral changes under that
defect, a trade made to keep `make test` within budget. Every defect that trips a fuzz
property names its FUZZ ID today (the full matrix showed it before the trade was made), and
the fuzz checks are still run against every defect that claims one. Matrix runs write
results.json only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.catalogue import load_catalogue
from reference.defects import DEFECTS
from tests.conftest import SuiteRun, run_suite_forked

CATALOGUE = load_catalogue()
MATRIX_FUZZ_EXAMPLES = "6"
MATRIX = (
    "--target",
    "embedded",
    "--fuzz-examples",
    MATRIX_FUZZ_EXAMPLES,
    "--report-format",
    "json",
)
WITHOUT_FUZZ_CHECKS = ("-k", "not robustness")


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """The clean embedded run with the matrix's settings, once per test session."""
    return run_suite_forked(tmp_path_factory.mktemp("baseline"), *MATRIX)


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defect_fails_exactly_its_requirements(
    name: str, baseline: SuiteRun, tmp_path: Path
) -> None:
    defect = DEFECTS[name]
    fuzzed = any(rid.startswith("FUZZ-") for rid in defect.requirements)
    options = () if fuzzed else WITHOUT_FUZZ_CHECKS
    run = run_suite_forked(tmp_path, *MATRIX, *options, "--defect", name)
    results = run.results
    outcomes = run.requirement_outcomes()

    for rid in defect.requirements:
        expected = "failed" if CATALOGUE[rid].level == "MUST" else "warning"
        assert outcomes[rid] == expected, f"{rid}: {outcomes[rid]}"
        named = [
            f
            for c in results["checks"]
            for f in c["findings"]
            if f["requirement"] == rid and not f["satisfied"]
        ]
        assert named, f"no finding names {rid}"
    assert run.exit_code != 0

    if not fuzzed:
        assert not any(c["id"].startswith("robustness/") for c in results["checks"])
    clean = baseline.check_outcomes()
    for check in results["checks"]:
        covered = set(check["requirements"])
        if covered & set(defect.requirements):
            continue
        before = clean[check["id"]]
        if "*" in defect.masks or covered & set(defect.masks):
            assert check["outcome"] in (before, "error", "skipped"), check["id"]
        else:
            assert check["outcome"] == before, (
                f"{check['id']}: {before} -> {check['outcome']} ({check['reason']})"
            )
