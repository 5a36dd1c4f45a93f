"""The target configuration: the shipped example is valid; `${ENV}` values are expanded."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.config import load_config, parse_config
from conformance.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "examples" / "target-config.toml"


def test_shipped_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DCR_INITIAL_ACCESS_TOKEN", "ALICE_PASSWORD", "BOB_PASSWORD"):
        monkeypatch.setenv(name, f"value-of-{name}")
    config = load_config(EXAMPLE)
    assert config.user("alice").password == "value-of-ALICE_PASSWORD"  # type: ignore[union-attr]
    assert config.initial_access_token == "value-of-DCR_INITIAL_ACCESS_TOKEN"
    assert config.privileged_tool == "admin-report"


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
