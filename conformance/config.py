"""The target configuration: what cannot be discovered about a deployment.

A TOML file (`--target-config`), validated by `schemas/target-config.schema.json`, with
`${ENV}` references so secrets stay out of files. Every mistake becomes one `ConfigError`
line that names the key to fix.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from conformance.errors import ConfigError
from conformance.http import Limits

DEFAULT_REDIRECT_URI = "http://127.0.0.1:8765/callback"
DEFAULT_MAX_EXPIRY_WAIT = 10.0  # seconds an expiry check may wait for a token to expire
DEFAULT_CLOCK_SKEW = 60  # seconds of clock skew the MCP server may allow on exp, nbf and iat
DEFAULT_FUZZ_EXAMPLES = 20  # examples hypothesis generates per fuzz check (--fuzz-examples)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class UserCredentials:
    name: str
    username: str
    password: str


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str | None = None
    auth_method: str = "none"
    redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenExchangeConfig:
    """RFC 8693 exchange model: the MCP server's own client at its authorization server."""

    client: ClientCredentials
    token_endpoint: str | None = None
    resource: str | None = None
    scope: str | None = None


@dataclass(frozen=True)
class IdJagConfig:
    """Enterprise-managed authorization: the IdP that issues ID-JAGs and the clients involved."""

    idp_issuer: str
    idp_client: ClientCredentials
    ras_client: ClientCredentials
    other_idp_client: ClientCredentials | None = None
    other_ras_client: ClientCredentials | None = None
    ras_issuer: str | None = None
    resource: str | None = None
    scope: str | None = None
    idp_test_signer: str | None = None


@dataclass(frozen=True)
class DownstreamConfig:
    """A downstream service the MCP server calls as the user, witnessed by a mock SaaS."""

    name: str
    tool: str
    model: str  # "token-exchange" | "id-jag"
    records_url: str
    resource: str
    arguments: dict[str, Any] = field(default_factory=dict)
    faults_url: str | None = None
    issuer: str | None = None
    scopes: str | None = None
    max_token_lifetime: int = 3600


@dataclass(frozen=True)
class LifetimesConfig:
    """Token lifetimes (seconds) the AS gives the test clients, for expiry checks when there is
    no lifetime hook, and the longest an expiry check may wait."""

    access_token: int | None = None
    refresh_token: int | None = None
    max_expiry_wait: float = DEFAULT_MAX_EXPIRY_WAIT
    clock_skew: int = DEFAULT_CLOCK_SKEW


@dataclass(frozen=True)
class AuditConfig:
    url: str | None = None
    file: str | None = None
    bearer_token: str | None = None


@dataclass(frozen=True)
class TargetConfig:
    mcp_url: str | None = None
    authorization_server: str | None = None
    second_resource: str | None = None
    protocol_version: str = "2025-11-25"
    allowed_hosts: tuple[str, ...] = ()
    basic_scope: str | None = None
    privileged_scope: str | None = None
    privileged_tool: str | None = None
    registration: str = "dcr"
    registration_endpoint: str | None = None
    initial_access_token: str | None = None
    redirect_uri: str = DEFAULT_REDIRECT_URI
    preregistered: dict[str, ClientCredentials] = field(default_factory=dict)
    login_driver: str = "form"
    username_field: str = "username"
    password_field: str = "password"
    login_max_steps: int = 12
    users: tuple[UserCredentials, ...] = ()
    token_signer: str | None = None
    lifetime_hook: str | None = None
    lifetimes: LifetimesConfig = field(default_factory=LifetimesConfig)
    limits: Limits = field(default_factory=Limits)  # per HTTP exchange (`[limits]`)
    token_exchange: TokenExchangeConfig | None = None
    id_jag: IdJagConfig | None = None
    downstream: tuple[DownstreamConfig, ...] = ()
    audit: AuditConfig | None = None

    def user(self, name: str) -> UserCredentials | None:
        return next((u for u in self.users if u.name == name), None)


def _schema() -> dict[str, Any]:
    text = resources.files("conformance.schemas").joinpath("target-config.schema.json")
    return json.loads(text.read_text("utf-8"))


def _expand(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"target config: {path} uses ${{{name}}}, which is not set")
            return os.environ[name]

        return _ENV.sub(replace, value)
    return value


