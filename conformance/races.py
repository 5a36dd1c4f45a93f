"""Concurrent requests for race checks: N copies of one request released together.

A classic check-then-act bug (read "not yet used", await something, mark "used") lets several
concurrent redemptions of a one-time credential succeed, though a sequential replay is refused.
`concurrently` starts `n` threads that wait at a barrier and then send at once; each thread
runs in a copy of the caller's context, so every exchange lands in the check's evidence.
Bounded: `n` is capped and every request keeps the suite's own timeouts.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

MAX_PARALLEL = 8
BARRIER_TIMEOUT = 10.0


def concurrently(n: int, send: Callable[[int], T]) -> list[T]:
    """Run `send(0) ... send(n-1)` at the same moment, in threads; results in index order.

    An exception in any call propagates (after every thread has finished)."""
    n = max(1, min(n, MAX_PARALLEL))
    barrier = threading.Barrier(n, timeout=BARRIER_TIMEOUT)

    def one(index: int) -> T:
        barrier.wait()
        return send(index)

    contexts = [contextvars.copy_context() for _ in range(n)]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="race") as pool:
        futures = [pool.submit(contexts[i].run, one, i) for i in range(n)]
        return [future.result() for future in futures]
