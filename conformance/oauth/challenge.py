"""Parsing `WWW-Authenticate` challenges (RFC 9110 §11.6.1, RFC 6750 §3).

Strict on purpose: a check must be able to tell a well-formed challenge from one a real
client would choke on, so the parser reports what it could not read instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import httpx

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN68 = r"[A-Za-z0-9\-._~+/]+=*"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*({_TOKEN}|{_QUOTED})\s*")


@dataclass
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    duplicated: list[str] = field(default_factory=list)
    token68: str | None = None

    def get(self, name: str) -> str | None:
        return self.params.get(name.lower())


@dataclass
class ParsedHeader:
    challenges: list[Challenge]
    errors: list[str]

    def scheme(self, name: str) -> Challenge | None:
        return next((c for c in self.challenges if c.scheme.lower() == name.lower()), None)


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_www_authenticate(values: list[str]) -> ParsedHeader:
    """Parse every `WWW-Authenticate` header value into challenges."""
    challenges: list[Challenge] = []
    errors: list[str] = []
    for header in values:
        rest = header.strip()
        current: Challenge | None = None
        while rest:
            rest = rest.lstrip(", ")
            if not rest:
                break
            param = _PARAM.match(rest)
            if current is not None and param:
                name, value = param.group(1).lower(), _unquote(param.group(2))
                if name in current.params:
                    current.duplicated.append(name)
                current.params[name] = value
                rest = rest[param.end() :]
                continue
            scheme = re.match(rf"({_TOKEN})(?:\s+|$|(?=,))", rest)
            if not scheme:
                errors.append(f"cannot parse {rest[:60]!r}")
                break
            current = Challenge(scheme.group(1))
            challenges.append(current)
            rest = rest[scheme.end() :]
            token68 = re.match(rf"({_TOKEN68})\s*(?:,|$)", rest)
            if token68 and not _PARAM.match(rest):
                current.token68 = token68.group(1)
                rest = rest[token68.end() :]
    return ParsedHeader(challenges, errors)


def bearer_challenge(response: httpx.Response) -> Challenge | None:
    """The `Bearer` challenge of a response, if it carries one."""
    return parse_www_authenticate(response.headers.get_list("www-authenticate")).scheme("Bearer")
