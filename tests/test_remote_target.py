"""The vendor path: certify a deployment by URL with a target config, not `--target embedded`.

The reference is started in this process, as a vendor's deployment would be running
somewhere, and the suite sees it only through `--target URL` and a TOML target config.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance import embedded
from tests.conftest import run_suite


@pytest.fixture(scope="module")
def deployment() -> Iterator[embedded.EmbeddedDeployment]:
    running = embedded.start()
    try:
        yield running
    finally:
        running.stop()


def _config_toml(deployment: embedded.EmbeddedDeployment) -> str:
    config = deployment.config
    users = "".join(
        f'\n[[users]]\nname = "{u.name}"\nusername = "{u.username}"\n'
        f'password = "${{PW_{u.name.upper()}}}"\n'
        for u in config.users
    )
    return f"""
[target]
second_resource = "{config.second_resource}"

[scopes]
basic = "{config.basic_scope}"
privileged = "{config.privileged_scope}"
privileged_tool = "{config.privileged_tool}"

[client]
registration = "dcr"

[login]
driver = "form"

[hooks]
token_signer = "{config.token_signer}"
{users}"""


def test_deployment_certified_by_url_and_target_config(
    deployment: embedded.EmbeddedDeployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for user in deployment.config.users:
        monkeypatch.setenv(f"PW_{user.name.upper()}", user.password)
    config_file = tmp_path / "target.toml"
    config_file.write_text(_config_toml(deployment))
    run = run_suite(tmp_path, "--target", deployment.mcp_url, "--target-config", str(config_file))
    outcomes = run.check_outcomes()
    assert run.exit_code == 0, run.stdout[-3000:]
    assert outcomes and set(outcomes.values()) == {"passed"}
    assert run.results["target"] == {"url": deployment.mcp_url, "embedded": False, "defects": []}
