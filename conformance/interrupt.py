"""Ctrl-C at any instant ends the run as pytest's "interrupted", with the reports written.

On CPython 3.11 a signal can land on an instruction that maps to no source line; that frame's
traceback entry then has `tb_lineno` None, and pytest's rendering of the KeyboardInterrupt
(`excinfo.getrepr`) raises TypeError, which turns the interrupted run into an internal error
(exit 1 with a traceback instead of exit 2). The entries are given the nearest line before
the interrupted instruction, so the rendering works and points where the run was.
"""

from __future__ import annotations

from types import CodeType, TracebackType


def number_traceback_lines(exception: BaseException) -> None:
    """Give every traceback entry of `exception` and of the exceptions it chains a line."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exception]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if current.__traceback__ is not None:
            current.__traceback__ = _numbered(current.__traceback__)
        pending += [current.__cause__, current.__context__]


def _numbered(head: TracebackType) -> TracebackType:
    """The chain from `head` with each entry that lacks a line replaced by one that has it
    (`tb_next` is writable, `tb_lineno` is not)."""
    if head.tb_lineno is None:
        head = _with_line(head)
    entry = head
    while entry.tb_next is not None:
        if entry.tb_next.tb_lineno is None:
            entry.tb_next = _with_line(entry.tb_next)
        entry = entry.tb_next
    return head


def _with_line(entry: TracebackType) -> TracebackType:
    line = _line_before(entry.tb_frame.f_code, entry.tb_lasti)
    return TracebackType(entry.tb_next, entry.tb_frame, entry.tb_lasti, line)


def _line_before(code: CodeType, offset: int) -> int:
    """The source line of the last instruction at or before `offset` that has one, else the
    line of the `def`."""
    line = code.co_firstlineno
    for start, _end, number in code.co_lines():
        if start > offset:
            break
        if number is not None:
            line = number
    return line
