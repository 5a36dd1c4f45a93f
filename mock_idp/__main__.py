"""Standalone mode: `python -m mock_idp --host 127.0.0.1 --port N [--client ID:SECRET:URI ...]
[--config FILE] [--test-signer]`.

Prints one line `mock_idp ready: issuer=<URL>` on stdout once it accepts connections. A
bad command line or configuration file is reported as one line on stderr, exit status 2.

`--config FILE` reads a TOML file; every key is optional, unknown keys are errors:

    issuer = "http://127.0.0.1:41000"  # default http://HOST:PORT; --issuer wins
    id_jag_lifetime = 300              # seconds an ID-JAG lives
    test_signer = true                 # expose POST /_test/sign (so does --test-signer)
    defects = ["idp-self-redeem"]      # IdP defect switches (reference/defects.py)

    [[users]]                          # replaces alice and bob when given
    username = "carol"
    password = "carol-password"
    email = "carol@example.com"        # default USERNAME@example.com
    name = "Carol Example"             # default USERNAME

    [[clients]]                        # added to the --client ones (ids must differ)
    client_id = "reference-as"
    client_secret = "reference-as-secret"  # omit for a public client
    redirect_uris = ["http://127.0.0.1:41001/callback"]
    [clients.ras_client_ids]           # RAS issuer -> this client's id at that RAS
    "http://127.0.0.1:41002" = "mcp-deployment"

    [[audiences]]                      # a resource AS the IdP issues ID-JAGs for
    issuer = "http://127.0.0.1:41002"
    resources = ["http://127.0.0.1:41002/ccx/api"]
    scopes = ["workers:read"]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import socket
import sys
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from mock_idp.app import create_app
from mock_idp.config import ConfigError, ConfigFile, load_config
from mock_idp.settings import DEFAULT_USERS, IdpClient, IdpSettings


class UsageError(Exception):
    """A bad command line, reported as one line on stderr."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mock_idp",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--issuer", help="default: http://HOST:PORT")
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET:REDIRECT_URI",
        help="register a client (repeatable; empty SECRET = public client; "
        "repeat an ID to add redirect URIs)",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration (format above)")
    parser.add_argument(
        "--test-signer", action="store_true", help="expose POST /_test/sign (loopback callers)"
    )
    parser.add_argument("--allow-non-loopback", action="store_true")
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_clients(specs: Sequence[str]) -> tuple[IdpClient, ...]:
    """`ID:SECRET:REDIRECT_URI` (the URI may contain colons); same ID adds redirect URIs."""
    clients: dict[str, IdpClient] = {}
    for spec in specs:
        parts = spec.split(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[2]:
            raise UsageError(f"--client must be ID:SECRET:REDIRECT_URI, got {spec!r}")
        client_id, secret, redirect_uri = parts
        previous = clients.get(client_id)
        if previous is not None and previous.client_secret != (secret or None):
            raise UsageError(f"--client {client_id!r} given with two different secrets")
        uris = (previous.redirect_uris if previous else ()) + (redirect_uri,)
        clients[client_id] = IdpClient(client_id, secret or None, uris)
    return tuple(clients.values())


def read_config(path: str | None) -> ConfigFile:
    if path is None:
        return ConfigFile()
    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(" ".join(str(exc).split())) from exc


def merge_clients(
    from_config: tuple[IdpClient, ...], from_flags: tuple[IdpClient, ...]
) -> tuple[IdpClient, ...]:
    """The configuration file's clients, then the `--client` ones; an id may not be in both."""
    both = sorted({c.client_id for c in from_config} & {c.client_id for c in from_flags})
    if both:
        raise UsageError(f"client(s) {', '.join(both)} given both in --config and --client")
    return from_config + from_flags


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY in asyncio
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def build_app(settings: IdpSettings) -> Starlette:
    """Serve the routes under the issuer's path, if it has one."""
    app = create_app(settings)
    path = urlsplit(settings.issuer).path
    return Starlette(routes=[Mount(path, app=app)]) if path else app


async def serve_app(
    sock: socket.socket,
    app: Any,
    log_level: str,
    ready_line: str,
    lifespan: Literal["auto", "on", "off"] = "off",
) -> None:
    """Serve `app` on `sock` until interrupted; print `ready_line` once it accepts connections."""
    config = uvicorn.Config(app, log_level=log_level, lifespan=lifespan)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        print(ready_line, flush=True)
    await task


async def serve(sock: socket.socket, settings: IdpSettings, log_level: str) -> None:
    await serve_app(
        sock, build_app(settings), log_level, f"mock_idp ready: issuer={settings.issuer}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not is_loopback(args.host) and not args.allow_non_loopback:
            raise UsageError(
                f"refusing to listen on non-loopback host {args.host!r}; "
                "pass --allow-non-loopback to override"
            )
        config = read_config(args.config)
        clients = merge_clients(config.clients, parse_clients(args.client))
        sock = bind(args.host, args.port)
        port = sock.getsockname()[1]
        host = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
        issuer = (args.issuer or config.issuer or f"http://{host}:{port}").rstrip("/")
        lifetime = config.id_jag_lifetime
        try:
            settings = IdpSettings(
                issuer=issuer,
                users=DEFAULT_USERS if config.users is None else config.users,
                clients=clients,
                audiences=config.audiences,
                defects=config.defects,
                test_signer=config.test_signer or args.test_signer,
                **({} if lifetime is None else {"id_jag_lifetime": lifetime}),
            )
        except ValueError as exc:
            sock.close()
            raise UsageError(str(exc)) from exc
    except UsageError as exc:
        print(f"mock_idp: error: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sock, settings, args.log_level))
    return 0


if __name__ == "__main__":
    sys.exit(main())
