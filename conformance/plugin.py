"""The pytest plugin: `pytest --target URL` certifies an MCP deployment.

Options, collection of the bundled checks, the mapping from findings to the five verdicts,
and the per-profile reports at the end of the run. Registered through the `pytest11` entry
point, so it is inert unless `--target` (or a listing option) is given.
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from conformance import dpop_flows, expiry, fixtures, second_hop
from conformance.baseline import (
    Baseline,
    check_parametrizations,
    expected_reason,
    load_baseline,
    run_succeeded,
    stale_entry,
)
from conformance.catalogue import load_catalogue
from conformance.cli import count, seconds, unrecognized
from conformance.config import DEFAULT_FUZZ_EXAMPLES, TargetConfig, load_config
from conformance.discovery import Discovery
from conformance.errors import ConfigError, HarnessError, PreconditionFailed
from conformance.evidence import Redactor, silence_transport_logs
from conformance.interrupt import number_traceback_lines
from conformance.login import LoginHookSpec
from conformance.preflight import PREFLIGHT_FAULT, preflight
from conformance.records import (
    CHECKS_DIR,
    RECORD_ATTR,
    TARGET_ATTR,
    build_record,
    check_id,
    declared_requirements,
    failure_text,
)
from conformance.settings import RUN_SETTINGS, RunSettings
from conformance.timing import Meter, metering, waiting
from conformance.verdict import Outcome, catalogue_level
from reports.allure_labels import allure_active, default_allure_dir, label_check
from reports.certificate import agreed_target, target_facts
from reports.junit_properties import default_junit_path, junit_properties

OPTION_GROUP = "mcp-auth-conformance"


def pytest_addoption(parser: pytest.Parser) -> None:
    from profiles import load_profiles
    from reports import REPORT_FORMATS

    group = parser.getgroup(OPTION_GROUP, "MCP authorization conformance")
    group.addoption(
        "--target",
        metavar="URL",
        help="MCP endpoint to certify (an http(s) URL), or 'embedded' to start and certify "
        "the bundled reference deployment.",
    )
    group.addoption(
        "--target-config",
        metavar="FILE",
        help="TOML with what cannot be discovered: clients, users, login, hooks, second hop "
        "(see examples/target-config.toml).",
    )
    group.addoption(
        "--profile",
        action="append",
        default=[],
        metavar="NAME",
        help="Profile to certify (repeatable; default: all): " + ", ".join(load_profiles()) + ".",
    )
    group.addoption(
        "--report-dir",
        metavar="DIR",
        help="Directory to write the reports into (results.json and those of --report-format).",
    )
    group.addoption(
        "--report-format",
        action="append",
        default=[],
        metavar="NAME",
        help="Report to write into --report-dir (repeatable; default: all; results.json always): "
        + ", ".join(REPORT_FORMATS)
        + ".",
    )
    group.addoption(
        "--baseline",
        metavar="FILE",
        help="TOML of expected failures: listed checks do not fail the run; one that passes "
        "now does (stale).",
    )
    group.addoption(
        "--defect",
        action="append",
        default=[],
        metavar="NAME",
        help="With --target embedded: switch this reference defect on (repeatable; names: see "
        "--list-defects).",
    )
    group.addoption(
        "--max-expiry-wait",
        type=seconds("--max-expiry-wait", zero=True),
        metavar="SECONDS",
        help="Longest an expiry check waits for a token to expire (default 10, or [lifetimes] "
        "max_expiry_wait); a check needing longer is skipped.",
    )
    group.addoption(
        "--fuzz-examples",
        type=count("--fuzz-examples"),
        metavar="N",
        help=f"Examples each fuzz check generates, one or more (default {DEFAULT_FUZZ_EXAMPLES}; "
        "the seed is fixed, so a run is reproducible).",
    )
    group.addoption(
        "--http-timeout",
        type=seconds("--http-timeout", zero=False),
        metavar="SECONDS",
        help="Longest any one HTTP exchange may take, more than zero (default 15, or [limits] "
        "deadline).",
    )
    group.addoption(
        "--list-defects",
        action="store_true",
        help="Print the reference deployment's defect switches (name, requirement IDs, "
        "description) and exit.",
    )
    group.addoption(
        "--list-requirements",
        action="store_true",
        help="Print the requirement catalogue (ID, level, spec, summary) and exit.",
    )


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    """A mistyped option of ours ends the run with one line naming the closest ones (pytest
    would say only that it is unrecognized, after its usage text)."""
    yield
    _, unknown = parser.parse_known_and_unknown_args(args)
    ours = [name for option in parser.getgroup(OPTION_GROUP).options for name in option.names()]
    message = unrecognized(unknown, ours)
    if message:
        raise pytest.UsageError(message)


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
        baseline=load_baseline(option.baseline) if option.baseline else None,
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
    default_junit_path(config, settings)
    default_allure_dir(config, settings)
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
TARGET_FACTS = pytest.StashKey[dict[str, Any]]()  # until sent with a check's report


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Keep the run's redactor (built by the `run` fixture) for the records' free text, and
    what `discovery` found for the certificates.
    Building `run` starts the embedded deployment: time spent on the target, not the suite."""
    if fixturedef.argname == "discovery":
        found = yield
        if isinstance(found, Discovery) and RUN_SETTINGS in request.config.stash:
            redactor = request.config.stash.get(REDACTOR, None)
            embedded = request.config.stash[RUN_SETTINGS].embedded
            scrub = redactor.scrub if redactor else str
            request.config.stash[TARGET_FACTS] = target_facts(found, embedded, scrub)
        return found
    if fixturedef.argname != "run":
        return (yield)
    with waiting(exchange=False):
        value = yield
    if isinstance(value, fixtures.Run):
        request.config.stash[REDACTOR] = value.redactor
        # What exists by now lives as long as the run (the imported modules, the embedded
        # deployment): the garbage collector stops walking it again on every full collection
        # (~60 ms each; about a second less CPU per run).
        gc.freeze()
    return value


