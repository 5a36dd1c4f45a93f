"""Ctrl-C in the middle of a certification still leaves a valid, partial report.

The whole suite runs against the embedded reference in a fresh process; once some checks have
passed it gets SIGINT, as from Ctrl-C in a terminal. It must end within `STOP_BOUND` seconds
(the embedded servers shut down side by side, each given 2 s to finish what it serves), stop
every embedded server, and write results.json, summary.md and junit.xml that say the run was
interrupted: the checks it never reached are `not_run`, and no profile is certified.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from conformance.interrupt import number_traceback_lines
from reports import results_schema
from tests.conftest import SuiteRun, suite_command

CHECKS_BEFORE_INTERRUPT = 20
STOP_BOUND = 10.0  # seconds from SIGINT to exit
START_BOUND = 60.0  # seconds until CHECKS_BEFORE_INTERRUPT checks have passed


def _interrupted_run(tmp_path: Path) -> tuple[SuiteRun, float]:
    """The run, and the seconds it took to exit after SIGINT."""
    report_dir = tmp_path / "report"
    process = subprocess.Popen(
        suite_command(
            report_dir,
            "-v",  # one line per finished check
            "--target",
            "embedded",
            f"--junitxml={report_dir / 'junit.xml'}",
        ),
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    started, passed, lines = time.monotonic(), 0, []
    try:
        for line in process.stdout:
            lines.append(line)
            passed += " PASSED" in line
            if passed == CHECKS_BEFORE_INTERRUPT:
                break
            assert time.monotonic() - started < START_BOUND, "".join(lines[-20:])
        assert passed == CHECKS_BEFORE_INTERRUPT, "".join(lines[-20:])
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=STOP_BOUND + 20)
        stopped = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return SuiteRun(process.returncode, "".join(lines) + rest, "", report_dir), stopped


def test_interrupted_run_leaves_a_valid_partial_report(tmp_path: Path) -> None:
    """Bounded: 60 s to reach 20 passed checks, then at most 10 s from SIGINT to exit."""
    run, stopped = _interrupted_run(tmp_path)
    assert stopped < STOP_BOUND, f"{stopped:.1f} s from SIGINT to exit"
    assert run.exit_code == 2, run.stdout[-3000:]  # pytest's "interrupted"
    results = run.results
    jsonschema.validate(results, results_schema())
    progress = results["run"]
    assert progress["interrupted"] and not progress["complete"]
    outcomes = [c["outcome"] for c in results["checks"]]
    assert len(outcomes) == progress["checks_collected"]
    assert outcomes.count("passed") >= CHECKS_BEFORE_INTERRUPT
    assert set(outcomes) == {"passed", "not_run"}
    assert outcomes.count("not_run") == progress["checks_collected"] - progress["checks_run"] > 0
    assert not any(p["conformant"] for p in results["profiles"])
    assert all(p["counts"]["not_run"] > 0 for p in results["profiles"])
    assert "Incomplete run" in (run.report_dir / "summary.md").read_text()
    # pytest's JUnit writer also lists the check that SIGINT caught in flight (its setup had
    # been reported); the results count it as not run.
    cases = list(ET.parse(run.report_dir / "junit.xml").getroot().iter("testcase"))
    assert progress["checks_run"] <= len(cases) <= progress["checks_run"] + 1
    _assert_servers_stopped(results)


def _assert_servers_stopped(results: dict) -> None:
    """Every embedded server the run talked to refuses connections now."""
    ports = {
        int(port)
        for check in results["checks"]
        for exchange in check["evidence"]
        for port in re.findall(r"^https?://127\.0\.0\.1:(\d+)/", exchange["url"])
    }
    assert ports, "the report holds no exchange with the embedded servers"
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listens"


INTERRUPTED_CHECK = """
import types


def test_interrupted():
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        head = exc.__traceback__
        offset = next(s for s, _, line in head.tb_frame.f_code.co_lines() if line is None)
        head.tb_next = types.TracebackType(None, head.tb_frame, offset, -1)
        raise
"""


@pytest.mark.parametrize(("plugin", "exit_code"), [("", 2), ("-p no:mcp_auth_conformance", 1)])
def test_interrupt_without_a_line_ends_as_interrupted(
    pytester: pytest.Pytester, plugin: str, exit_code: int
) -> None:
    """With the plugin loaded, a KeyboardInterrupt with a lineless entry ends the run as
    "interrupted" (2); without it, pytest's rendering fails and the run is an internal error."""
    pytester.makepyfile(test_interrupted=INTERRUPTED_CHECK)
    result = pytester.runpytest_subprocess(*plugin.split(), "-p", "no:cacheprovider")
    assert result.ret == exit_code, result.outlines[-20:]


def _interrupt_without_lines() -> KeyboardInterrupt:
    """A KeyboardInterrupt whose traceback, and the one of the exception it interrupted, each
    have an entry with no line, as when a signal lands on an instruction without a line."""

    def interrupted() -> KeyboardInterrupt:
        try:
            try:
                raise ValueError("in flight")
            except ValueError:
                raise KeyboardInterrupt  # noqa: B904  # as a signal handler raises it
        except KeyboardInterrupt as exc:
            return exc

    interrupt = interrupted()
    for exc in (interrupt, interrupt.__context__):
        assert exc is not None and exc.__traceback__ is not None
        head = exc.__traceback__
        # The exception-cleanup instructions Python adds map to no line.
        offset = next(s for s, _, line in head.tb_frame.f_code.co_lines() if line is None)
        lineless = types.TracebackType(None, head.tb_frame, offset, -1)
        assert lineless.tb_lineno is None
        head.tb_next = lineless
    return interrupt


def test_interrupt_at_an_instruction_without_a_line_renders() -> None:
    """pytest renders the interrupt once the entries have lines (it raises TypeError before:
    the case CI met, where the run ended as an internal error instead of "interrupted")."""
    with pytest.raises(TypeError):
        pytest.ExceptionInfo.from_exception(_interrupt_without_lines()).getrepr(funcargs=True)
    interrupt = _interrupt_without_lines()
    number_traceback_lines(interrupt)
    rendered = str(pytest.ExceptionInfo.from_exception(interrupt).getrepr(funcargs=True))
    assert "KeyboardInterrupt" in rendered and "ValueError: in flight" in rendered
