"""The house style holds: ruff-clean and formatted, mypy-clean library code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
LIBRARY = ["conformance", "reports", "profiles", "mock_idp", "mock_saas", "reference"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout


def test_code_is_formatted() -> None:
    result = _run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout


def test_library_code_type_checks() -> None:
    result = _run("mypy", *LIBRARY)
    assert result.returncode == 0, result.stdout