def redact_free_text(record: dict[str, Any], redactor: Redactor) -> None:
    """A check's messages, notes and reason are free text that may quote a credential; the
    evidence was redacted when it was recorded."""
    record["reason"] = redactor.scrub(record["reason"])
    record["notes"] = [redactor.scrub(note) for note in record["notes"]]
    for finding in record["findings"]:
        finding["message"] = redactor.scrub(finding["message"])


METER = pytest.StashKey[Meter]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, Any, Any]:
    """Meter each check (its record's `timing`), fixtures it sets up included."""
    if RUN_SETTINGS not in item.config.stash:
        return (yield)
    with metering() as meter:
        item.stash[METER] = meter
        return (yield)


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
    if METER in item.stash:
        record["timing"] = item.stash[METER].reading()
    redactor = item.config.stash.get(REDACTOR, None)
    if redactor is not None:
        redact_free_text(record, redactor)
    setattr(report, RECORD_ATTR, record)
    if TARGET_FACTS in item.config.stash:
        setattr(report, TARGET_ATTR, item.config.stash[TARGET_FACTS])
        del item.config.stash[TARGET_FACTS]
    label_outputs(item, report, record)
    outcome = record["outcome"]
    if outcome in (Outcome.FAILED, Outcome.ERROR):
        report.outcome = "failed"
        report.longrepr = failure_text(record)
    elif outcome in (Outcome.PASSED, Outcome.WARNING):
        report.outcome = "passed"
        report.longrepr = None
    baseline = item.config.stash[RUN_SETTINGS].baseline
    if baseline is not None:
        _apply_baseline_to_report(report, record, baseline)
    return report


def _apply_baseline_to_report(
    report: pytest.TestReport, record: dict[str, Any], baseline: Baseline
) -> None:
    """pytest's own view (terminal, JUnit XML, allure) of a baseline: a failure it expects is
    an expected failure (xfail), and a check it names that passes fails as stale (strict
    xpass). results.json keeps the check's real outcome."""
    reason = expected_reason(baseline, record)
    if reason is not None and report.outcome == "failed":
        report.outcome = "skipped"
        report.wasxfail = f"expected by the baseline: {reason}"
        return
    entry = stale_entry(baseline, record)
    if entry is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"STALE baseline entry: {record['id']} passes now but {baseline.file} expects it "
            f"to fail ({entry.reason}); remove it from the baseline"
        )


def label_outputs(item: pytest.Item, report: pytest.TestReport, record: dict[str, Any]) -> None:
    """JUnit properties (on the item, so that its teardown report, which JUnit XML writes
    from, carries them too) and, when allure is on, the check's allure labels."""
    from profiles import load_profiles

    selected = [load_profiles()[name] for name in item.config.stash[RUN_SETTINGS].profiles]
    properties = junit_properties(record, selected)
    item.user_properties.extend(properties)
    report.user_properties.extend(properties)
    if allure_active(item.config):
        label_check(record, selected)


def _record_of(report: pytest.TestReport) -> dict[str, Any] | None:
    return getattr(report, RECORD_ATTR, None)


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Before pytest renders the interrupt (see `conformance.interrupt`)."""
    number_traceback_lines(excinfo.value)


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
        self.targets: dict[str, dict[str, Any]] = {}  # target facts by worker ID ("" alone)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = list(session.items)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """A baseline entry for one parametrization must name a collected one (before any
        selection). Under xdist only the workers collect; there such an entry that names
        nothing just never matches."""
        if self.settings.baseline is not None and not _is_worker(self.config):
            try:
                check_parametrizations(self.settings.baseline, (check_id(i) for i in items))
            except ConfigError as exc:
                raise pytest.UsageError(str(exc)) from None

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
        facts = getattr(report, TARGET_ATTR, None)
        if facts is not None:
            self.targets[getattr(report, "worker_id", "")] = facts

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
        target, disagreement = agreed_target(self.targets)
        run["note"] = "; ".join(note for note in (run["note"], disagreement) if note)
        self.results = build_results(records, self.settings, run, target)
        if self.settings.report_dir is not None:
            formats = self.settings.report_formats or tuple(REPORT_FORMATS)
            write_reports(self.results, self.settings.report_dir, formats)
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            succeeded = run_succeeded(self.results)  # conformant, or accepted by the baseline
            session.exitstatus = pytest.ExitCode.OK if succeeded else pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.results is None:
            return
        from reports.terminal import write_summary

        write_summary(terminalreporter, self.results, self.settings.report_dir)


def main() -> None:  # pragma: no cover - convenience: python -m conformance
    sys.exit(pytest.main(sys.argv[1:]))
