"""The pytest plugin: `pytest --target URL` certifies an MCP deployment.

Options, collection of the bundled checks, the mapping from findings to the five verdicts,
and the per-profile reports at the end of the run. Registered through the `pytest11` entry
point, so it is inert unless `--target` (or a listing option) is given.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from conformance import dpop_flows, expiry, fixtures, second_hop
from conformance.catalogue import load_catalogue
from conformance.config import DEFAULT_FUZZ_EXAMPLES, TargetConfig, load_config
from conformance.errors import ConfigError, HarnessError, PreconditionFailed
from conformance.evidence import Redactor, silence_transport_logs
from conformance.login import LoginHookSpec
from conformance.preflight import PREFLIGHT_FAULT, preflight
from conformance.records import (
    CHECKS_DIR,
    RECORD_KEY,
    build_record,
    check_id,
    declared_requirements,
    failure_text,
)
from conformance.settings import RUN_SETTINGS, RunSettings
from conformance.verdict import Outcome, catalogue_level


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mcp-auth-conformance", "MCP authorization conformance")
    group.addoption(
        "--target",
        metavar="URL",
        help="MCP endpoint to certify, or 'embedded' for the bundled reference.",
    )
    group.addoption(
        "--target-config",
        metavar="FILE",
        help="TOML with what cannot be discovered (clients, users, login).",
    )
    group.addoption(
        "--profile",
        action="append",
        default=[],
        metavar="NAME",
        help="Profile to certify (repeatable; default: every profile).",
    )
    group.addoption(
        "--report-dir", metavar="DIR", help="Write the reports (see --report-format) into DIR."
    )
    group.addoption(
        "--report-format",
        action="append",
        default=[],
        metavar="NAME",
        help="Report to write into --report-dir (repeatable; default: all; results.json always).",
    )
    group.addoption(
        "--defect",
        action="append",
        default=[],
        metavar="NAME",
        help="With --target embedded: switch this reference defect on (repeatable).",
    )
    group.addoption(
        "--max-expiry-wait",
        type=float,
        metavar="SECONDS",
        help="Longest an expiry check waits for a token to expire (default 10); longer: skipped.",
    )
    group.addoption(
        "--fuzz-examples",
        type=int,
        metavar="N",
        help=f"Examples each fuzz check generates (default {DEFAULT_FUZZ_EXAMPLES}; more for "
        "deeper local runs; the seed stays fixed).",
    )
    group.addoption(
        "--http-timeout",
        type=float,
        metavar="SECONDS",
        help="Longest any one HTTP exchange may take (default 15, or [limits] deadline).",
    )
    group.addoption(
        "--list-defects",
        action="store_true",
        help="Print the reference deployment's defect switches and exit.",
    )
    group.addoption(
        "--list-requirements", action="store_true", help="Print the requirement catalogue and exit."
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(LoginHookSpec)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.option.list_defects:
        from conformance.embedded import defect_catalogue

        for name, (requirements, description, _) in defect_catalogue().items():
            print(f"{name}\t{','.join(requirements)}\t{description}")
        return 0
    if config.option.list_requirements:
        for requirement in load_catalogue().values():
            print(
                f"{requirement.id}\t{requirement.level}\t{requirement.spec_reference}\t"
                f"{requirement.summary}"
            )
        return 0
    return None


def _settings(config: pytest.Config) -> RunSettings:
    from conformance.embedded import defect_catalogue
    from profiles import load_profiles

    option = config.option
    known_profiles = load_profiles()
    for name in option.profile:
        if name not in known_profiles:
            raise ConfigError(f"unknown --profile {name!r}; valid: {', '.join(known_profiles)}")
    target: str = option.target
    if option.max_expiry_wait is not None and not option.max_expiry_wait >= 0:
        raise ConfigError(
            f"--max-expiry-wait {option.max_expiry_wait:g}: give zero or more seconds"
        )
    if option.fuzz_examples is not None and option.fuzz_examples < 1:
        raise ConfigError(f"--fuzz-examples {option.fuzz_examples}: give one or more")
    if option.http_timeout is not None and not option.http_timeout > 0:
        raise ConfigError(f"--http-timeout {option.http_timeout:g}: give more than zero seconds")
    if option.defect and target != "embedded":
        raise ConfigError("--defect works only with --target embedded")
    known_defects = defect_catalogue()
    for name in option.defect:
        if name not in known_defects:
            raise ConfigError(
                f"unknown --defect {name!r}; valid: {', '.join(known_defects)} (see --list-defects)"
            )
    if option.target_config and target == "embedded":
        raise ConfigError(
            "--target-config is not used with --target embedded (the embedded reference "
            "describes itself); drop one of them"
        )
    from reports import REPORT_FORMATS

    for name in option.report_format:
        if name not in REPORT_FORMATS:
            raise ConfigError(
                f"unknown --report-format {name!r}; valid: {', '.join(REPORT_FORMATS)}"
            )
    target_config = load_config(option.target_config) if option.target_config else TargetConfig()
    if option.http_timeout is not None:
        limits = target_config.limits.within(option.http_timeout)
        target_config = dataclasses.replace(target_config, limits=limits)
    if target != "embedded" and not target.startswith(("http://", "https://")):
        raise ConfigError(f"--target {target!r} is neither an http(s) URL nor 'embedded'")
    return RunSettings(
        target=target,
        config=target_config,
        profiles=tuple(option.profile) or tuple(known_profiles),
        report_dir=Path(option.report_dir) if option.report_dir else None,
        defects=frozenset(option.defect),
        report_formats=tuple(option.report_format),
    )


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


_PREFLIGHT_FAULT_INPUT = "conformance_preflight_fault"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: the preflight ran once, in the controller; its fault goes to the workers."""
    fault = node.config.stash.get(PREFLIGHT_FAULT, None)
    if fault:
        node.workerinput[_PREFLIGHT_FAULT_INPUT] = fault


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A target whose MCP endpoint failed the preflight cannot be judged: every check ends as
    `error` with that fault, at once, instead of each waiting out the same timeouts."""
    fault = item.config.stash.get(PREFLIGHT_FAULT, None)
    if fault:
        raise PreconditionFailed(fault)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requirement(*ids): catalogued requirement IDs a check proves"
    )
    if not config.option.target:
        return
    fault = getattr(config, "workerinput", {}).get(_PREFLIGHT_FAULT_INPUT)
    try:
        settings = _settings(config)
        if not settings.embedded and not _is_worker(config):
            fault = preflight(settings)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[RUN_SETTINGS] = settings
    if fault:
        config.stash[PREFLIGHT_FAULT] = fault
    silence_transport_logs()
    # The fuzz checks' hypothesis keeps a cache (./.hypothesis by default): a run leaves
    # nothing behind in the user's directory.
    storage = tempfile.mkdtemp(prefix="mcp-conformance-hypothesis-")
    set_hypothesis_home_dir(storage)
    config.add_cleanup(lambda: shutil.rmtree(storage, ignore_errors=True))
    config.pluginmanager.register(fixtures, "mcp-auth-conformance-fixtures")
    config.pluginmanager.register(second_hop, "mcp-auth-conformance-second-hop")
    config.pluginmanager.register(dpop_flows, "mcp-auth-conformance-dpop-flows")
    config.pluginmanager.register(expiry, "mcp-auth-conformance-expiry")
    config.pluginmanager.register(CertificationRun(config, settings), "mcp-auth-conformance-run")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(CHECKS_DIR)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if RUN_SETTINGS not in config.stash:
        return
    from profiles import load_profiles

    catalogue = load_catalogue()
    for item in items:
        ids = declared_requirements(item)
        if not ids or any(rid not in catalogue for rid in ids):
            raise pytest.UsageError(f"{item.nodeid}: requirement marker missing or uncatalogued")
    selected = set(config.option.profile)
    if not selected:
        return
    wanted = {rid for name in selected for rid in load_profiles()[name].requirements}
    keep = [i for i in items if wanted & set(declared_requirements(i))]
    deselected = [i for i in items if i not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


REDACTOR = pytest.StashKey[Redactor]()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Keep the run's redactor (built by the `run` fixture) for the records' free text."""
    value = yield
    if fixturedef.argname == "run" and isinstance(value, fixtures.Run):
        request.config.stash[REDACTOR] = value.redactor
    return value


