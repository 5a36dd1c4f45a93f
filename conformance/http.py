"""The suite's one HTTP client: bounded in time, size and redirects, and recording evidence.

Every request a check or fixture sends goes through `Http.request`. It never follows
redirects by itself (flows follow them explicitly, a bounded number of times, e.g.
`get_following`), caps the response body, enforces a wall-clock deadline on every socket
operation even against a server that trickles its status line one byte at a time, refuses
hosts outside the run's scope before anything is sent, stops contacting an endpoint that
keeps timing out, and records a redacted `Exchange` into every active `recording()`.

Each fault ends the request with a `HarnessError` (so the check ends as `error`, never
`failed`) whose message names the cause and the URL: a timeout, the size cap, a response head
beyond the parser's cap, the redirect cap, a host out of scope, a refused connection.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpcore
import httpx

from conformance.errors import (
    ConnectionFailed,
    MalformedResponse,
    OutOfScopeRequest,
    ResponseTooLarge,
    TargetUnreachable,
    TimedOut,
    TooManyRedirects,
)
from conformance.evidence import Exchange, Redactor
from conformance.timing import waiting

_recordings: ContextVar[tuple[list[Exchange], ...]] = ContextVar("recordings", default=())


@contextlib.contextmanager
def recording(
    into: list[Exchange] | None = None, *, alone: bool = False
) -> Iterator[list[Exchange]]:
    """Collect every exchange made inside the block. Enclosing recordings receive them too,
    unless `alone`: then only this one does (exchanges kept out of a check's evidence)."""
    exchanges = [] if into is None else into
    token = _recordings.set((exchanges,) if alone else (*_recordings.get(), exchanges))
    try:
        yield exchanges
    finally:
        _recordings.reset(token)


def record(exchange: Exchange) -> None:
    """Add `exchange` to every recording in force."""
    for exchanges in _recordings.get():
        exchanges.append(exchange)


def _combined(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers for evidence, a repeated field's values joined with ", " (RFC 9110 §5.3), so
    two `WWW-Authenticate` challenges or two `DPoP` proofs both stay visible."""
    fields: dict[str, str] = {}
    for name, value in items:
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return fields


MAX_HEADER_BYTES = httpcore.HTTP11Connection.MAX_INCOMPLETE_EVENT_SIZE
"""The most status line and header bytes a response may have (the HTTP/1.1 parser's cap)."""


@dataclass(frozen=True)
class Limits:
    """What any one exchange may cost the run, however the target behaves."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0  # silence between two bytes
    deadline: float = 15.0  # whole exchange, however slowly the bytes arrive
    max_body_bytes: int = 2 * 1024 * 1024
    max_redirects: int = 5  # hops a flow that follows redirects may take
    max_timeouts: int = 2  # timeouts in a row after which an endpoint is not contacted again

    def within(self, seconds: float) -> Limits:
        """These limits with every exchange bounded by `seconds` (`--http-timeout`)."""
        return replace(
            self,
            deadline=seconds,
            connect_timeout=min(self.connect_timeout, seconds),
            read_timeout=min(self.read_timeout, seconds),
        )


def _size(count: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


# --- the deadline, enforced on every socket operation ------------------------------------

_deadline: ContextVar[float | None] = ContextVar("deadline", default=None)


def _remaining(timeout: float | None, expired: type[Exception]) -> float | None:
    """`timeout`, shortened to what is left of the current exchange's deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("deadline exceeded")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write ends by the exchange's deadline: httpx's own
    timeouts bound the silence between bytes, so a status line sent one byte every few
    seconds would otherwise never time out."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _remaining(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _remaining(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("the suite speaks TCP only")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """httpx's default verification, built once: each context loads the CA bundle (~50 ms)
    and the run makes a client per signed-in user."""
    return httpx.create_ssl_context()


class _Transport(httpx.HTTPTransport):
    """httpx's transport over the deadline-bounded sockets above (its pool is rebuilt with
    the same settings and the other network backend, which httpx does not expose)."""

    def __init__(self, limits: httpx.Limits, socket_options: list[Any]) -> None:
        super().__init__(verify=default_tls_context(), limits=limits, socket_options=socket_options)
        self._pool = httpcore.ConnectionPool(
            ssl_context=default_tls_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            socket_options=socket_options,
            network_backend=_DeadlineBackend(),
        )


class Unresponsive:
    """Endpoints that timed out `Limits.max_timeouts` times in a row: not contacted again in
    this run, so a target that hangs costs the run a few deadlines, not one per check."""

    def __init__(self, max_timeouts: int) -> None:
        self.max_timeouts = max_timeouts
        self._streaks: dict[str, int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def endpoint(method: str, url: str) -> str:
        """The method and URL without its query: what one endpoint of the target serves."""
        parts = urlsplit(url)
        return f"{method.upper()} {parts.scheme}://{parts.netloc}{parts.path}"

    def given_up(self, method: str, url: str) -> bool:
        with self._lock:
            return self._streaks.get(self.endpoint(method, url), 0) >= self.max_timeouts

    def answered(self, method: str, url: str, timed_out: bool) -> None:
        key = self.endpoint(method, url)
        with self._lock:
            self._streaks[key] = self._streaks.get(key, 0) + 1 if timed_out else 0


@dataclass
class HostScope:
    """Hosts the run may talk to: the target's and those the configuration names. What a
    target's documents name is not added: metadata pointing elsewhere is refused, not
    followed (add a host that is yours to `[target] allowed_hosts`)."""

    hosts: set[str] = field(default_factory=set)

    def add_url(self, url: str) -> None:
        host = urlsplit(url).hostname
        if host:
            self.hosts.add(host.lower())

    def allows(self, url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        return host in self.hosts


def _out_of_scope(url: str) -> str:
    return (
        f"refusing to contact {url}: host not in the run's scope "
        f"(add it to [target] allowed_hosts in the target config if it is yours)"
    )


def form(pairs: Mapping[str, str] | list[tuple[str, str]]) -> str:
    """Form-encode, keeping repeated keys when given as pairs (duplicate-parameter checks)."""
    return urlencode(list(pairs.items()) if isinstance(pairs, Mapping) else pairs)


class Http:
    """A pooled client with the suite's limits; one per cookie jar (i.e. per signed-in user)."""

    def __init__(
        self,
        scope: HostScope,
        redactor: Redactor,
        limits: Limits | None = None,
        unresponsive: Unresponsive | None = None,
    ) -> None:
        self.scope = scope
        self.redactor = redactor
        self.limits = limits or Limits()
        self.unresponsive = unresponsive or Unresponsive(self.limits.max_timeouts)
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
            transport=_Transport(
                limits=httpx.Limits(
                    max_connections=16, max_keepalive_connections=8, keepalive_expiry=2.0
                ),
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            ),
        )

    def fork(self) -> Http:
        """A client with the same scope and limits and an empty cookie jar."""
        return Http(self.scope, self.redactor, self.limits, self.unresponsive)

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
            raise OutOfScopeRequest(_out_of_scope(url))
        if self.unresponsive.given_up(method, url):
            raise TimedOut(
                f"{method} {url} not sent: it timed out {self.unresponsive.max_timeouts} times "
                f"in a row ({self.limits.deadline:g} s deadline), so the run treats it as "
                "unreachable"
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
        token = _deadline.set(started + self.limits.deadline)
        try:
            with waiting():
                response = self._send(request)
        except (httpx.TransportError, ResponseTooLarge) as exc:
            fault = self._fault(method, url, exc, time.monotonic() - started)
            exchange.error = str(fault)
            timed_out = isinstance(exc, httpx.TimeoutException)  # connecting, too
            self.unresponsive.answered(method, url, timed_out)
            raise fault from exc
        finally:
            _deadline.reset(token)
            exchange.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        self.unresponsive.answered(method, url, timed_out=False)
        self._finish_exchange(exchange, response)
        return response

    def get_following(
        self, url: str, *, headers: Mapping[str, str] | None = None, note: str = ""
    ) -> httpx.Response:
        """GET `url`, following redirects within the run's scope, at most
        `limits.max_redirects` hops; a hop out of scope is refused before it is sent."""
        chain = [url]
        for _ in range(self.limits.max_redirects + 1):
            response = self.get(chain[-1], headers=headers, note=note)
            if not response.is_redirect:
                return response
            location = urljoin(chain[-1], response.headers["location"])
            if not self.scope.allows(location):
                raise OutOfScopeRequest(f"GET {chain[-1]} redirected: {_out_of_scope(location)}")
            chain.append(location)
        shown = " -> ".join(chain[:3]) + (" -> ..." if len(chain) > 3 else "")
        raise TooManyRedirects(
            f"GET {url}: more than {self.limits.max_redirects} redirects ({shown})"
        )

    def _fault(
        self, method: str, url: str, exc: Exception, elapsed: float
    ) -> TargetUnreachable | ResponseTooLarge:
        """The harness error for a transport fault, saying what happened in words."""
        limits = self.limits
        if isinstance(exc, ResponseTooLarge):
            return exc
        if isinstance(exc, httpx.ConnectTimeout):
            return ConnectionFailed(
                f"{method} {url}: connect timed out: no connection within "
                f"{min(limits.connect_timeout, limits.deadline):g} s"
            )
        if isinstance(exc, httpx.ConnectError):
            return ConnectionFailed(f"{method} {url}: could not connect ({exc})")
        if isinstance(exc, httpx.TimeoutException):
            if elapsed >= limits.deadline - 0.05:
                return TimedOut(
                    f"{method} {url} timed out: no complete response within the "
                    f"{limits.deadline:g} s deadline"
                )
            return TimedOut(f"{method} {url} timed out: no data for {limits.read_timeout:g} s")
        if isinstance(exc, httpx.RemoteProtocolError) and "buffer" in str(exc).lower():
            # h11's only complaint about a well-formed but endless response head
            return MalformedResponse(
                f"{method} {url}: response headers larger than {_size(MAX_HEADER_BYTES)} ({exc})"
            )
        if isinstance(exc, httpx.RemoteProtocolError):
            return MalformedResponse(f"{method} {url}: not a readable HTTP response ({exc})")
        return TargetUnreachable(f"{method} {url} failed: {exc or type(exc).__name__}")

    def _send(self, request: httpx.Request) -> httpx.Response:
        raw = self._client.send(request, stream=True)
        too_large = ResponseTooLarge(
            f"{request.method} {request.url}: response body larger than the "
            f"{_size(self.limits.max_body_bytes)} limit"
        )
        try:
            declared = raw.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.limits.max_body_bytes:
                raise too_large  # refused before a byte of it is read
            body = bytearray()
            for chunk in raw.iter_bytes():
                body.extend(chunk)
                if len(body) > self.limits.max_body_bytes:
                    raise too_large
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
        record(exchange)
        return exchange

    def _finish_exchange(self, exchange: Exchange, response: httpx.Response) -> None:
        r = self.redactor
        exchange.status = response.status_code
        exchange.response_headers = _combined(
            (k, r.url(v) if k.lower() == "location" else r.header(k, v))
            for k, v in response.headers.multi_items()
        )
        exchange.response_body = r.body(response.content, response.headers.get("content-type", ""))
