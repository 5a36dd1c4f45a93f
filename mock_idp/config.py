"""The standalone IdP's TOML configuration file (`python -m mock_idp --config FILE`).

The format is documented in `mock_idp.__main__`. Parsing is strict: an unknown key or a
value of the wrong type is a `ConfigError` naming where it is.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mock_idp.settings import IdJagAudience, IdpClient, IdpUser

_TOP_KEYS = {
    "issuer",
    "users",
    "clients",
    "audiences",
    "id_jag_lifetime",
    "test_signer",
    "defects",
}


class ConfigError(ValueError):
    """A configuration file that cannot be read or does not follow the format."""


@dataclass(frozen=True)
class ConfigFile:
    """What a configuration file sets; None means "not given, keep the default"."""

    issuer: str | None = None
    users: tuple[IdpUser, ...] | None = None
    clients: tuple[IdpClient, ...] = ()
    audiences: tuple[IdJagAudience, ...] = ()
    id_jag_lifetime: int | None = None
    test_signer: bool = False
    defects: frozenset[str] = frozenset()


def load_config(path: str | Path) -> ConfigFile:
    """Read and check one TOML configuration file."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return parse_config(data, str(path))


def parse_config(data: Mapping[str, Any], where: str = "config") -> ConfigFile:
    """The `ConfigFile` a parsed TOML document describes."""
    _known_keys(data, _TOP_KEYS, where)
    users = data.get("users")
    lifetime = data.get("id_jag_lifetime")
    return ConfigFile(
        issuer=_optional_str(data, "issuer", where),
        users=None
        if users is None
        else tuple(
            _user(u, f"{where}: users[{i}]") for i, u in enumerate(_list(users, "users", where))
        ),
        clients=tuple(
            _client(c, f"{where}: clients[{i}]")
            for i, c in enumerate(_list(data.get("clients", []), "clients", where))
        ),
        audiences=tuple(
            _audience(a, f"{where}: audiences[{i}]")
            for i, a in enumerate(_list(data.get("audiences", []), "audiences", where))
        ),
        id_jag_lifetime=None if lifetime is None else _int(lifetime, "id_jag_lifetime", where),
        test_signer=_bool(data.get("test_signer", False), "test_signer", where),
        defects=frozenset(_str_list(data.get("defects", []), "defects", where)),
    )


def _user(value: object, where: str) -> IdpUser:
    table = _table(value, where)
    _known_keys(table, {"username", "password", "email", "name"}, where)
    username = _required_str(table, "username", where)
    return IdpUser(
        username=username,
        password=_required_str(table, "password", where),
        email=_optional_str(table, "email", where) or f"{username}@example.com",
        name=_optional_str(table, "name", where) or username,
    )


def _client(value: object, where: str) -> IdpClient:
    table = _table(value, where)
    _known_keys(table, {"client_id", "client_secret", "redirect_uris", "ras_client_ids"}, where)
    mapping = _table(table.get("ras_client_ids", {}), f"{where}: ras_client_ids")
    ras_client_ids = tuple(
        (issuer, _str(client_id, f"ras_client_ids.{issuer!r}", where))
        for issuer, client_id in mapping.items()
    )
    try:
        return IdpClient(
            client_id=_required_str(table, "client_id", where),
            client_secret=_optional_str(table, "client_secret", where),
            redirect_uris=_str_list(table.get("redirect_uris", []), "redirect_uris", where),
            ras_client_ids=ras_client_ids,
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _audience(value: object, where: str) -> IdJagAudience:
    table = _table(value, where)
    _known_keys(table, {"issuer", "resources", "scopes"}, where)
    return IdJagAudience(
        issuer=_required_str(table, "issuer", where),
        resources=_str_list(table.get("resources", []), "resources", where),
        scopes=_str_list(table.get("scopes", []), "scopes", where),
    )


def _known_keys(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s): {', '.join(unknown)}")


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table")
    return value


def _list(value: object, key: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key} must be an array")
    return value


def _str(value: object, key: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value


def _required_str(table: Mapping[str, Any], key: str, where: str) -> str:
    if key not in table:
        raise ConfigError(f"{where}: {key} is required")
    return _str(table[key], key, where)


def _optional_str(table: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if key not in table else _str(table[key], key, where)


def _str_list(value: object, key: str, where: str) -> tuple[str, ...]:
    return tuple(_str(item, f"{key} item", where) for item in _list(value, key, where))


def _int(value: object, key: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be an integer")
    return value


def _bool(value: object, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false")
    return value
