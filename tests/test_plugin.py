"""The plugin's interface: options, listings, configuration errors, and verdict mapping."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conformance.catalogue import load_catalogue
from conformance.servers import ServerThread, bind_loopback
from reference.defects import DEFECTS
from tests.conftest import run_suite


def pytest_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def test_list_defects_prints_name_requirements_description(tmp_path: Path) -> None:
    result = pytest_cli("--list-defects", cwd=tmp_path)
    assert result.returncode == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert {row[0] for row in rows} == set(DEFECTS)
    for name, requirements, description in rows:
        assert requirements.split(",") == list(DEFECTS[name].requirements)
        assert description


def test_list_requirements_prints_the_catalogue(tmp_path: Path) -> None:
    result = pytest_cli("--list-requirements", cwd=tmp_path)
    assert result.returncode == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == list(load_catalogue())
    assert all(
        len(row) == 4 and row[1] in ("MUST", "SHOULD", "MAY") and "§" in row[2] for row in rows
    )


def test_unreachable_target_fails_fast_with_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    result = pytest_cli("--target", "http://127.0.0.1:9/mcp", cwd=tmp_path)
    assert time.monotonic() - started < 30
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "unreachable" in lines[0] and "--target" in lines[0]
    assert "Traceback" not in result.stderr


def test_non_mcp_target_is_named_as_such(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def page(request: object) -> HTMLResponse:
        return HTMLResponse("<h1>not here</h1>", status_code=404)

    server = ServerThread(
        Starlette(routes=[Route("/{p:path}", page, methods=["GET", "POST"])]),
        bind_loopback(),
        "not-mcp",
    ).start()
    try:
        result = pytest_cli("--target", f"{server.url}/mcp", cwd=tmp_path)
    finally:
        server.stop()
    lines = error_lines(result)
    assert result.returncode != 0
    assert len(lines) == 1 and "does not look like an MCP endpoint" in lines[0]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[target]\nmcp_urll = 'x'\n", "unknown key target.mcp_urll"),
        ("[login]\ndriver = 'browser'\n", "login.driver"),
        (
            "[[users]]\nname = 'alice'\nusername = 'alice'\npassword = '${NOT_SET_ANYWHERE}'\n",
            "NOT_SET_ANYWHERE",
        ),
        ("[target\n", "not valid TOML"),
    ],
)
def test_bad_target_config_names_what_to_fix(tmp_path: Path, toml: str, expected: str) -> None:
    config = tmp_path / "target.toml"
    config.write_text(toml)
    result = pytest_cli(
        "--target", "http://127.0.0.1:9/mcp", "--target-config", str(config), cwd=tmp_path
    )
    lines = error_lines(result)
    assert result.returncode != 0
    assert len(lines) == 1 and expected in lines[0], lines


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--profile", "nope"], "valid: dpop, enterprise, id-jag"),
        (["--defect", "nope"], "valid: prm-not-discoverable"),
    ],
)
def test_unknown_names_list_the_valid_ones(tmp_path: Path, args: list[str], expected: str) -> None:
    result = pytest_cli("--target", "embedded", *args, cwd=tmp_path)
    lines = error_lines(result)
    assert result.returncode != 0 and len(lines) == 1 and expected in lines[0]


def test_defect_needs_the_embedded_target(tmp_path: Path) -> None:
    result = pytest_cli(
        "--target", "http://127.0.0.1:9/mcp", "--defect", "rs-ignores-audience", cwd=tmp_path
    )
    assert result.returncode != 0 and "only with --target embedded" in result.stdout + result.stderr


def test_profile_option_selects_its_checks_and_reports_only_it(tmp_path: Path) -> None:
    run = run_suite(tmp_path, "--target", "embedded", "--profile", "oauth-2.1-as")
    assert run.exit_code == 0, run.stdout[-2000:]
    assert [p["name"] for p in run.results["profiles"]] == ["oauth-2.1-as"]
    assert not any(c["id"].startswith("resource_server/") for c in run.results["checks"])


SYNTHETIC_CHECKS = textwrap.dedent("""
    import pytest
    from conformance.errors import PreconditionFailed

    @pytest.mark.requirement("RS-MISSING-TOKEN-401")
    def test_must_violated(verdict):
        verdict.expect("RS-MISSING-TOKEN-401", False, "got 200")

    @pytest.mark.requirement("PRM-SCOPES-SUPPORTED")
    def test_should_violated(verdict):
        verdict.expect("PRM-SCOPES-SUPPORTED", False, "no scopes_supported")

    @pytest.mark.requirement("TOKEN-ERROR-FORMAT")
    def test_tolerated_variant(verdict):
        verdict.tolerate("TOKEN-ERROR-FORMAT", "invalid_client where invalid_request is preferred")

    @pytest.mark.requirement("RS-SCHEME-CASE-INSENSITIVE")
    def test_satisfied(verdict):
        verdict.expect("RS-SCHEME-CASE-INSENSITIVE", True, "unused")

    @pytest.mark.requirement("RS-TYP-AT-JWT")
    def test_not_applicable():
        pytest.skip("tokens are opaque")

    @pytest.mark.requirement("RS-ALG-NONE-401")
    def test_precondition_lost(verdict):
        verdict.precondition(False, "the known-good token was refused")

    @pytest.mark.requirement("RS-TAMPERED-TOKEN-401")
    def test_harness_fault(verdict):
        {}["missing"]

    @pytest.fixture
    def broken():
        raise PreconditionFailed("no client could be registered")

    @pytest.mark.requirement("DCR-REGISTER-201")
    def test_broken_fixture(broken):
        pass
""")


def test_findings_map_to_the_five_verdicts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_synthetic=SYNTHETIC_CHECKS)
    report_dir = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        "test_synthetic.py",
        "--target",
        "embedded",
        "--report-dir",
        str(report_dir),
        "-p",
        "no:cacheprovider",
    )
    checks = {
        c["id"].split("::")[1]: c
        for c in json.loads((report_dir / "results.json").read_text())["checks"]
    }
    assert {name: c["outcome"] for name, c in checks.items()} == {
        "test_must_violated": "failed",
        "test_should_violated": "warning",
        "test_tolerated_variant": "warning",
        "test_satisfied": "passed",
        "test_not_applicable": "skipped",
        "test_precondition_lost": "error",
        "test_harness_fault": "error",
        "test_broken_fixture": "error",
    }
    assert checks["test_not_applicable"]["reason"] == "tokens are opaque"
    assert "no client could be registered" in checks["test_broken_fixture"]["reason"]
    assert "RS-MISSING-TOKEN-401" in checks["test_must_violated"]["reason"]
    results = json.loads((report_dir / "results.json").read_text())
    strict = next(p for p in results["profiles"] if p["name"] == "mcp-strict")
    row = next(r for r in strict["requirements"] if r["id"] == "TOKEN-ERROR-FORMAT")
    assert row["outcome"] == "failed"  # the strict profile does not tolerate variants
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*RS-MISSING-TOKEN-401 (MUST): got 200*"])


def test_target_config_is_refused_with_the_embedded_target(tmp_path: Path) -> None:
    config = tmp_path / "target.toml"
    config.write_text("[target]\n")
    result = pytest_cli("--target", "embedded", "--target-config", str(config), cwd=tmp_path)
    lines = error_lines(result)
    assert result.returncode != 0 and len(lines) == 1 and "--target embedded" in lines[0]