def redact_free_text(record: dict[str, Any], redactor: Redactor) -> None:
    """A check's messages, notes and reason are free text that may quote a credential; the
    evidence was redacted when it was recorded."""
    record["reason"] = redactor.scrub(record["reason"])
    record["notes"] = [redactor.scrub(note) for note in record["notes"]]
    for finding in record["findings"]:
        finding["message"] = redactor.scrub(finding["message"])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if RUN_SETTINGS not in item.config.stash or not declared_requirements(item):
        return report
    final = call.when == "call" or (call.when == "setup" and not report.passed)
    if not final:
        return report
    verdict = item.stash.get(fixtures.VERDICT, None)
    record = build_record(item, call.when, call.excinfo, verdict)
    redactor = item.config.stash.get(REDACTOR, None)
    if redactor is not None:
        redact_free_text(record, redactor)
    report.user_properties.append((RECORD_KEY, record))
    outcome = record["outcome"]
    if outcome in (Outcome.FAILED, Outcome.ERROR):
        report.outcome = "failed"
        report.longrepr = failure_text(record)
    elif outcome in (Outcome.PASSED, Outcome.WARNING):
        report.outcome = "passed"
        report.longrepr = None
    return report


def _record_of(report: pytest.TestReport) -> dict[str, Any] | None:
    properties = getattr(report, "user_properties", ())
    return next((v for k, v in properties if k == RECORD_KEY), None)


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    record = _record_of(report)
    if record is None:
        return None
    if record["outcome"] == Outcome.WARNING:
        return "warning", "W", ("WARNING", {"yellow": True})
    if record["outcome"] == Outcome.ERROR:
        return "error", "E", ("ERROR", {"red": True})
    return None


