"""HTTP exchanges kept as evidence for a verdict, with every secret redacted.

Two layers of redaction: structural (known secret-bearing headers, parameters and JSON
members) and by value (every secret seen once is scrubbed wherever it appears again, e.g. a
token echoed in an HTML page). JWTs keep their header and claims, which reviewers need to
see, and lose their signature, without which they cannot be replayed; a private key in a
JWK (a DPoP proof's `jwk` header, say) loses its private members wherever it appears.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MAX_BODY_CHARS = 4096

SECRET_HEADERS = {"authorization", "cookie", "set-cookie", "proxy-authorization"}
SECRET_FIELDS = {
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "code_verifier",
    "client_secret",
    "password",
    "token",
    "assertion",
    "client_assertion",
    "subject_token",
    "actor_token",
    "registration_access_token",
    "initial_access_token",
    "device_code",
    "private_key",
    "d",
}
# RFC 7517 §4 / RFC 7518 §6: the members of a JWK that hold private or symmetric key material.
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# A compact JWS (RFC 7515 §7.1); the signature may be empty (`alg: none`).
_JWT = re.compile(r"\b(eyJ[A-Za-z0-9_-]*)\.(eyJ[A-Za-z0-9_-]*|[A-Za-z0-9_-]*)\.([A-Za-z0-9_-]*)")
_MIN_SCRUB_LEN = 8
# The scrub's index: each secret under its last _STRIDE windows of _GRAM characters, a text
# looked up at every _STRIDE-th offset only. Any occurrence of a secret (at least
# _GRAM + _STRIDE - 1 = _MIN_SCRUB_LEN long) covers one looked-up offset with one indexed
# window, so none is missed. The tail, not the head: JWTs share their first characters.
_GRAM = 5
_STRIDE = 4
# httpx logs every request URL at INFO (query-string codes and tokens included) and httpcore
# every response header at DEBUG (`Set-Cookie`, a `Location` carrying a code), before the
# suite could redact anything. The evidence is the suite's own, redacted, record of each
# exchange; these loggers stay at WARNING.
TRANSPORT_LOGGERS = ("httpx", "httpcore")


def silence_transport_logs() -> None:
    for name in TRANSPORT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def _b64url_json(segment: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # binascii.Error is a ValueError
        return None


class Redactor:
    """Redacts secrets structurally and remembers them to scrub them anywhere later."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._by_window: dict[str, set[str]] = {}

    def remember(self, value: str | None) -> None:
        if value and len(value) >= _MIN_SCRUB_LEN:
            with self._lock:
                if value not in self._secrets:
                    self._secrets.add(value)
                    end = len(value) - _GRAM
                    for offset in range(end - _STRIDE + 1, end + 1):
                        window = value[offset : offset + _GRAM]
                        self._by_window.setdefault(window, set()).add(value)

    def secret(self, value: str) -> str:
        if value.startswith("<redacted"):  # redacted before (evidence scrubbed twice)
            return value
        self.remember(value)
        return self._mask(value)

    def _mask(self, value: str) -> str:
        match = _JWT.fullmatch(value)
        if match and match.group(3):
            return self._unsigned(match)
        return f"<redacted:{fingerprint(value)}>" if value else value

    def _unsigned(self, match: re.Match[str]) -> str:
        """A JWT as reviewers need it: header and claims readable, but no signature, without
        which it cannot be replayed."""
        header, claims, signature = match.groups()
        return (
            f"{self._segment(header)}.{self._segment(claims)}."
            f"{'<redacted-signature>' if signature else ''}"
        )

    def _segment(self, segment: str) -> str:
        """A JWT header or claims set, re-encoded only when it holds something secret (e.g. a
        DPoP proof whose `jwk` carries the private key, which RFC 9449 §4.2 forbids and a
        negative check sends on purpose)."""
        decoded = _b64url_json(segment)
        if not isinstance(decoded, dict):
            return segment
        redacted = self.json_value(decoded)
        if redacted == decoded:
            return segment
        return base64.urlsafe_b64encode(json.dumps(redacted).encode()).rstrip(b"=").decode()

    def scrub(self, text: str) -> str:
        windows = {text[i : i + _GRAM] for i in range(0, len(text) - _GRAM + 1, _STRIDE)}
        with self._lock:
            index = self._by_window
            found = {secret for w in windows if w in index for secret in index[w]}
        for secret in sorted(found, key=len, reverse=True):  # longest first
            if secret in text:
                text = text.replace(secret, self._mask(secret))
        return _JWT.sub(self._unsigned, text) if "eyJ" in text else text

    def header(self, name: str, value: str) -> str:
        if name.lower() not in SECRET_HEADERS:
            return self.scrub(value)
        scheme, _, credential = value.partition(" ")
        if credential and name.lower().endswith("authorization"):
            return f"{scheme} {self.secret(credential.strip())}"
        return self.secret(value)

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        query = urlencode(self.pairs(parse_qsl(parts.query, keep_blank_values=True)))
        fragment = parts.fragment
        if "=" in fragment:
            fragment = urlencode(self.pairs(parse_qsl(fragment, keep_blank_values=True)))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, fragment))

    def pairs(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, self.secret(v) if k in SECRET_FIELDS else v) for k, v in pairs]

    def json_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            jwk = "kty" in value
            return {k: self._member(k, v, jwk) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json_value(v) for v in value]
        return value

    def _member(self, name: str, value: Any, jwk: bool) -> Any:
        if jwk and name in PRIVATE_JWK_MEMBERS:
            return self.secret(value) if isinstance(value, str) else "<redacted>"
        if name in SECRET_FIELDS and isinstance(value, str):
            return self.secret(value)
        return self.json_value(value)

    def body(self, content: bytes, content_type: str) -> str | None:
        if not content:
            return None
        text = content[: MAX_BODY_CHARS * 4].decode("utf-8", errors="replace")
        if "json" in content_type:
            with contextlib.suppress(ValueError, RecursionError):
                text = json.dumps(self.json_value(json.loads(text)), indent=1)
        elif "x-www-form-urlencoded" in content_type:
            text = urlencode(self.pairs(parse_qsl(text, keep_blank_values=True)))
        text = self.scrub(text)
        if len(text) > MAX_BODY_CHARS:
            text = text[:MAX_BODY_CHARS] + f"... [{len(content)} bytes in all]"
        return text


@dataclass
class Exchange:
    """One HTTP request and its response (or the transport error that replaced it)."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str | None
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str | None = None
    error: str | None = None
    elapsed_ms: float = 0.0
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict, which deep-copies every value (20 times slower, per exchange).
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["request_headers"] = dict(self.request_headers)
        data["response_headers"] = dict(self.response_headers)
        return data

    def summary(self) -> str:
        outcome = self.error or str(self.status)
        return f"{self.method} {self.url} -> {outcome}"
