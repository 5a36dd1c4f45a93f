"""Mutations of parameter values and of form-encoded requests (OAuth 2.1 §3.1, §3.2.2).

An `Edit` changes one value: cut it short, oversize it, insert junk or non-ASCII characters,
replace a character, or replace the whole value with a JSON literal of another type. A
`FormMutation` changes one thing of a known-good form: a required parameter left out, one
value edited, a parameter repeated with another value (OAuth 2.1 §3.1: parameters MUST NOT
be included more than once), a parameter that must not be there added, or the body declared
as another media type. Every mutation is a frozen dataclass: hashable, so the runner can keep
what each one got, and printable, so a reproducer says what was changed without showing the
(secret) value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hypothesis import strategies as st

Params = tuple[tuple[str, str], ...]

NON_ASCII = ("\u00e9", "\U0001f600", "\x00", "\u202e", "\ufeff", "\u2028", "\u0130", "\ufffd")
"""Non-ASCII and control characters: accents, an emoji, NUL, bidi override, BOM, line
separator, a case-folding trap, the replacement character."""
ASCII_JUNK = (" ", "\t", "%", '"', "'", "\\", "<", "{", ",", ";", "=", "+", "*", "#", "\n")
LITERALS = ("null", "true", "0", "-1", "1.5", "[]", "{}", '{"a":1}', '["x"]', "1e999")
"""Whole-value replacements: JSON literals of every other type, as a lenient parser might
read them."""
OVERSIZE = (1, 64, 1024, 8192)
"""How many characters an oversized value gains (the smallest first, for shrinking)."""


class Edit(Protocol):
    """A change to one string value; `str()` says what changed."""

    def apply(self, value: str) -> str: ...


@dataclass(frozen=True)
class Cut:
    keep: int

    def apply(self, value: str) -> str:
        return value[: self.keep]

    def __str__(self) -> str:
        return f"cut to its first {self.keep} characters"


@dataclass(frozen=True)
class Extend:
    text: str
    times: int

    def apply(self, value: str) -> str:
        return value + self.text * self.times

    def __str__(self) -> str:
        return f"with {self.times} x {self.text!r} appended"


@dataclass(frozen=True)
class Insert:
    at: int
    text: str

    def apply(self, value: str) -> str:
        return value[: self.at] + self.text + value[self.at :]

    def __str__(self) -> str:
        return f"with {self.text!r} inserted at position {self.at}"


@dataclass(frozen=True)
class Substitute:
    at: int
    char: str

    def apply(self, value: str) -> str:
        return value[: self.at] + self.char + value[self.at + 1 :]

    def __str__(self) -> str:
        return f"with character {self.at} replaced by {self.char!r}"


@dataclass(frozen=True)
class Replace:
    text: str

    def apply(self, value: str) -> str:
        return self.text

    def __str__(self) -> str:
        return f"replaced by {self.text!r}"


def changing(value: str, edits: st.SearchStrategy[Edit]) -> st.SearchStrategy[Edit]:
    """Only edits that change `value` and leave something (an empty value counts as omitted,
    OAuth 2.1 §3.1, which for an optional parameter is a valid request), and more than
    surrounding whitespace, which HTTP drops from a header field (RFC 9110 §5.5)."""
    return edits.filter(lambda e: e.apply(value).strip() not in (value, ""))


def edits(value: str, *, unicode: bool = True) -> st.SearchStrategy[Edit]:
    """Every kind of edit of `value`, the harshest first (hypothesis tries the first option's
    simplest example first and shrinks towards it): a non-ASCII character appended, junk
    inserted, a JSON literal instead, an oversized value, a character replaced, a cut.
    `unicode=False` keeps to visible ASCII (values that travel in HTTP header fields)."""
    junk = NON_ASCII + ASCII_JUNK if unicode else tuple(c for c in ASCII_JUNK if not c.isspace())
    n = len(value)
    options: list[st.SearchStrategy[Edit]] = [
        st.builds(Extend, st.sampled_from(junk[:1] + ("A",)), st.sampled_from(OVERSIZE)),
        st.builds(Insert, st.integers(0, n), st.sampled_from(junk)),
        st.builds(Replace, st.sampled_from(LITERALS)),
    ]
    if n > 1:
        options.append(st.builds(Substitute, st.integers(0, n - 1), st.sampled_from(junk)))
        options.append(st.builds(Cut, st.integers(1, n - 1)))
    return changing(value, st.one_of(options))


URI_BREAKERS = (" ", "#", "\u00e9", "\x00", "\u202e", "<", '"', "{", "\\", "^", "|")


def uri_edits(value: str) -> st.SearchStrategy[Edit]:
    """Edits after which `value` is no absolute URI without a fragment (RFC 3986 §4.3,
    RFC 8707 §2): a character no URI may hold, a fragment, or a literal that is no URI."""
    return changing(
        value,
        st.one_of(
            st.builds(Insert, st.integers(0, len(value)), st.sampled_from(URI_BREAKERS)),
            st.builds(Extend, st.just("#"), st.sampled_from(OVERSIZE[:2])),
            st.builds(Replace, st.sampled_from(LITERALS)),
        ),
    )


# --- form-encoded requests -------------------------------------------------------------------


@dataclass(frozen=True)
class Omit:
    name: str

    def apply(self, params: Params) -> Params:
        return tuple((k, v) for k, v in params if k != self.name)

    def __str__(self) -> str:
        return f"{self.name} left out"


@dataclass(frozen=True)
class Change:
    name: str
    edit: Edit

    def apply(self, params: Params) -> Params:
        return tuple((k, self.edit.apply(v) if k == self.name else v) for k, v in params)

    def __str__(self) -> str:
        return f"{self.name} {self.edit}"


@dataclass(frozen=True)
class Repeat:
    name: str
    edit: Edit

    def apply(self, params: Params) -> Params:
        value = next(v for k, v in params if k == self.name)
        return (*params, (self.name, self.edit.apply(value)))

    def __str__(self) -> str:
        return f"{self.name} sent twice, the second copy {self.edit}"


@dataclass(frozen=True)
class Add:
    name: str
    value: str

    def apply(self, params: Params) -> Params:
        return (*params, (self.name, self.value))

    def __str__(self) -> str:
        return f"{self.name}={self.value!r} added"


@dataclass(frozen=True)
class Declare:
    """The form body sent as it is, under another media type (or none)."""

    content_type: str | None

    def apply(self, params: Params) -> Params:
        return params

    def __str__(self) -> str:
        if self.content_type is None:
            return "the form body sent without a Content-Type"
        return f"the form body declared as {self.content_type}"


FormMutation = Omit | Change | Repeat | Add | Declare
FORM = "application/x-www-form-urlencoded"
MISDECLARED = (Declare("application/json"), Declare("text/plain"), Declare(None))


def content_type(mutation: object) -> str | None:
    """The Content-Type a mutated form request is sent with."""
    return mutation.content_type if isinstance(mutation, Declare) else FORM


@dataclass(frozen=True)
class Field:
    """One parameter of a known-good form and how it can be made invalid."""

    name: str
    edits: st.SearchStrategy[Edit]
    required: bool = True  # leaving it out makes the request invalid
    repeatable: bool = True  # sending it twice makes the request invalid (not `resource`)


def form_mutations(
    fields: Sequence[Field], additions: Sequence[Add] = ()
) -> list[st.SearchStrategy[FormMutation]]:
    """One change to a known-good form made of `fields`, each making the request invalid, in
    one stratum per field (its value edited, the parameter repeated, or left out when it is
    required) and one for the body as a whole (misdeclared, or a parameter added)."""
    strata: list[st.SearchStrategy[FormMutation]] = []
    for f in fields:
        options: list[st.SearchStrategy[FormMutation]] = [
            st.builds(Change, st.just(f.name), f.edits)
        ]
        if f.repeatable:
            options.append(st.builds(Repeat, st.just(f.name), f.edits))
        if f.required:
            options.append(st.just(Omit(f.name)))
        strata.append(st.one_of(options))
    strata.append(st.sampled_from([*MISDECLARED, *additions]))
    return strata
