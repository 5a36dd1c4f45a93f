"""Mutations of compact JWS values (RFC 7515 §7.1): access tokens, DPoP proofs, ID-JAGs.

Unsigned mutations (`Corrupt`, `Inject`, `Reshape`, `SetMember`, a `Cut`) keep the original
signature, which then covers something else: a receiver must refuse them for that alone, and
its parser must survive them. A `Resign` carries a valid signature over a header or claim set
that breaks one rule; the target signs it (with the suite's own DPoP key, or through a test
signing hook of the target).

Two changes are never made, because a lenient base64url decoder could map them back to the
original signature (RFC 4648 §3.5, §5): to the signature's last character, whose spare bits a
decoder may ignore, and characters outside the base64url alphabet inside the signature, which
a decoder may skip.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from hypothesis import strategies as st

from conformance.fuzz.forms import NON_ASCII, Cut, Edit
from conformance.oauth.jwt import b64url

Signer = Callable[..., str]
"""A test signing hook of the target: `sign(claims, **header)` -> a JWT signed with a key the
target trusts (a header member given as None is left out)."""
SEGMENTS = ("header", "payload", "signature")
BASE64URL = string.ascii_letters + string.digits + "-_"
SEGMENT_JUNK = ("!", "~", "=", ".", "+", "/", " ", "%")
JSON_VALUES = (
    '["x"]',
    '{"x":1}',
    "0",
    "-1",
    "1.5",
    "true",
    "false",
    '""',
    '"x"',
    "[]",
    "{}",
    "null",
)
"""Values of every JSON type, as JSON text (hashable, and printed as sent); the ones a parser
expecting a string or an object is least ready for first."""


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _decode(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _encode(value: Any) -> str:
    return b64url(compact(value).encode())


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, unverified."""
    head, body, _ = token.split(".")
    return _decode(head), _decode(body)


@dataclass(frozen=True)
class Corrupt:
    segment: int
    at: int
    char: str

    def apply(self, value: str) -> str:
        pieces = value.split(".")
        text = pieces[self.segment]
        pieces[self.segment] = text[: self.at] + self.char + text[self.at + 1 :]
        return ".".join(pieces)

    def __str__(self) -> str:
        return f"with {SEGMENTS[self.segment]} character {self.at} replaced by {self.char!r}"


@dataclass(frozen=True)
class Inject:
    segment: int
    at: int
    text: str

    def apply(self, value: str) -> str:
        pieces = value.split(".")
        text = pieces[self.segment]
        pieces[self.segment] = text[: self.at] + self.text + text[self.at :]
        return ".".join(pieces)

    def __str__(self) -> str:
        return f"with {self.text!r} inserted at {SEGMENTS[self.segment]} position {self.at}"


RESHAPES = {
    "without its signature": lambda h, p, s: f"{h}.{p}.",
    "without its signature segment": lambda h, p, s: f"{h}.{p}",
    "with a fourth segment": lambda h, p, s: f"{h}.{p}.{s}.{s}",
    "with header and payload swapped": lambda h, p, s: f"{p}.{h}.{s}",
    "with an empty header": lambda h, p, s: f".{p}.{s}",
}


@dataclass(frozen=True)
class Reshape:
    kind: str

    def apply(self, value: str) -> str:
        head, body, signature = value.split(".")
        return str(RESHAPES[self.kind](head, body, signature))

    def __str__(self) -> str:
        return self.kind


def _changed(members: Mapping[str, Any], name: str, value: str | None) -> dict[str, Any]:
    changed = dict(members)
    if value is None:
        changed.pop(name, None)
    else:
        changed[name] = json.loads(value)
    return changed


def _describe(segment: int, name: str, value: str | None) -> str:
    where = "claim" if segment == 1 else "header member"
    return f"{where} {name} removed" if value is None else f"{where} {name} set to {value}"


