"""Real HTTP servers on loopback for the suite's own parts (uvicorn in a background thread)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def bind_loopback(host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on an ephemeral port, bound before any URL is handed out.

    `proto` is given explicitly: asyncio turns Nagle off (TCP_NODELAY) on accepted
    connections only when the socket's protocol is IPPROTO_TCP; otherwise a response written
    in pieces waits ~40 ms for a delayed ACK on every kept-alive connection.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


class ServerThread:
    """Serves one ASGI app on a pre-bound socket until `stop()`; over TLS when given a
    certificate chain and key (PEM files), then `url` is https."""

    def __init__(
        self,
        app: Any,
        sock: socket.socket,
        name: str,
        *,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        self.name = name
        self.sock = sock
        self.url = url_of(sock)
        if ssl_certfile is not None:
            self.url = "https" + self.url.removeprefix("http")
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,  # well beyond the suite's own 2 s idle expiry
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"server-{name}", daemon=True
        )

    def start(self, timeout: float = 15.0) -> ServerThread:
        return self.launch().wait_started(timeout)

    def launch(self) -> ServerThread:
        """Start serving in the background without waiting (see `wait_started`)."""
        self._thread.start()
        return self

    def wait_started(self, timeout: float = 15.0) -> ServerThread:
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        stop_all([self])


def stop_all(servers: list[ServerThread]) -> None:
    """Ask every server to exit, then wait for each: they shut down side by side."""
    for server in servers:
        server._server.should_exit = True
    for server in servers:
        if server._thread.is_alive():
            server._thread.join(timeout=5)
        server.sock.close()
