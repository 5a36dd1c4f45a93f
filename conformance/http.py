"""The suite's one HTTP client: bounded in time, size and redirects, and recording evidence.

Every request a check or fixture sends goes through `Http.request`. It never follows
redirects by itself (flows follow them explicitly, a bounded number of times), caps the
response body, enforces a wall-clock deadline even against a server that trickles bytes,
refuses hosts outside the run's scope, and records a redacted `Exchange` into every active
`recording()`.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from conformance.errors import OutOfScopeRequest, ResponseTooLarge, TargetUnreachable
from conformance.evidence import Exchange, Redactor

_recordings: ContextVar[tuple[list[Exchange], ...]] = ContextVar("recordings", default=())


@contextlib.contextmanager
def recording(into: list[Exchange] | None = None) -> Iterator[list[Exchange]]:
    """Collect every exchange made inside the block (nested recordings all receive them)."""
    exchanges = [] if into is None else into
    token = _recordings.set((*_recordings.get(), exchanges))
    try:
        yield exchanges
    finally:
        _recordings.reset(token)


def _combined(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers for evidence, a repeated field's values joined with ", " (RFC 9110 §5.3), so
    two `WWW-Authenticate` challenges or two `DPoP` proofs both stay visible."""
    fields: dict[str, str] = {}
    for name, value in items:
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return fields


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 15.0  # whole exchange, however slowly the bytes arrive
    max_body_bytes: int = 2 * 1024 * 1024


@dataclass
class HostScope:
    """Hosts the run may talk to: the target's, what discovery found, what config adds."""

    hosts: set[str] = field(default_factory=set)

    def add_url(self, url: str) -> None:
        host = urlsplit(url).hostname
        if host:
            self.hosts.add(host.lower())

    def allows(self, url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        return host in self.hosts


def form(pairs: Mapping[str, str] | list[tuple[str, str]]) -> str:
    """Form-encode, keeping repeated keys when given as pairs (duplicate-parameter checks)."""
    return urlencode(list(pairs.items()) if isinstance(pairs, Mapping) else pairs)


class Http:
    """A pooled client with the suite's limits; one per cookie jar (i.e. per signed-in user)."""

    def __init__(self, scope: HostScope, redactor: Redactor, limits: Limits | None = None) -> None:
        self.scope = scope
        self.redactor = redactor
        self.limits = limits or Limits()
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.limits.read_timeout, connect=self.limits.connect_timeout),
            follow_redirects=False,
            trust_env=False,  # never route through a proxy from the environment
            # Headers and body go out as separate writes; without TCP_NODELAY, Nagle's
            # algorithm holds the body back until the server's delayed ACK (~40 ms) on every
            # request over a kept-alive connection.
            # Idle connections are dropped after 2 s, before a server's own keep-alive timeout
            # (5 s in uvicorn and many others) can close one just as a request goes out on it
            # ("server disconnected without sending a response").
            transport=httpx.HTTPTransport(
                limits=httpx.Limits(
                    max_connections=16, max_keepalive_connections=8, keepalive_expiry=2.0
                ),
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            ),
        )

    def fork(self) -> Http:
        """A client with the same scope and limits and an empty cookie jar."""
        return Http(self.scope, self.redactor, self.limits)

    def close(self) -> None:
        self._client.close()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._client.cookies

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        data: Mapping[str, str] | list[tuple[str, str]] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        note: str = "",
    ) -> httpx.Response:
        if not self.scope.allows(url):
            raise OutOfScopeRequest(
                f"refusing to contact {url}: host not in the run's scope "
                f"(add it to [target] allowed_hosts in the target config if it is yours)"
            )
        header_list = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        if data is not None:
            content = form(data)
            header_list.append(("Content-Type", "application/x-www-form-urlencoded"))
        query: Any = params  # httpx accepts both mappings and pair lists
        request = self._client.build_request(
            method, url, headers=header_list, params=query, json=json, content=content
        )
        exchange = self._start_exchange(request, note)
        started = time.monotonic()
        try:
            response = self._send(request, started)
        except httpx.TimeoutException as exc:
            exchange.error = f"timed out: {type(exc).__name__}"
            raise TargetUnreachable(f"{method} {url} timed out") from exc
        except httpx.TransportError as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
            raise TargetUnreachable(f"{method} {url} failed: {exc or type(exc).__name__}") from exc
        except ResponseTooLarge as exc:
            exchange.error = str(exc)
            raise
        finally:
            exchange.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        self._finish_exchange(exchange, response)
        return response

    def _send(self, request: httpx.Request, started: float) -> httpx.Response:
        raw = self._client.send(request, stream=True)
        try:
            body = bytearray()
            for chunk in raw.iter_bytes():
                body.extend(chunk)
                if len(body) > self.limits.max_body_bytes:
                    raise ResponseTooLarge(
                        f"{request.method} {request.url}: body over "
                        f"{self.limits.max_body_bytes} bytes"
                    )
                if time.monotonic() - started > self.limits.deadline:
                    raise httpx.ReadTimeout("deadline exceeded", request=request)
        finally:
            raw.close()
        headers = [
            (k, v)
            for k, v in raw.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            raw.status_code, headers=headers, content=bytes(body), request=request
        )

    def _start_exchange(self, request: httpx.Request, note: str) -> Exchange:
        r = self.redactor
        headers = request.headers.multi_items()
        exchange = Exchange(
            method=request.method,
            url=r.url(str(request.url)),
            request_headers=_combined((k, r.header(k, v)) for k, v in headers),
            request_body=r.body(request.content, request.headers.get("content-type", "")),
            note=note,
        )
        for exchanges in _recordings.get():
            exchanges.append(exchange)
        return exchange

    def _finish_exchange(self, exchange: Exchange, response: httpx.Response) -> None:
        r = self.redactor
        exchange.status = response.status_code
        exchange.response_headers = _combined(
            (k, r.url(v) if k.lower() == "location" else r.header(k, v))
            for k, v in response.headers.multi_items()
        )
        exchange.response_body = r.body(response.content, response.headers.get("content-type", ""))