@dataclass(frozen=True)
class SetMember:
    """One header member or claim changed, the original signature kept."""

    segment: int  # 0: header, 1: payload
    name: str
    value: str | None  # JSON text; None removes the member

    def apply(self, value: str) -> str:
        pieces = value.split(".")
        pieces[self.segment] = _encode(
            _changed(_decode(pieces[self.segment]), self.name, self.value)
        )
        return ".".join(pieces)

    def __str__(self) -> str:
        return f"with {_describe(self.segment, self.name, self.value)} (signature kept)"


@dataclass(frozen=True)
class Resign:
    """One header member or claim changed, then signed again by a key the receiver trusts."""

    segment: int
    name: str
    value: str | None

    def apply_to(
        self, header: Mapping[str, Any], claims: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.segment == 0:
            return _changed(header, self.name, self.value), dict(claims)
        return dict(header), _changed(claims, self.name, self.value)

    def __str__(self) -> str:
        return f"re-signed with {_describe(self.segment, self.name, self.value)}"


def sign(header: Mapping[str, Any], claims: Mapping[str, Any], key: Any, alg: str) -> str:
    """A compact JWS of exactly `header` and `claims` (members of any JSON type, which PyJWT's
    encoder would refuse), signed with `key` under `alg`."""
    signing_input = f"{_encode(header)}.{_encode(claims)}"
    algorithm = jwt.algorithms.get_default_algorithms()[alg]
    return f"{signing_input}.{b64url(algorithm.sign(signing_input.encode(), key))}"


# --- strategies --------------------------------------------------------------------------------


def json_values(original: Any) -> st.SearchStrategy[str | None]:
    """Another value for a member that had `original`: any JSON type, or removed (None)."""
    others = [v for v in JSON_VALUES if json.loads(v) != original]
    return st.one_of(st.sampled_from(others), st.none())


def unsigned_edits(token: str, *, unicode: bool = False) -> list[st.SearchStrategy[Edit]]:
    """Unsigned mutations of `token`, in strata: its structure (characters corrupted or
    inserted, cut short, segments moved), each header member, and the claims. Non-ASCII
    characters (`unicode`) only where the token travels in a form body, never in a header."""
    head, body, signature = token.split(".")
    junk = NON_ASCII + SEGMENT_JUNK if unicode else SEGMENT_JUNK
    header, claims = _decode(head), _decode(body)
    structure: list[st.SearchStrategy[Edit]] = []
    for segment, text in ((0, head), (1, body)):
        structure.append(
            st.builds(Inject, st.just(segment), st.integers(0, len(text)), st.sampled_from(junk))
        )
        alphabet = st.sampled_from(SEGMENT_JUNK + tuple(BASE64URL))
        structure.append(
            st.builds(Corrupt, st.just(segment), st.integers(0, len(text) - 1), alphabet)
        )
    if len(signature) > 1:  # never its last character (spare bits), only base64url characters
        last = len(signature) - 2
        structure.append(
            st.builds(Corrupt, st.just(2), st.integers(0, last), st.sampled_from(BASE64URL))
        )
    structure.append(st.sampled_from([Reshape(kind) for kind in RESHAPES]))
    structure.append(st.builds(Cut, st.integers(1, len(token) - 1)))
    strata = [st.one_of(structure)]
    strata += [
        st.builds(SetMember, st.just(0), st.just(name), json_values(value))
        for name, value in header.items()
    ]
    strata.append(
        st.one_of(
            [
                st.builds(SetMember, st.just(1), st.just(name), json_values(value))
                for name, value in claims.items()
            ]
        )
    )
    # Changed beyond surrounding whitespace, which HTTP drops from a header field.
    return [stratum.filter(lambda e: e.apply(token).strip() != token) for stratum in strata]


def resigned(
    changes: Mapping[tuple[int, str], Sequence[str | None]],
) -> list[st.SearchStrategy[Resign]]:
    """One stratum per member: `changes` maps (segment, member) to the values that break a
    rule (JSON text, None to remove the member), the first tried first."""
    return [
        st.sampled_from([Resign(segment, name, value) for value in values])
        for (segment, name), values in changes.items()
    ]