def _not_run_record(item: pytest.Item, reason: str) -> dict[str, Any]:
    """The record of a check the run never reached (interrupted, or stopped early)."""
    requirements = declared_requirements(item)
    levels = [catalogue_level(r) for r in requirements]
    doc = getattr(getattr(item, "function", None), "__doc__", None)
    return {
        "id": check_id(item),
        "nodeid": item.nodeid,
        "title": doc.strip().splitlines()[0] if doc and doc.strip() else item.name,
        "requirements": list(requirements),
        "statuses": {},
        "level": min(levels, key=("MUST", "SHOULD", "MAY").index),
        "outcome": "not_run",
        "reason": reason,
        "findings": [],
        "notes": [],
        "evidence": [],
    }


def _stopped(session: pytest.Session, exitstatus: int) -> str:
    """Why the run ended before its last check, or "" when it did not."""
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return "interrupted"
    reason = session.shouldfail or session.shouldstop
    return f"stopped early ({reason})" if reason else ""


class CertificationRun:
    """Collects every check record (also from xdist workers) and reports at the end, also
    when the run is interrupted: then every check it did not reach is `not_run`."""

    def __init__(self, config: pytest.Config, settings: RunSettings) -> None:
        self.config = config
        self.settings = settings
        self.records: list[dict[str, Any]] = []
        self.results: dict[str, Any] | None = None
        self.collected: list[pytest.Item] = []
        self.collected_count: int | None = None  # under xdist: counted by the workers

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = list(session.items)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> pytest.TestReport | None:
        """A check stopped by a `HarnessError` gets its report without pytest rendering the
        source of every frame (its record says what happened, and the rendering costs about
        0.1 s an error: minutes against a target where every check errors). Other exceptions,
        bugs of the suite, keep pytest's traceback."""
        excinfo = call.excinfo
        if excinfo is None or not excinfo.errisinstance(HarnessError):
            return None
        if not declared_requirements(item):
            return None
        return pytest.TestReport(
            item.nodeid,
            item.location,
            dict.fromkeys(item.keywords, 1),
            "failed",
            f"{excinfo.typename}: {excinfo.value}",
            call.when,  # type: ignore[arg-type]  # never "collect" for an item
            [(f"Captured {key} {when}", text) for when, key, text in item._report_sections],
            call.duration,
            call.start,
            call.stop,
            user_properties=item.user_properties,
        )

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.collected_count = len(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = _record_of(report)
        if record is not None:
            self.records.append(record)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if _is_worker(self.config):
            return
        from reports import REPORT_FORMATS, build_results, run_status, write_reports

        stopped = _stopped(session, exitstatus)
        reached = {r["nodeid"] for r in self.records}
        unrun = [
            _not_run_record(item, f"not run: the run was {stopped or 'incomplete'}")
            for item in self.collected
            if item.nodeid not in reached
        ]
        records = self.records + unrun
        run = run_status(records, max(len(self.collected), self.collected_count or 0), stopped)
        self.results = build_results(records, self.settings, run)
        if self.settings.report_dir is not None:
            formats = self.settings.report_formats or tuple(REPORT_FORMATS)
            write_reports(self.results, self.settings.report_dir, formats)
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            conformant = all(p["conformant"] for p in self.results["profiles"])
            session.exitstatus = pytest.ExitCode.OK if conformant else pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.results is None:
            return
        from reports.terminal import summary_lines

        terminalreporter.section("MCP authorization conformance")
        for line in summary_lines(self.results):
            terminalreporter.write_line(line)
        if self.settings.report_dir is not None:
            terminalreporter.write_line(f"reports written to {self.settings.report_dir}/")


def main() -> None:  # pragma: no cover - convenience: python -m conformance
    sys.exit(pytest.main(sys.argv[1:]))
