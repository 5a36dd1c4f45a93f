"""Shared helpers for the self-tests: run the suite as a user would, read what it wrote."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SUITE_TIMEOUT = 180  # seconds; a full run against the embedded reference takes a few


@dataclass
class SuiteRun:
    exit_code: int
    stdout: str
    stderr: str
    report_dir: Path

    @property
    def results(self) -> dict[str, Any]:
        return json.loads((self.report_dir / "results.json").read_text())

    def check_outcomes(self) -> dict[str, str]:
        return {c["id"]: c["outcome"] for c in self.results["checks"]}

    def requirement_outcomes(self) -> dict[str, str]:
        return {r["id"]: r["outcome"] for r in self.results["requirements"]}


def suite_options(report_dir: Path | str, *args: str) -> list[str]:
    """pytest's arguments for a certification as a user runs it, writing to `report_dir`."""
    return ["-p", "no:cacheprovider", "--report-dir", str(report_dir), *args]


def suite_command(report_dir: Path | str, *args: str) -> list[str]:
    """`python -m pytest` with `suite_options`, for a fresh process."""
    return [sys.executable, "-m", "pytest", *suite_options(report_dir, *args)]


def run_suite(tmp_path: Path, *args: str, timeout: float = SUITE_TIMEOUT) -> SuiteRun:
    """`pytest ARGS --report-dir DIR` in a fresh process, from a directory outside the repo."""
    report_dir = tmp_path / "report"
    completed = subprocess.run(
        suite_command(report_dir, "-q", *args),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return SuiteRun(completed.returncode, completed.stdout, completed.stderr, report_dir)


# Imported once by a fork server; each forked run skips ~3 s of imports (the defect matrix
# runs the suite once per defect). Not the suite's plugin modules: pytest must import those
# itself so that their asserts are rewritten.
_PRELOAD = [
    "httpx",
    "hypothesis",
    "jsonschema",
    "jwt",
    "mcp",
    "starlette.applications",
    "uvicorn",
    "mock_idp",
    "mock_saas",
    "reference.authorization_server",
    "reference.mcp_server",
]
_forkserver: Any = None


def _forked_pytest(args: list[str], cwd: str, out: str, err: str) -> None:
    os.chdir(cwd)
    with open(out, "w") as stdout, open(err, "w") as stderr:
        os.dup2(stdout.fileno(), 1)
        os.dup2(stderr.fileno(), 2)
    code = pytest.main(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


def run_suite_forked(tmp_path: Path, *args: str, timeout: float = SUITE_TIMEOUT) -> SuiteRun:
    """As `run_suite`, in a process forked from a server that has the heavy modules loaded."""
    global _forkserver
    if _forkserver is None:
        _forkserver = multiprocessing.get_context("forkserver")
        _forkserver.set_forkserver_preload(_PRELOAD)
    report_dir = tmp_path / "report"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    # The preloaded packages are part of the suite's distribution, which pytest marks for
    # assertion rewriting; they hold no asserts that checks rely on.
    quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    argv = suite_options(report_dir, "-q", *quiet, *args)
    process = _forkserver.Process(
        target=_forked_pytest, args=(argv, str(tmp_path), str(out), str(err))
    )
    process.start()
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        process.join()
        pytest.fail(f"the suite did not finish within {timeout:.0f} s")
    read = lambda path: path.read_text() if path.exists() else ""  # noqa: E731
    return SuiteRun(process.exitcode, read(out), read(err), report_dir)


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """The whole suite against the clean embedded reference, once per test session."""
    return run_suite_forked(tmp_path_factory.mktemp("clean"), "--target", "embedded")


def _read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


@contextlib.contextmanager
def standalone(module: str, *args: str, timeout: float = 30) -> Iterator[str]:
    """Run `python -m MODULE ARGS` from the repo root; yield its ready line; stop it after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        try:
            ready = lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{module} printed no ready line within {timeout:.0f} s")
        yield ready.strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
