"""Request parameter handling shared by the endpoints (OAuth 2.1 §3.1)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

from reference.authorization_server.errors import OAuthError

# OAuth 2.1 Appendix A.17-A.18 / RFC 7636 §4.1: code-verifier = code-challenge = 43*128unreserved.
_PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# RFC 7636 §4.2: an S256 challenge is BASE64URL(SHA-256(verifier)), 43 characters unpadded.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass
class Params:
    """Parameters of one request, keeping every value so repeats can be detected."""

    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """The first value of `name`, or None when it was not sent."""
        vals = self.values.get(name)
        return vals[0] if vals else None

    def all(self, name: str) -> list[str]:
        return list(self.values.get(name, []))

    def repeated(self, *, allowed: Iterable[str] = ()) -> list[str]:
        """Names sent more than once, ignoring those that may repeat."""
        skip = set(allowed)
        return [n for n, v in self.values.items() if len(v) > 1 and n not in skip]


def collect(items: Iterable[tuple[str, str]]) -> Params:
    """Group request parameters by name.

    OAuth 2.1 §3.1: "Parameters sent without a value MUST be treated as if they were omitted
    from the request."
    """
    params = Params()
    for name, value in items:
        if value == "":
            continue
        params.values.setdefault(name, []).append(value)
    return params


def split_scope(scope: str | None) -> list[str]:
    """Space-delimited scope string to an ordered list without duplicates (OAuth 2.1 §1.4.1)."""
    seen: list[str] = []
    for s in (scope or "").split(" "):
        if s and s not in seen:
            seen.append(s)
    return seen


def is_pkce_value(value: str) -> bool:
    """A code_verifier, or a plain code_challenge: 43 to 128 unreserved characters."""
    return _PKCE_VALUE.fullmatch(value) is not None


def is_s256_challenge(value: str) -> bool:
    """A value BASE64URL(SHA-256(...)) can take: 43 characters of the base64url alphabet."""
    return _S256_CHALLENGE.fullmatch(value) is not None


def is_absolute_uri_without_fragment(value: str) -> bool:
    """RFC 8707 §2: a resource indicator is an absolute URI and must not include a fragment."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme) and bool(parts.netloc) and "#" not in value


async def read_form(request: Request) -> Params:
    """An application/x-www-form-urlencoded body.

    OAuth 2.1 §3.1: "Request and response parameters MUST NOT be included more than once"
    (`resource` may repeat, RFC 8707 §2; callers judge it).
    """
    async with request.form() as raw:
        form = collect((k, v) for k, v in raw.multi_items() if isinstance(v, str))
    repeated = form.repeated(allowed=("resource",))
    if repeated:
        raise OAuthError("invalid_request", f"repeated parameter(s): {', '.join(repeated)}")
    return form
