"""Standalone mode: `python -m mock_saas --service salesforce|workday --host 127.0.0.1 --port N
[--base-url URL] [--trust-issuer ISSUER[=JWKS_URI] ...] [--idp ISSUER[=JWKS_URI]]
[--client ID:SECRET ...] [--service-key KEY ...] [--require-dpop]`.

Prints one line `mock_saas ready: service=<kind> base_url=<URL>` on stdout once it accepts
connections. Bad arguments: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from collections.abc import Sequence
from typing import NoReturn

from mock_idp.__main__ import UsageError, bind, is_loopback, serve_app
from mock_saas.app import create_app
from mock_saas.settings import SERVICE_KINDS, SaasClient, SaasSettings, TrustedIssuer


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m mock_saas", description=__doc__)
    parser.add_argument("--service", required=True, choices=sorted(SERVICE_KINDS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--base-url", help="the service's origin; default: http://HOST:PORT")
    parser.add_argument(
        "--trust-issuer",
        action="append",
        default=[],
        metavar="ISSUER[=JWKS_URI]",
        help="accept JWT access tokens from this AS (repeatable; without JWKS_URI it is "
        "discovered from the issuer's metadata)",
    )
    parser.add_argument(
        "--idp", metavar="ISSUER[=JWKS_URI]", help="redeem ID-JAGs issued by this IdP"
    )
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET",
        help="a confidential client of the service's own AS (repeatable)",
    )
    parser.add_argument(
        "--service-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a static integration-user API key that sees every user's data (repeatable)",
    )
    parser.add_argument("--token-lifetime", type=int, default=300, metavar="SECONDS")
    parser.add_argument(
        "--require-dpop",
        action="store_true",
        help="bind tokens to a DPoP key and accept only DPoP-bound tokens with a proof",
    )
    parser.add_argument("--allow-non-loopback", action="store_true")
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def parse_issuer(spec: str) -> TrustedIssuer:
    """`ISSUER[=JWKS_URI]`; issuers have no query, so the first `=` separates the two."""
    issuer, _, jwks_uri = spec.partition("=")
    if not issuer.startswith(("http://", "https://")):
        raise UsageError(f"issuer must be an http(s) URL, got {spec!r}")
    if jwks_uri and not jwks_uri.startswith(("http://", "https://")):
        raise UsageError(f"JWKS URI must be an http(s) URL, got {spec!r}")
    return TrustedIssuer(issuer.rstrip("/"), jwks_uri or None)


def parse_client(spec: str) -> SaasClient:
    """`ID:SECRET` (the secret may contain colons)."""
    client_id, _, secret = spec.partition(":")
    if not client_id or not secret:
        raise UsageError(f"--client must be ID:SECRET, got {spec!r}")
    return SaasClient(client_id, secret)


def build_settings(args: argparse.Namespace, base_url: str) -> SaasSettings:
    try:
        return SaasSettings(
            kind=args.service,
            base_url=base_url,
            trusted_issuers=tuple(parse_issuer(spec) for spec in args.trust_issuer),
            idp=parse_issuer(args.idp) if args.idp else None,
            clients=tuple(parse_client(spec) for spec in args.client),
            service_keys=tuple(args.service_key),
            token_lifetime=args.token_lifetime,
            require_dpop=args.require_dpop,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


async def serve(sock: socket.socket, settings: SaasSettings, log_level: str) -> None:
    ready = f"mock_saas ready: service={settings.kind} base_url={settings.base_url}"
    await serve_app(sock, create_app(settings), log_level, ready, lifespan="on")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if not is_loopback(args.host) and not args.allow_non_loopback:
            raise UsageError(
                f"refusing to listen on non-loopback host {args.host!r}; "
                "pass --allow-non-loopback to override"
            )
        sock = bind(args.host, args.port)
        port = sock.getsockname()[1]
        host = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
        try:
            settings = build_settings(args, (args.base_url or f"http://{host}:{port}").rstrip("/"))
        except UsageError:
            sock.close()
            raise
    except UsageError as exc:
        print(f"mock_saas: error: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sock, settings, args.log_level))
    return 0


if __name__ == "__main__":
    sys.exit(main())
