"""The command line's bad values and mistyped options, each reported in one line.

argparse reports a value its `type` refused, and an unknown option, with its usage text
first. A `type` here raises `pytest.UsageError` instead, which argparse does not handle (it
handles only `ValueError`, `TypeError` and `ArgumentTypeError`), so pytest prints the one
line. An unknown option that resembles one of the suite's gets a line naming the closest.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable

import pytest


def count(option: str) -> Callable[[str], int]:
    """An argparse `type` for a whole number, one or more."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise pytest.UsageError(f"{option} {text}: give one or more (a whole number)")
        return value

    return parse


def seconds(option: str, *, zero: bool) -> Callable[[str], float]:
    """An argparse `type` for a finite number of seconds, more than zero (or `zero` too)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            least = "zero or more" if zero else "more than zero"
            raise pytest.UsageError(f"{option} {text}: give {least} seconds")
        return value

    return parse


def unrecognized(unknown: Iterable[str], ours: Iterable[str]) -> str | None:
    """The line for unknown options when one of them resembles one of `ours` (else None:
    pytest's own message stands), e.g. "unrecognized arguments: --targt (did you mean
    --target?)"."""
    choices = list(ours)
    named: list[str] = []
    resembles = False
    for flag in unknown:
        name = flag.split("=", 1)[0]
        close = difflib.get_close_matches(name, choices, n=2, cutoff=0.7)
        resembles = resembles or (bool(close) and name.startswith("--"))
        named.append(f"{flag} (did you mean {' or '.join(close)}?)" if close else flag)
    return f"unrecognized arguments: {', '.join(named)}" if resembles else None