def _error_line(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        prefix = "" if where == "(top level)" else f"{where}."
        return f"unknown key {prefix}{extra[0]} (allowed: {allowed})"
    return f"{where}: {error.message}"


def _client(c: dict[str, Any]) -> ClientCredentials:
    return ClientCredentials(
        client_id=c["client_id"],
        client_secret=c.get("client_secret"),
        auth_method=c.get(
            "auth_method", "client_secret_basic" if c.get("client_secret") else "none"
        ),
        redirect_uris=tuple(c.get("redirect_uris", ())),
    )


def _token_exchange(data: dict[str, Any] | None) -> TokenExchangeConfig | None:
    if data is None:
        return None
    client = _client(
        {k: data[k] for k in ("client_id", "client_secret", "auth_method") if k in data}
    )
    return TokenExchangeConfig(
        client, data.get("token_endpoint"), data.get("resource"), data.get("scope")
    )


def _id_jag(data: dict[str, Any] | None) -> IdJagConfig | None:
    if data is None:
        return None
    optional = {k: _client(data[k]) for k in ("other_idp_client", "other_ras_client") if k in data}
    return IdJagConfig(
        idp_issuer=data["idp_issuer"],
        idp_client=_client(data["idp_client"]),
        ras_client=_client(data["ras_client"]),
        ras_issuer=data.get("ras_issuer"),
        resource=data.get("resource"),
        scope=data.get("scope"),
        idp_test_signer=data.get("idp_test_signer"),
        **optional,
    )


def _downstream(items: list[dict[str, Any]], source: str) -> tuple[DownstreamConfig, ...]:
    services = tuple(DownstreamConfig(**item) for item in items)
    names = [s.name for s in services]
    if len(names) != len(set(names)):
        raise ConfigError(f"{source}: downstream service names must be unique")
    return services


def _audit(data: dict[str, Any] | None, source: str) -> AuditConfig | None:
    if data is None:
        return None
    if bool(data.get("url")) == bool(data.get("file")):
        raise ConfigError(f"{source}: audit needs exactly one of audit.url and audit.file")
    return AuditConfig(data.get("url"), data.get("file"), data.get("bearer_token"))


def _limits(data: dict[str, Any]) -> Limits:
    """`[limits]`: the defaults of `Limits`, with what the file sets (the schema checks types)."""
    return replace(Limits(), **data)


def _lifetimes(data: dict[str, Any]) -> LifetimesConfig:
    return LifetimesConfig(
        access_token=data.get("access_token"),
        refresh_token=data.get("refresh_token"),
        max_expiry_wait=float(data.get("max_expiry_wait", DEFAULT_MAX_EXPIRY_WAIT)),
        clock_skew=int(data.get("clock_skew", DEFAULT_CLOCK_SKEW)),
    )


def parse_config(data: dict[str, Any], source: str = "target config") -> TargetConfig:
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(data), key=str)
    if errors:
        raise ConfigError(f"{source}: {_error_line(errors[0])}")
    data = _expand(data, "")
    target, scopes = data.get("target", {}), data.get("scopes", {})
    client, login = data.get("client", {}), data.get("login", {})
    preregistered = {
        role: _client(c)
        for role, c in client.items()
        if role in ("public", "confidential", "second_public")
    }
    registration = client.get("registration", "preregistered" if preregistered else "dcr")
    if registration == "preregistered" and "public" not in preregistered:
        raise ConfigError(
            f"{source}: client.registration is 'preregistered' but client.public is missing"
        )
    return TargetConfig(
        mcp_url=target.get("mcp_url"),
        authorization_server=target.get("authorization_server"),
        second_resource=target.get("second_resource"),
        protocol_version=target.get("protocol_version", "2025-11-25"),
        allowed_hosts=tuple(target.get("allowed_hosts", ())),
        basic_scope=scopes.get("basic"),
        privileged_scope=scopes.get("privileged"),
        privileged_tool=scopes.get("privileged_tool"),
        registration=registration,
        registration_endpoint=client.get("registration_endpoint"),
        initial_access_token=client.get("initial_access_token"),
        redirect_uri=client.get("redirect_uri", DEFAULT_REDIRECT_URI),
        preregistered=preregistered,
        login_driver=login.get("driver", "form"),
        username_field=login.get("username_field", "username"),
        password_field=login.get("password_field", "password"),
        login_max_steps=login.get("max_steps", 12),
        users=tuple(UserCredentials(**u) for u in data.get("users", ())),
        token_signer=data.get("hooks", {}).get("token_signer"),
        lifetime_hook=data.get("hooks", {}).get("lifetimes"),
        lifetimes=_lifetimes(data.get("lifetimes", {})),
        limits=_limits(data.get("limits", {})),
        token_exchange=_token_exchange(data.get("token_exchange")),
        id_jag=_id_jag(data.get("id_jag")),
        downstream=_downstream(data.get("downstream", []), source),
        audit=_audit(data.get("audit"), source),
    )


def load_config(path: str | Path) -> TargetConfig:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--target-config {path}: no such file")
    try:
        data = tomllib.loads(file.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--target-config {path}: not valid TOML ({exc})") from None
    return parse_config(data, source=str(path))
