"""The target configuration: the shipped example is valid; `${ENV}` values are expanded."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.config import load_config, parse_config
from conformance.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "examples" / "target-config.toml"


EXAMPLE_SECRETS = (
    "DCR_INITIAL_ACCESS_TOKEN",
    "ALICE_PASSWORD",
    "BOB_PASSWORD",
    "MCP_SERVER_CLIENT_SECRET",
    "IDP_CLIENT_SECRET",
    "IDP_CLIENT_2_SECRET",
    "RAS_CLIENT_SECRET",
    "RAS_CLIENT_2_SECRET",
    "AUDIT_READ_TOKEN",
)


def test_shipped_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in EXAMPLE_SECRETS:
        monkeypatch.setenv(name, f"value-of-{name}")
    config = load_config(EXAMPLE)
    assert config.user("alice").password == "value-of-ALICE_PASSWORD"  # type: ignore[union-attr]
    assert config.initial_access_token == "value-of-DCR_INITIAL_ACCESS_TOKEN"
    assert config.privileged_tool == "admin-report"
    assert config.token_exchange and config.token_exchange.client.client_secret == (
        "value-of-MCP_SERVER_CLIENT_SECRET"
    )
    assert config.id_jag and config.id_jag.ras_client.client_id == "conformance-agent"
    assert [(s.name, s.model) for s in config.downstream] == [
        ("salesforce", "token-exchange"),
        ("workday", "id-jag"),
    ]
    assert config.downstream[0].arguments == {"action": "get_opportunities"}
    assert config.audit and config.audit.bearer_token == "value-of-AUDIT_READ_TOKEN"
    assert config.lifetimes.refresh_token == 86400 and config.lifetimes.max_expiry_wait == 10


def test_downstream_names_are_unique() -> None:
    service = {
        "name": "crm",
        "tool": "crm-connector",
        "model": "token-exchange",
        "records_url": "http://127.0.0.1:1/_records",
        "resource": "http://127.0.0.1:1/api",
    }
    with pytest.raises(ConfigError, match="names must be unique"):
        parse_config({"downstream": [service, service]})


def test_audit_needs_one_source() -> None:
    with pytest.raises(ConfigError, match="exactly one of audit.url and audit.file"):
        parse_config({"audit": {}})


def test_unknown_exchange_model_is_named() -> None:
    service = {
        "name": "crm",
        "tool": "t",
        "model": "magic",
        "records_url": "http://127.0.0.1:1/_records",
        "resource": "http://127.0.0.1:1/api",
    }
    with pytest.raises(ConfigError, match="downstream.0.model"):
        parse_config({"downstream": [service]})


def test_preregistered_needs_a_public_client() -> None:
    with pytest.raises(ConfigError, match="client.public is missing"):
        parse_config({"client": {"registration": "preregistered"}})


def test_preregistered_clients_are_read() -> None:
    config = parse_config(
        {
            "client": {
                "public": {"client_id": "pub"},
                "confidential": {"client_id": "conf", "client_secret": "s3cret-value"},
            }
        }
    )
    assert config.registration == "preregistered"
    assert config.preregistered["confidential"].auth_method == "client_secret_basic"


def test_lifetimes_default_to_the_hook_or_nothing() -> None:
    config = parse_config({"hooks": {"lifetimes": "http://127.0.0.1:1/_test/lifetimes"}})
    assert config.lifetime_hook == "http://127.0.0.1:1/_test/lifetimes"
    assert config.lifetimes.access_token is None and config.lifetimes.refresh_token is None
    assert config.lifetimes.max_expiry_wait == 10


def test_declared_lifetimes_are_read() -> None:
    config = parse_config(
        {"lifetimes": {"access_token": 5, "refresh_token": 86400, "max_expiry_wait": 2.5}}
    )
    assert (config.lifetimes.access_token, config.lifetimes.refresh_token) == (5, 86400)
    assert config.lifetimes.max_expiry_wait == 2.5


@pytest.mark.parametrize(
    ("lifetimes", "message"),
    [
        ({"refresh_token": 0}, "lifetimes.refresh_token: 0 is less than the minimum of 1"),
        ({"max_expiry_wait": -1}, "lifetimes.max_expiry_wait: -1 is less than the minimum of 0"),
        ({"id_token": 60}, "unknown key lifetimes.id_token"),
    ],
)
def test_bad_lifetimes_are_one_line(lifetimes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        parse_config({"lifetimes": lifetimes})
    assert "\n" not in str(raised.value)
