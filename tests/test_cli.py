"""The command line: every option of the suite explained in `--help`, and a bad value or a
mistyped option answered with one line that says what is valid, exit status 4 (usage error).

These run pytest in-process (no certification starts: each run ends at the command line).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.cli import unrecognized
from profiles import load_profiles
from reports import REPORT_FORMATS

SECTION = "MCP authorization conformance:"


def usage_error(pytester: pytest.Pytester, *args: str) -> str:
    """The one line a usage error printed (the test fails unless it is exactly one)."""
    result = pytester.runpytest_inprocess(*args)
    output = [line for line in result.outlines + result.errlines if line.strip()]
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert len(output) == 1, output
    assert "Traceback" not in output[0]
    return output[0]


def help_entries(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> dict[str, list[str]]:
    """The group's options in `pytest --help`, each with its lines of help text."""
    monkeypatch.setenv("COLUMNS", "1000")  # wide enough that no help needs to wrap
    result = pytester.runpytest_inprocess("--help")
    assert result.ret == pytest.ExitCode.OK
    lines = result.outlines[result.outlines.index(SECTION) + 1 :]
    entries: dict[str, list[str]] = {}
    for line in lines[: lines.index("")]:
        option = re.match(r"  (--[a-z-]+)(?:=\S+)?(.*)", line)
        if option:
            current = entries.setdefault(option.group(1), [])
            text = option.group(2).strip()
        else:
            text = line.strip()  # help continued on the next line
        if text:
            current.append(text)
    return entries


def test_every_option_has_a_one_line_help(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = help_entries(pytester, monkeypatch)
    assert {"--target", "--target-config", "--profile", "--report-dir", "--defect"} <= set(entries)
    for option, text in entries.items():
        assert len(text) == 1 and len(text[0]) > 30, (option, text)


def test_help_lists_the_valid_choices(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = help_entries(pytester, monkeypatch)
    listed = entries["--profile"][0].rsplit(": ", 1)[1].rstrip(".").split(", ")
    assert listed == list(load_profiles())
    listed = entries["--report-format"][0].rsplit(": ", 1)[1].rstrip(".").split(", ")
    assert listed == list(REPORT_FORMATS)
    assert "see --list-defects" in entries["--defect"][0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--fuzz-examples", "abc"], "--fuzz-examples abc: give one or more"),
        (["--fuzz-examples", "0"], "--fuzz-examples 0: give one or more"),
        (["--http-timeout", "-1"], "--http-timeout -1: give more than zero seconds"),
        (["--http-timeout", "soon"], "--http-timeout soon: give more than zero seconds"),
        (["--http-timeout", "nan"], "--http-timeout nan: give more than zero seconds"),
        (["--max-expiry-wait", "-2"], "--max-expiry-wait -2: give zero or more seconds"),
        (["--max-expiry-wait", "inf"], "--max-expiry-wait inf: give zero or more seconds"),
        (["--profile", "nope"], "unknown --profile 'nope'; valid: " + ", ".join(load_profiles())),
        (["--report-format", "pdf"], "unknown --report-format 'pdf'; valid: json, markdown"),
        (["--defect", "nope"], "unknown --defect 'nope'; valid: prm-not-discoverable"),
        (["--target-config", "x.toml"], "--target-config is not used with --target embedded"),
    ],
)
def test_a_bad_value_gets_one_line_naming_what_is_valid(
    pytester: pytest.Pytester, args: list[str], expected: str
) -> None:
    assert expected in usage_error(pytester, "--target", "embedded", *args)


def test_a_target_that_is_not_a_url_gets_one_line(pytester: pytest.Pytester) -> None:
    line = usage_error(pytester, "--target", "mcp.example.com")
    assert "neither an http(s) URL nor 'embedded'" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--targt", "embedded"], "--targt (did you mean --target?)"),
        (["--target", "embedded", "--profiles", "dpop"], "--profiles (did you mean --profile?)"),
        (
            ["--target=embedded", "--report_dir=out"],
            "--report_dir=out (did you mean --report-dir?)",
        ),
        (["--list-defect"], "--list-defect (did you mean --list-defects"),
    ],
)
def test_a_mistyped_option_gets_one_line_naming_the_closest(
    pytester: pytest.Pytester, args: list[str], expected: str
) -> None:
    line = usage_error(pytester, *args)
    assert line.startswith("ERROR: unrecognized arguments: ") and expected in line, line


def test_other_unknown_options_keep_pytest_own_message(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--no-such-option")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unrecognized arguments: --no-such-option" in "\n".join(result.errlines)
    assert "did you mean" not in "\n".join(result.errlines)


def test_suggestions_name_only_close_options_of_ours() -> None:
    ours = ["--target", "--target-config", "--profile", "--http-timeout"]
    assert unrecognized(["--targte"], ours) == (
        "unrecognized arguments: --targte (did you mean --target?)"
    )
    assert unrecognized(["--colour=no"], ours) is None  # nothing of ours is close
    assert unrecognized(["--maxfail=2", "--profil"], ours) == (
        "unrecognized arguments: --maxfail=2, --profil (did you mean --profile?)"
    )


# The GitHub Actions example (examples/github-actions/certify.yml), read as text.
WORKFLOW = Path(__file__).parent.parent / "examples" / "github-actions" / "certify.yml"
TARGET_CONFIG = WORKFLOW.parent.parent / "target-config.toml"


def uncommented(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.strip().startswith("#")]


def test_the_ci_example_uses_only_options_the_suite_has(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = {m for line in uncommented(WORKFLOW) for m in re.findall(r"(?<![\w-])--[a-z-]+", line)}
    assert {"--target", "--target-config", "--profile", "--report-dir", "--baseline"} <= used
    assert used <= set(help_entries(pytester, monkeypatch)), used


def test_the_ci_example_passes_every_secret_of_the_example_config() -> None:
    referenced = {
        name for line in uncommented(TARGET_CONFIG) for name in re.findall(r"\$\{(\w+)\}", line)
    }
    assert referenced
    text = WORKFLOW.read_text()
    for name in referenced:
        assert f"{name}: ${{{{ secrets.{name} }}}}" in text, name


def test_the_ci_example_keeps_its_reports_whatever_the_outcome() -> None:
    steps = WORKFLOW.read_text().split("\n      - ")[1:]
    uses = [re.search(r"uses: (\S+)", step) for step in steps]
    assert all(u.group(1).startswith("actions/") for u in uses if u)  # GitHub's own actions
    uploads = [s for s in steps if "actions/upload-artifact" in s]
    assert len(uploads) == 2 and all("if: always()" in s for s in uploads)
    assert any("${{ env.REPORT_DIR }}/junit.xml" in s for s in uploads)
