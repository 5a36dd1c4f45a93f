"""A pytest plugin for the suite's child process: log every outbound connection, allow only
loopback ones.

Loaded with `-p tests.hostile.socket_guard` and `HOSTILE_CONNECT_LOG=FILE`. Every
`connect` and every name lookup is appended to FILE as one JSON line, and a connection to a
non-loopback address is refused before any packet leaves, so a suite that would follow a
hostile target off the network is caught without ever sending to it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading
from typing import Any

_LOG = os.environ.get("HOSTILE_CONNECT_LOG")
_lock = threading.Lock()
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _log(kind: str, host: object, port: object) -> None:
    if _LOG:
        with _lock, open(_LOG, "a", encoding="utf-8") as out:
            out.write(json.dumps({"kind": kind, "host": str(host), "port": port}) + "\n")


def _loopback(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _checked(address: Any) -> None:
    if isinstance(address, tuple) and len(address) >= 2:
        _log("connect", address[0], address[1])
        if not _loopback(address[0]):
            raise ConnectionRefusedError(f"socket guard: refused to connect to {address[0]}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _checked(address)
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _checked(address)
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    _log("lookup", host, port)
    return _getaddrinfo(host, port, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
socket.getaddrinfo = _guarded_getaddrinfo
