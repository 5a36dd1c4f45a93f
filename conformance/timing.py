"""Where a check's time goes: waiting on the target, or the suite's own work.

A `Meter` runs for one check, its setup (the session fixtures it builds included) and its
call. It counts every HTTP exchange the suite sends meanwhile, those kept out of the evidence
too, and the time during which at least one exchange was in flight: from the request being
sent to its response being read, so concurrent exchanges (a race check's) count once. Against
the embedded target that wait includes the in-process servers' own work, and their start-up.
The rest of the check's time is the suite's own overhead.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any


class Meter:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.exchanges = 0
        self._waited = 0.0
        self._in_flight = 0
        self._waiting_since = 0.0
        self._lock = threading.Lock()

    def begin_wait(self, exchange: bool) -> None:
        with self._lock:
            self.exchanges += exchange
            if self._in_flight == 0:
                self._waiting_since = time.perf_counter()
            self._in_flight += 1

    def end_wait(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._waited += time.perf_counter() - self._waiting_since

    def reading(self) -> dict[str, Any]:
        """The record's `timing`: seconds so far, exchanges, seconds spent waiting."""
        with self._lock:
            now = time.perf_counter()
            waited = self._waited + (now - self._waiting_since if self._in_flight else 0.0)
            return {
                "duration_s": round(now - self.started, 6),
                "exchanges": self.exchanges,
                "waiting_s": round(waited, 6),
            }


_meter: ContextVar[Meter | None] = ContextVar("meter", default=None)


@contextlib.contextmanager
def metering() -> Iterator[Meter]:
    """Measure the block (threads started in a copy of its context count too)."""
    meter = Meter()
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


@contextlib.contextmanager
def waiting(exchange: bool = True) -> Iterator[None]:
    """Time spent on the target: an exchange in flight, or (`exchange=False`) the embedded
    deployment starting."""
    meter = _meter.get()
    if meter is None:
        yield
        return
    meter.begin_wait(exchange)
    try:
        yield
    finally:
        meter.end_wait()
