"""The vendor path: certify a deployment by URL with a target config, not `--target embedded`.

The reference is started in this process, as a vendor's deployment would be running
somewhere, and the suite sees it only through `--target URL` and a TOML target config.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance import embedded
from conformance.config import ClientCredentials, TargetConfig
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
lifetimes = "{config.lifetime_hook}"
{users}{_second_hop_toml(config)}"""


def _client_toml(client: ClientCredentials, env: str) -> str:
    return f'{{ client_id = "{client.client_id}", client_secret = "${{{env}}}" }}'


def _second_hop_toml(config: TargetConfig) -> str:
    """The second-hop sections, secrets as ${ENV} references (see `_secrets`)."""
    assert config.token_exchange and config.id_jag and config.audit
    id_jag = config.id_jag
    assert id_jag.other_idp_client and id_jag.other_ras_client
    services = "".join(
        f"""
[[downstream]]
name = "{s.name}"
tool = "{s.tool}"
arguments = {{ action = "{s.arguments["action"]}" }}
model = "{s.model}"
records_url = "{s.records_url}"
faults_url = "{s.faults_url}"
resource = "{s.resource}"
issuer = "{s.issuer}"
scopes = "{s.scopes}"
"""
        for s in config.downstream
    )
    return f"""
[token_exchange]
client_id = "{config.token_exchange.client.client_id}"
client_secret = "${{EXCHANGE_SECRET}}"

[id_jag]
idp_issuer = "{id_jag.idp_issuer}"
idp_test_signer = "{id_jag.idp_test_signer}"
idp_client = {_client_toml(id_jag.idp_client, "IDP_SECRET")}
other_idp_client = {_client_toml(id_jag.other_idp_client, "IDP_SECRET_2")}
ras_client = {_client_toml(id_jag.ras_client, "RAS_SECRET")}
other_ras_client = {_client_toml(id_jag.other_ras_client, "RAS_SECRET_2")}
{services}
[audit]
url = "{config.audit.url}"
bearer_token = "${{AUDIT_TOKEN}}"
"""


def _secrets(config: TargetConfig) -> dict[str, str | None]:
    assert config.token_exchange and config.id_jag and config.audit
    id_jag = config.id_jag
    assert id_jag.other_idp_client and id_jag.other_ras_client
    return {
        "EXCHANGE_SECRET": config.token_exchange.client.client_secret,
        "IDP_SECRET": id_jag.idp_client.client_secret,
        "IDP_SECRET_2": id_jag.other_idp_client.client_secret,
        "RAS_SECRET": id_jag.ras_client.client_secret,
        "RAS_SECRET_2": id_jag.other_ras_client.client_secret,
        "AUDIT_TOKEN": config.audit.bearer_token,
    }


def test_deployment_certified_by_url_and_target_config(
    deployment: embedded.EmbeddedDeployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for user in deployment.config.users:
        monkeypatch.setenv(f"PW_{user.name.upper()}", user.password)
    for name, value in _secrets(deployment.config).items():
        assert value
        monkeypatch.setenv(name, value)
    config_file = tmp_path / "target.toml"
    config_file.write_text(_config_toml(deployment))
    run = run_suite(tmp_path, "--target", deployment.mcp_url, "--target-config", str(config_file))
    outcomes = run.check_outcomes()
    assert run.exit_code == 0, run.stdout[-3000:]
    # The suite serves client ID metadata documents on loopback, out of a remote target's reach:
    # those checks are skipped, saying so; everything else passes.
    skipped = {check for check, outcome in outcomes.items() if outcome == "skipped"}
    assert all("test_client_id_metadata_documents.py" in check for check in skipped), skipped
    assert outcomes and set(outcomes.values()) <= {"passed", "skipped"}
    assert any("[workday]" in check for check in outcomes)  # the second hop ran too
    assert run.results["target"] == {"url": deployment.mcp_url, "embedded": False, "defects": []}
