"""JUnit XML and allure results say what each check certifies (issue 6).

A run with `--report-dir` and nothing else writes DIR/junit.xml and DIR/allure-results: each
testcase carries `requirement`, `profile`, `level` and `outcome` properties and nothing of the
check record; each allure result has the profiles as epics, the area as feature, the
requirements as stories, spec links, a severity from the level, the five-way outcome (a
warning is never broken) and the check's redacted evidence as one JSON attachment.

One serial run with two defects (failed, warning and skipped outcomes) and one `-n 2` run
(the records, properties and target facts cross from the workers).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from conformance.catalogue import load_catalogue
from tests.conftest import SuiteRun, run_suite, run_suite_forked

CATALOGUE = load_catalogue()
SEVERITY = {"MUST": "critical", "SHOULD": "normal", "MAY": "minor"}
ALLURE_STATUS = {"passed": "passed", "warning": "passed", "failed": "failed", "skipped": "skipped"}


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """The dpop profile with a MUST broken (failed) and a SHOULD broken (warning)."""
    return run_suite_forked(
        tmp_path_factory.mktemp("labelled"),
        "--target",
        "embedded",
        "--profile",
        "dpop",
        "--defect",
        "as-dpop-signature-unchecked",
        "--defect",
        "rs-dpop-jti-replay",
    )


@pytest.fixture(scope="module")
def xdist_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """The discovery checks on two workers, each with its own embedded reference."""
    return run_suite(
        tmp_path_factory.mktemp("xdist"), "--target", "embedded", "-n", "2", "-k", "discovery"
    )


def _split(nodeid: str) -> tuple[str, str]:
    """A check's nodeid as JUnit's classname and name (pytest's junitxml mangling)."""
    path, name = nodeid.split("::", 1)
    return path.removesuffix(".py").replace("/", "."), name


def junit_properties(run: SuiteRun) -> dict[tuple[str, str], list[tuple[str, str]]]:
    cases = ET.parse(run.report_dir / "junit.xml").getroot().iter("testcase")
    return {
        (case.attrib["classname"], case.attrib["name"]): [
            (p.attrib["name"], p.attrib["value"]) for p in case.iter("property")
        ]
        for case in cases
    }


def assert_junit_names_what_each_check_certifies(run: SuiteRun, profiles: list[str]) -> None:
    properties = junit_properties(run)
    checks = run.results["checks"]
    assert len(properties) == len(checks)
    for check in checks:
        found = properties[_split(check["nodeid"])]
        expected = [("requirement", rid) for rid in check["requirements"]]
        expected += [("profile", name) for name in profiles]
        expected += [("level", check["level"]), ("outcome", check["outcome"])]
        assert found == expected, check["id"]


def test_junit_xml_is_written_with_check_properties(labelled_run: SuiteRun) -> None:
    assert labelled_run.exit_code == 1, labelled_run.stdout[-3000:]
    assert_junit_names_what_each_check_certifies(labelled_run, ["dpop"])
    outcomes = set(labelled_run.check_outcomes().values())
    assert {"passed", "failed", "warning", "skipped"} <= outcomes
    text = (labelled_run.report_dir / "junit.xml").read_text()
    # No check record in any form (a property or a failure message would show its keys).
    assert "request_headers" not in text and "statuses" not in text


def allure_results(run: SuiteRun) -> dict[tuple[str, str], dict[str, Any]]:
    directory = run.report_dir / "allure-results"
    found = {}
    for path in directory.glob("*-result.json"):
        result = json.loads(path.read_text())
        found[(result["fullName"], result["name"])] = result
    return found


def _labels(result: dict[str, Any], name: str) -> list[str]:
    return [label["value"] for label in result["labels"] if label["name"] == name]


def test_allure_results_carry_labels_links_severity_and_outcome(labelled_run: SuiteRun) -> None:
    results = allure_results(labelled_run)
    checks = labelled_run.results["checks"]
    assert len(results) == len(checks)
    for check in checks:
        classname, name = _split(check["nodeid"])
        result = results[(f"{classname}#{name.split('[')[0]}", name)]
        assert _labels(result, "epic") == ["dpop"]
        assert _labels(result, "feature") == [check["id"].split("/")[0]]
        assert _labels(result, "story") == check["requirements"]
        assert _labels(result, "severity") == [SEVERITY[check["level"]]]
        assert _labels(result, "outcome") == [check["outcome"]]
        assert result["status"] == ALLURE_STATUS[check["outcome"]], check["id"]
        assert ("warning" in _labels(result, "tag")) == (check["outcome"] == "warning")
        urls = {ref.url for rid in check["requirements"] for ref in CATALOGUE[rid].refs}
        assert {link["url"] for link in result["links"]} == urls
        assert check["reason"] in result["description"]


def test_allure_attachments_are_the_redacted_evidence(labelled_run: SuiteRun) -> None:
    """The attachment is the evidence results.json holds (already redacted), nothing more."""
    results = allure_results(labelled_run)
    directory = labelled_run.report_dir / "allure-results"
    attached = 0
    for check in labelled_run.results["checks"]:
        classname, name = _split(check["nodeid"])
        result = results[(f"{classname}#{name.split('[')[0]}", name)]
        attachments = result.get("attachments", [])
        evidence = [a for a in attachments if a["name"] == "HTTP evidence (redacted)"]
        if not check["evidence"]:
            assert not evidence
            continue
        assert len(evidence) == 1 and evidence[0]["type"] == "application/json"
        exchanges = json.loads((directory / evidence[0]["source"]).read_text())
        assert exchanges == check["evidence"]
        for exchange in exchanges:
            for header in ("authorization", "cookie"):
                value = exchange["request_headers"].get(header)
                assert value is None or "<redacted" in value, (check["id"], header, value)
        attached += 1
    assert attached > 20


def test_under_xdist_junit_properties_come_from_the_workers(xdist_run: SuiteRun) -> None:
    assert xdist_run.exit_code == 1  # -k leaves most requirements unexercised: incomplete
    results = xdist_run.results
    assert results["run"]["complete"] and results["run"]["checks_run"] == len(results["checks"])
    profiles = [p["name"] for p in results["profiles"]]
    properties = junit_properties(xdist_run)
    assert len(properties) == len(results["checks"]) > 10
    for check in results["checks"]:
        covering = [
            p["name"]
            for p in results["profiles"]
            if set(check["requirements"]) & {r["id"] for r in p["requirements"]}
        ]
        expected = [("requirement", rid) for rid in check["requirements"]]
        expected += [("profile", name) for name in profiles if name in covering]
        expected += [("level", check["level"]), ("outcome", check["outcome"])]
        assert properties[_split(check["nodeid"])] == expected
    assert len(allure_results(xdist_run)) == len(results["checks"])


def test_under_xdist_certificates_name_a_workers_target(xdist_run: SuiteRun) -> None:
    """The controller runs no discovery: the certificate's target comes from the workers,
    each of which started its own embedded reference (other ports, the same deployment: no
    note says they differ)."""
    from tests.test_certificate import assert_certifies_the_served_target

    results = xdist_run.results
    assert_certifies_the_served_target(results)
    assert "did not certify the same target" not in results["run"]["note"]
    assert all(p["certificate"]["verdict"] == "incomplete" for p in results["profiles"])


def test_report_dir_alone_writes_every_report(labelled_run: SuiteRun) -> None:
    names = {p.name for p in labelled_run.report_dir.iterdir()}
    assert {"results.json", "summary.md", "junit.xml", "allure-results"} <= names
