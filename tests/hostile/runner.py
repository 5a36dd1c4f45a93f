"""Run the suite in a fresh process and measure it: wall time, peak memory, every connection.

`run_measured` is `run_suite` (tests/conftest.py) with what a hostile target calls for: the
child's own peak RSS (from `wait4`, so it is that process's and no other child's), the
socket guard plugin that logs and limits every outbound connection, and JUnit XML beside
the other reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT, SuiteRun, suite_command


@dataclass
class MeasuredRun:
    suite: SuiteRun
    elapsed: float  # seconds, start to exit
    max_rss_mb: float  # the child's peak resident set
    connections: list[dict[str, Any]]  # the socket guard's log: every connect and lookup

    @property
    def junit(self) -> Path:
        return self.suite.report_dir / "junit.xml"


def run_measured(tmp_path: Path, *args: str, timeout: float) -> MeasuredRun:
    """`pytest ARGS` from `tmp_path`, killed (and the test failed) after `timeout` seconds."""
    report_dir = tmp_path / "report"
    log = tmp_path / "connections.jsonl"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),  # the guard plugin lives in tests/
        "HOSTILE_CONNECT_LOG": str(log),
    }
    command = suite_command(
        report_dir,
        "-p",
        "tests.hostile.socket_guard",
        "-q",
        f"--junitxml={report_dir / 'junit.xml'}",
        *args,
    )
    started = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=stdout, stderr=stderr)
    status, usage = _wait(process, timeout)
    elapsed = time.monotonic() - started
    if status is None:
        raise AssertionError(f"the suite did not finish within {timeout:.0f} s: {out.read_text()}")
    connections = (
        [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    )
    suite = SuiteRun(status, out.read_text(), err.read_text(), report_dir)
    return MeasuredRun(suite, elapsed, usage.ru_maxrss / 1024, connections)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> tuple[int | None, Any]:
    """The exit code and resource usage of `process` (`wait4` reaps it, so `Popen` must not);
    None after killing it when it overruns `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage
        if time.monotonic() > deadline:
            process.kill()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            return None, usage
        time.sleep(0.05)
