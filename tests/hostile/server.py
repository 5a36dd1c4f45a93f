"""A hostile MCP target for the suite's own tests: real HTTP on loopback, broken on purpose.

Written on raw asyncio streams, because no HTTP framework misbehaves enough: it can stay
silent after reading a request, trickle a response one byte at a time forever, stream a
200 MB body generated on the fly, send a megabyte of header lines, loop redirects, redirect
off the loopback network, and serve metadata that sends the client elsewhere.

The server looks like an MCP deployment until the behaviour strikes: `POST /mcp` answers
401 with a `resource_metadata` challenge, and the protected resource and authorization
server metadata are served at their well-known URLs. The behaviour applies to the metadata
documents (`where="metadata"`) or to every path (`where="everywhere"`). Every connection
the server accepts is recorded with the requests it carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from conformance.servers import bind_loopback, url_of

OFF_NETWORK = "192.0.2.1"
"""TEST-NET-1 (RFC 5737): a non-loopback address nothing may ever be sent to."""

HUGE_BODY_BYTES = 200 * 1024 * 1024
HUGE_HEADER_BYTES = 1024 * 1024
TRICKLE_INTERVAL = 0.05  # seconds between bytes: 20 bytes a second, never a read timeout
_CHUNK = 64 * 1024
_MAX_REQUEST_HEAD = 64 * 1024


class Behaviour(StrEnum):
    NONE = "none"  # the plausible skeleton only
    SILENT = "silent"  # reads the request, never answers, keeps the connection open
    TRICKLE = "trickle"  # status line and header lines one byte at a time, forever
    HUGE_BODY = "huge-body"  # 200 OK with a 200 MB JSON-ish body, streamed
    HUGE_HEADERS = "huge-headers"  # 200 OK with 1 MB of header lines
    REDIRECT_LOOP = "redirect-loop"  # 302 to the same path, one more hop each time
    REDIRECT_AWAY = "redirect-away"  # 302 to another loopback address or off the network
    INVALID_JSON = "invalid-json"  # 200 application/json with a truncated document
    WRONG_CONTENT_TYPE = "wrong-content-type"  # 200 text/html: an SPA's catch-all page
    ELSEWHERE = "elsewhere"  # metadata whose every URL names another host


Where = Literal["metadata", "everywhere"]

_PRM = "/.well-known/oauth-protected-resource"
_AS_METADATA = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


@dataclass
class Connection:
    peer: str
    opened_at: float
    requests: list[str] = field(default_factory=list)  # "METHOD /path?query"


@dataclass
class _Request:
    method: str
    target: str

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


class HostileServer:
    """Serves one behaviour on a loopback address until `stop()` (or the `with` block ends)."""

    def __init__(
        self,
        behaviour: Behaviour,
        where: Where = "metadata",
        *,
        host: str = "127.0.0.1",
        elsewhere: str = f"https://{OFF_NETWORK}",
    ) -> None:
        self.behaviour = behaviour
        self.where = where
        # The other host that ELSEWHERE and REDIRECT_AWAY name. Its URLs say https, so that
        # the checks find nothing wrong with them but their host: whatever the scheme, a
        # connection to it would be recorded there.
        self.elsewhere = elsewhere.replace("http://", "https://")
        self.connections: list[Connection] = []
        self._sock = bind_loopback(host)
        self.url = url_of(self._sock)
        self.mcp_url = f"{self.url}/mcp"
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hostile-server", daemon=True)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> HostileServer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError(f"hostile server did not start on {self.url}")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._shutdown)
            self._thread.join(timeout=10)
        self._sock.close()

    def requests(self) -> list[str]:
        return [r for c in self.connections for r in c.requests]

    # --- the event loop ---------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, sock=self._sock, limit=_MAX_REQUEST_HEAD)
        )
        self._server = server
        self._started.set()
        self._loop.run_forever()
        server.close()
        for task in list(self._tasks):
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def _shutdown(self) -> None:
        self._server.close()
        self._loop.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        connection = Connection(f"{peer[0]}:{peer[1]}", time.monotonic())
        self.connections.append(connection)
        try:
            request = await _read_request(reader)
            if request is not None:
                connection.requests.append(f"{request.method} {request.target}")
                await self._respond(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client hung up, which is what the suite should do
        except asyncio.CancelledError:
            pass  # the server is stopping
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # --- what to answer ---------------------------------------------------------------

    def _hostile(self, path: str) -> bool:
        if self.behaviour in (Behaviour.NONE, Behaviour.ELSEWHERE):
            return False
        return self.where == "everywhere" or _is_metadata(path)

    async def _respond(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        if self._hostile(request.path):
            await _MISBEHAVIOURS[self.behaviour](self, request, writer)
        elif request.path == "/mcp":
            await _send(writer, 401, b"", [("WWW-Authenticate", self._challenge())])
        elif request.path in (f"{_PRM}/mcp", _PRM):
            await _send_json(writer, 200, self._resource_metadata())
        elif request.path == _AS_METADATA[0]:
            await _send_json(writer, 200, self._authorization_server_metadata())
        else:
            await _send_json(writer, 404, {"error": "not_found"})

    def _challenge(self) -> str:
        origin = self.elsewhere if self.behaviour is Behaviour.ELSEWHERE else self.url
        return f'Bearer resource_metadata="{origin}{_PRM}/mcp", scope="mcp:tools"'

    def _resource_metadata(self) -> dict[str, object]:
        servers = [self.url]
        if self.behaviour is Behaviour.ELSEWHERE:
            servers = [self.elsewhere, f"https://{OFF_NETWORK}", self.url]
        return {
            "resource": self.mcp_url,
            "authorization_servers": servers,
            "scopes_supported": ["mcp:tools"],
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": ["ES256"],
        }

    def _authorization_server_metadata(self) -> dict[str, object]:
        base = self.url
        if self.behaviour is Behaviour.ELSEWHERE:
            base = self.elsewhere
        return {
            "issuer": self.url,
            "authorization_endpoint": f"https://{OFF_NETWORK}/authorize",
            "token_endpoint": f"{base}/token",
            "registration_endpoint": f"{base}/register",
            "jwks_uri": f"{base}/jwks",
            "revocation_endpoint": f"{base}/revoke",
            "introspection_endpoint": f"{base}/introspect",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
            "scopes_supported": ["mcp:tools"],
            "authorization_response_iss_parameter_supported": True,
            "dpop_signing_alg_values_supported": ["ES256"],
            "client_id_metadata_document_supported": True,
        }

    # --- misbehaviours ------------------------------------------------------------------

    async def _silent(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)  # cancelled when the server stops

    async def _trickle(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        for index in range(10**9):
            text = head if index == 0 else f"X-Trickle-{index}: more\r\n".encode()
            for byte in text:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(TRICKLE_INTERVAL)

    async def _huge_body(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        # No Content-Length: the body ends when the connection closes, so only counting the
        # bytes as they arrive can stop the client.
        writer.write(_head(200, _JSON, length=None))
        prefix = b'{"resource": "' + b"x" * (_CHUNK - 14)
        filler = b"x" * _CHUNK
        sent = 0
        while sent < HUGE_BODY_BYTES:
            chunk = (prefix if sent == 0 else filler)[: HUGE_BODY_BYTES - sent]
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)

    async def _huge_headers(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
        for _ in range(HUGE_HEADER_BYTES // len(line)):
            writer.write(line)
            await writer.drain()
        writer.write(b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()

    async def _redirect_loop(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        hop = int(request.target.rpartition("hop=")[2] or 0) if "hop=" in request.target else 0
        await _send(writer, 302, b"", [("Location", f"{request.path}?hop={hop + 1}")])

    async def _redirect_away(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        # The path-inserted URL goes to the other loopback host, every other one off-network.
        away = self.elsewhere if request.path.endswith("/mcp") else f"http://{OFF_NETWORK}"
        await _send(writer, 302, b"", [("Location", f"{away}{request.target}")])

    async def _invalid_json(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        document = json.dumps(self._resource_metadata()).encode()
        await _send(writer, 200, document[: len(document) // 2], _JSON)

    async def _wrong_content_type(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        page = b"<!doctype html><html><body><div id=app></div></body></html>"
        await _send(writer, 200, page, [("Content-Type", "text/html; charset=utf-8")])


_MISBEHAVIOURS = {
    Behaviour.SILENT: HostileServer._silent,
    Behaviour.TRICKLE: HostileServer._trickle,
    Behaviour.HUGE_BODY: HostileServer._huge_body,
    Behaviour.HUGE_HEADERS: HostileServer._huge_headers,
    Behaviour.REDIRECT_LOOP: HostileServer._redirect_loop,
    Behaviour.REDIRECT_AWAY: HostileServer._redirect_away,
    Behaviour.INVALID_JSON: HostileServer._invalid_json,
    Behaviour.WRONG_CONTENT_TYPE: HostileServer._wrong_content_type,
}
_JSON = [("Content-Type", "application/json")]


def _is_metadata(path: str) -> bool:
    return path.startswith((_PRM, *_AS_METADATA))


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    if length:
        await reader.readexactly(length)
    return _Request(parts[0], parts[1])


def _head(status: int, headers: list[tuple[str, str]], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} Hostile", *(f"{k}: {v}" for k, v in headers)]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


async def _send(
    writer: asyncio.StreamWriter, status: int, body: bytes, headers: list[tuple[str, str]]
) -> None:
    writer.write(_head(status, headers, len(body)) + body)
    await writer.drain()


async def _send_json(writer: asyncio.StreamWriter, status: int, document: object) -> None:
    await _send(writer, status, json.dumps(document).encode(), _JSON)


@dataclass
class HostileDeployment:
    target: HostileServer
    other: HostileServer  # on 127.0.0.2: the "elsewhere" host, never to be contacted


@contextlib.contextmanager
def serving(behaviour: Behaviour, where: Where = "metadata") -> Iterator[HostileDeployment]:
    """The hostile target, with a recording server on 127.0.0.2 as the "elsewhere" host."""
    with (
        HostileServer(Behaviour.NONE, host="127.0.0.2") as other,
        HostileServer(behaviour, where, elsewhere=other.url) as target,
    ):
        yield HostileDeployment(target, other)
