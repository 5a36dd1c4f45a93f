"""The per-profile table on the terminal: coloured by verdict as pytest's colour settings
allow, kept by `-q` without the chatter, one line per profile with `-qq`."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from reports.terminal import TITLE, write_summary

GREEN, RED, YELLOW = "\x1b[32m", "\x1b[31m", "\x1b[33m"


def profile(name: str, conformant: bool = False, **counts: int) -> dict[str, Any]:
    every = dict.fromkeys(("passed", "failed", "warning", "skipped", "error", "not_run"), 0)
    return {"name": name, "conformant": conformant, "counts": every | counts}


def results(*profiles: dict[str, Any], complete: bool = True, note: str = "") -> dict[str, Any]:
    run = {"complete": complete, "note": note}
    return {"profiles": list(profiles), "run": run, "checks": []}


class Recorder:
    """A terminal reporter that keeps what it was asked to write, with its markup."""

    def __init__(self, verbosity: int) -> None:
        self.verbosity = verbosity
        self.lines: list[tuple[str, dict[str, bool]]] = []

    def section(self, title: str, sep: str = "=", **markup: bool) -> None:
        self.lines.append((f"{sep * 3} {title} {sep * 3}", markup))

    def write_line(self, line: str, **markup: bool) -> None:
        self.lines.append((line, markup))

    def colour_of(self, name: str) -> list[str]:
        return [next(iter(m)) for line, m in self.lines if line.startswith(f"{name} ") and m]


MIXED = results(
    profile("token-exchange", conformant=True, passed=24),
    profile("mcp-2025-11-25", passed=90, failed=1, not_run=7),
    profile("dpop", not_run=29),
    profile("id-jag", passed=35, error=1),
    profile("oauth-2.1-as", passed=59, failed=1) | {"accepted": True},
)


def test_profile_lines_are_coloured_by_verdict() -> None:
    terminal = Recorder(verbosity=0)
    write_summary(terminal, MIXED, Path("out"))
    assert terminal.colour_of("token-exchange") == ["green"]
    assert terminal.colour_of("mcp-2025-11-25") == ["red"]
    assert terminal.colour_of("id-jag") == ["yellow"]  # could not be judged: incomplete
    assert terminal.colour_of("dpop") == ["yellow"]  # nothing failed, nothing exercised
    assert terminal.colour_of("oauth-2.1-as") == ["yellow"]  # failures the baseline expects
    assert terminal.lines[0][0] == f"=== {TITLE} ==="
    assert terminal.lines[-1][0] == "reports written to out/"


def test_an_incomplete_run_is_yellow_and_says_so() -> None:
    terminal = Recorder(verbosity=0)
    interrupted = results(
        profile("dpop", passed=3, not_run=26), complete=False, note="interrupted: 3 of 250 ran"
    )
    write_summary(terminal, interrupted, None)
    row = next(line for line, _ in terminal.lines if line.startswith("dpop "))
    assert "INCOMPLETE" in row and terminal.colour_of("dpop") == ["yellow"]
    assert terminal.lines[-1] == (
        "INCOMPLETE RUN (interrupted: 3 of 250 ran): no profile is certified",
        {"yellow": True},
    )


def test_quiet_keeps_the_table_without_the_chatter() -> None:
    terminal = Recorder(verbosity=-1)
    write_summary(terminal, MIXED, Path("out"))
    text = [line for line, _ in terminal.lines]
    assert text[0] == f"=== {TITLE} ===" and text[1].startswith("profile ")
    assert len(text) == 3 + len(MIXED["profiles"])  # section, header, rule, one row each
    assert not any("reports written" in line for line in text)


def test_very_quiet_prints_one_line_per_profile() -> None:
    terminal = Recorder(verbosity=-2)
    write_summary(terminal, MIXED, Path("out"))
    assert terminal.lines == [
        ("token-exchange  CONFORMANT", {"green": True}),
        ("mcp-2025-11-25  NOT CONFORMANT", {"red": True}),
        ("dpop            INCOMPLETE", {"yellow": True}),
        ("id-jag          INCOMPLETE", {"yellow": True}),
        ("oauth-2.1-as    NOT CONFORMANT", {"yellow": True}),
    ]


# A run of two synthetic checks: one proves every token-exchange requirement (conformant),
# one breaks a MUST of mcp-2025-11-25 (not conformant); dpop is never exercised.
SYNTHETIC_CHECKS = textwrap.dedent("""
    import pytest
    from profiles import load_profiles

    @pytest.mark.requirement(*load_profiles()["token-exchange"].requirements)
    def test_every_token_exchange_requirement_holds(verdict):
        pass

    @pytest.mark.requirement("RS-MISSING-TOKEN-401")
    def test_must_violated(verdict):
        verdict.expect("RS-MISSING-TOKEN-401", False, "got 200")
""")
PROFILES = ["--profile", "token-exchange", "--profile", "mcp-2025-11-25", "--profile", "dpop"]


def synthetic_run(pytester: pytest.Pytester, *args: str) -> list[str]:
    pytester.makepyfile(test_synthetic=SYNTHETIC_CHECKS)
    result = pytester.runpytest_subprocess(
        "test_synthetic.py", "-p", "no:cacheprovider", "--target", "embedded", *PROFILES, *args
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    return result.outlines


def test_colour_follows_pytest_color_option(pytester: pytest.Pytester) -> None:
    lines = synthetic_run(pytester, "--color=yes")
    rows = {
        line.split()[0].removeprefix(GREEN).removeprefix(RED).removeprefix(YELLOW): line
        for line in lines
        if "CONFORMANT" in line or "INCOMPLETE" in line
    }
    assert rows["token-exchange"].startswith(GREEN)
    assert rows["mcp-2025-11-25"].startswith(RED)
    assert rows["dpop"].startswith(YELLOW) and "INCOMPLETE" in rows["dpop"]


def test_no_color_turns_colour_off_and_quiet_keeps_the_table(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # colour would be on, but for NO_COLOR
    monkeypatch.setenv("NO_COLOR", "1")
    lines = synthetic_run(pytester, "-q", "--report-dir", "out")
    assert not any("\x1b[" in line for line in lines)
    assert any(line.startswith("token-exchange  CONFORMANT") for line in lines)
    assert any(line.startswith("mcp-2025-11-25  NOT CONFORMANT") for line in lines)
    assert not any("reports written" in line for line in lines)
