"""Test-only pytest plugin: harvests every secret a certification run handles.

Loaded into the run under test by the secret-scan self-test (`-p tests.secret_tap`, see
`tests/test_secret_scan.py`); it is not part of the suite and never ships with it. In the run's
own process it collects, without changing what the run does:

- everything secret that crosses HTTP, in either direction, for the suite's client and for
  the embedded servers' own outbound calls alike (every `httpx` transport is tapped): the
  credential of `Authorization` (and the client secret inside `Basic`), `DPoP` proofs,
  `Cookie` and `Set-Cookie` values, API-key headers, secret-named members of JSON bodies and of
  form bodies, query strings and `Location` URLs (`code`, `access_token`, `client_secret`, ...),
  secret-named fields of HTML forms, and every JWT anywhere (including its signature alone:
  the reports keep a JWT's header and claims readable, so its signature is all that keeps it
  from being replayed; a leaked signature is a leaked token);
- every private key generated in the process (the reference's and the mocks' signing keys,
  the suite's DPoP keys, token signer and attacker-issuer keys): as PKCS#8 and traditional
  PEM, each PEM line, the DER in one base64 line, the JWK private members (`d`, `p`, `q`,
  `dp`, `dq`, `qi`) and the private exponent in decimal;
- the secrets the embedded deployment is configured with (client secrets, passwords, bearer
  and integration keys), wherever they were used or not.

Deliberately not secrets: `state`, `nonce`, PKCE `code_challenge`, `DPoP-Nonce`, `jti`,
`client_id`, and `Mcp-Session-Id` (MCP requires every request to carry its own credential,
so a session ID alone authorises nothing; the suite checks exactly that).

When the session ends, the harvest is written as JSON to the file named by
`SECRET_TAP_OUT` (which the self-test keeps outside every directory it scans). With
`SECRET_TAP_BREAK=<field>`, the suite's structural redaction forgets that one field, so the
self-test can prove that its scan catches a broken redactor.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import json
import os
import re
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

OUT_ENV = "SECRET_TAP_OUT"
BREAK_ENV = "SECRET_TAP_BREAK"
CONFIGURED = "config:"
"""Prefix of the kind of a secret the deployment was configured with (not made by the run)."""

# Members and parameters whose value is a credential, by name (JSON, forms, query strings).
# Written out here, not imported from conformance.evidence: the tap is the scan's independent
# oracle, so a name missing from the suite's redaction list still shows up as a leak.
SECRET_NAMES = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "issued_token",
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
        "api_key",
        "bearer_token",
        "secret",
        # JWK private members (RFC 7518 §6.2.2, §6.3.2, §6.4.1)
        "d",
        "p",
        "q",
        "dp",
        "dq",
        "qi",
        "k",
    }
)
# Members and parameters that are public by design. A value seen in one of these roles is
# not a secret even where a negative check also sends it as one (the PKCE challenge presented
# as the verifier, say).
PUBLIC_NAMES = frozenset(
    {"code_challenge", "client_id", "state", "nonce", "jkt", "dpop_jkt", "kid", "n", "e", "x", "y"}
)
# Headers that carry a raw credential; `Authorization` and the cookie headers are parsed.
KEY_HEADERS = frozenset({"x-api-key", "api-key", "x-auth-token", "proxy-authorization"})
# Configuration fields of the embedded deployment that hold a secret.
_SECRET_FIELD = re.compile(r"(secret|password|(?<!_)token|_token|_key|_keys)$")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.([A-Za-z0-9_-]*)")
_INPUT = re.compile(r"<input[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r'(name|value)\s*=\s*["\']([^"\']*)["\']', re.IGNORECASE)


class Harvest:
    """Secret values seen in this process, each with the kind and the place it was seen."""

    def __init__(self) -> None:
        self.secrets: dict[str, tuple[str, str]] = {}
        self.public: set[str] = set()
        self.requests = {"sync": 0, "async": 0}  # tapped, by transport (the suite's is sync)
        self._lock = threading.Lock()

    def add(self, value: Any, kind: str, source: str) -> None:
        """A secret value; of a JWT, its signature (header and claims are not secret, and an
        unsigned JWT has nothing secret left)."""
        if not isinstance(value, str) or not value:
            return
        jwt = _JWT.fullmatch(value)
        if jwt:
            value, kind = jwt.group(1), f"{kind} (JWT signature)"
            if not value:
                return
        with self._lock:
            self.secrets.setdefault(value, (kind, source))

    def add_public(self, value: Any) -> None:
        if isinstance(value, str) and value:
            with self._lock:
                self.public.add(value)

    def add_text(self, text: str, source: str) -> None:
        """Every JWT anywhere in `text`, and secret-named form fields and URL parameters."""
        for match in _JWT.finditer(text):
            self.add(match.group(0), "JWT", source)
        for tag in _INPUT.findall(text):
            attributes = {k.lower(): v for k, v in _ATTRIBUTE.findall(tag)}
            if attributes.get("name") in SECRET_NAMES:
                self.add(attributes.get("value"), attributes["name"], source)
        for match in re.finditer(r"[?&#]([a-z_]+)=([^&#\s\"'<>]+)", text):
            if match.group(1) in SECRET_NAMES:
                self.add(unquote(match.group(2)), match.group(1), source)

    def add_pairs(self, pairs: list[tuple[str, str]], source: str) -> None:
        for name, value in pairs:
            if name in SECRET_NAMES:
                self.add(value, name, source)
            elif name in PUBLIC_NAMES:
                self.add_public(value)
            else:
                self.add_text(value, source)

    def add_url(self, url: str, source: str) -> None:
        parts = urlsplit(url)
        self.add_pairs(parse_qsl(parts.query, keep_blank_values=True), source)
        self.add_pairs(parse_qsl(parts.fragment, keep_blank_values=True), source)

    def add_json(self, value: Any, source: str, name: str = "") -> None:
        if isinstance(value, dict):
            for key, member in value.items():
                self.add_json(member, source, str(key))
        elif isinstance(value, list):
            for member in value:
                self.add_json(member, source, name)
        elif isinstance(value, str):
            if name.lower() in SECRET_NAMES:
                self.add(value, name.lower(), source)
            elif name.lower() in PUBLIC_NAMES:
                self.add_public(value)
            elif name.lower() in ("authorization", "dpop", "cookie", "set-cookie"):
                self.add_header(name, value, source)
            else:
                self.add_text(value, source)

    def add_header(self, name: str, value: str, source: str) -> None:
        lower = name.lower()
        if lower == "authorization" or lower == "proxy-authorization":
            scheme, _, credential = value.strip().partition(" ")
            credential = credential.strip()
            self.add(credential, f"authorization:{scheme.lower()}", source)
            if scheme.lower() == "basic":
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    decoded = base64.b64decode(credential, validate=True).decode()
                    # RFC 6749 §2.3.1: client id and secret are form-encoded before Basic
                    self.add(unquote(decoded.partition(":")[2].replace("+", " ")), "basic", source)
        elif lower == "dpop":
            if _JWT.fullmatch(value.strip()):  # anything else is a placeholder, not a proof
                self.add(value.strip(), "DPoP proof", source)
        elif lower == "cookie":
            for crumb in value.split(";"):
                self.add(crumb.partition("=")[2].strip(), "cookie", source)
        elif lower == "set-cookie":
            self.add(value.split(";", 1)[0].partition("=")[2].strip(), "cookie", source)
        elif lower in KEY_HEADERS:
            self.add(value.strip(), lower, source)
        elif lower == "location":
            self.add_url(value, source)
        else:
            self.add_text(value, source)

    def add_body(self, content: bytes, headers: httpx.Headers, source: str) -> None:
        if not content:
            return
        encoding = headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate"):
            with contextlib.suppress(zlib.error):
                content = zlib.decompress(content, 16 + zlib.MAX_WBITS if encoding == "gzip" else 0)
        text = content.decode("utf-8", errors="replace")
        content_type = headers.get("content-type", "")
        if "x-www-form-urlencoded" in content_type:
            self.add_pairs(parse_qsl(text, keep_blank_values=True), source)
        elif "json" in content_type or text.lstrip().startswith(("{", "[")):
            try:
                self.add_json(json.loads(text), source)
            except ValueError:
                self.add_text(text, source)
        elif "event-stream" in content_type:
            for line in text.splitlines():
                if line.startswith("data:"):
                    with contextlib.suppress(ValueError):
                        self.add_json(json.loads(line[5:]), source)
        self.add_text(text, source)

    def add_request(self, request: httpx.Request, transport: str) -> None:
        with self._lock:
            self.requests[transport] += 1
        source = f"request {request.method} {request.url.copy_with(query=None)}"
        self.add_url(str(request.url), source)
        for name, value in request.headers.multi_items():
            self.add_header(name, value, source)
        with contextlib.suppress(httpx.RequestNotRead):
            self.add_body(request.content, request.headers, source)

    def add_response(self, request: httpx.Request, response: httpx.Response, body: bytes) -> None:
        source = f"response to {request.method} {request.url.copy_with(query=None)}"
        for name, value in response.headers.multi_items():
            self.add_header(name, value, source)
        self.add_body(body, response.headers, source)

    def add_private_key(self, key: Any, source: str) -> None:
        """Every form a private key could leak in: PEM, each PEM line, DER, JWK members."""
        if isinstance(key, rsa.RSAPrivateKey):
            numbers = key.private_numbers()
            public = _octets(numbers.public_numbers.n)
            members = {
                "d": _octets(numbers.d),
                "p": _octets(numbers.p),
                "q": _octets(numbers.q),
                "dp": _octets(numbers.dmp1),
                "dq": _octets(numbers.dmq1),
                "qi": _octets(numbers.iqmp),
            }
            private_value = numbers.d
        else:
            private_value = key.private_numbers().private_value
            public = key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            # RFC 7518 §6.2.2.1: EC `d` has the full length of the curve's order
            members = {"d": private_value.to_bytes((key.key_size + 7) // 8, "big")}
        for name, raw in members.items():
            self.add(base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), f"JWK {name}", source)
        self.add(str(private_value), "private exponent (decimal)", source)
        for fmt in (
            serialization.PrivateFormat.PKCS8,
            serialization.PrivateFormat.TraditionalOpenSSL,
        ):
            pem = key.private_bytes(
                serialization.Encoding.PEM, fmt, serialization.NoEncryption()
            ).decode()
            self.add(pem, "private key PEM", source)
            lines = [line for line in pem.splitlines() if not line.startswith("-----")]
            self.add("".join(lines), "private key DER", source)
            for line in lines:
                # a line that encodes only public bytes (the RSA modulus, the EC point) is
                # no secret: the JWK Set publishes the same bytes, possibly aligned alike
                if base64.b64decode(line) not in public:
                    self.add(line, "private key PEM line", source)

    def add_config(self, value: Any, source: str, name: str = "") -> None:
        """Secret-named string fields of a (nested) configuration dataclass."""
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for member in dataclasses.fields(value):
                self.add_config(getattr(value, member.name), source, member.name)
        elif isinstance(value, tuple | list):
            for member in value:
                self.add_config(member, source, name)
        elif isinstance(value, str) and _SECRET_FIELD.search(name) and "://" not in value:
            self.add(value, f"{CONFIGURED}{name}", source)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            secrets = [
                {"value": value, "kind": kind, "source": source}
                for value, (kind, source) in self.secrets.items()
                if value not in self.public
            ]
            return {"requests": dict(self.requests), "secrets": secrets}


def _octets(number: int) -> bytes:
    """RFC 7518 §2 Base64urlUInt: big-endian, as few octets as hold the value."""
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")


HARVEST = Harvest()


class _TeeStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, done: Any) -> None:
        self._inner, self._done, self._body = inner, done, bytearray()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._body.extend(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()
        self._done(bytes(self._body))


class _AsyncTeeStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, done: Any) -> None:
        self._inner, self._done, self._body = inner, done, bytearray()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._body.extend(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
        self._done(bytes(self._body))


def _tap_transports() -> None:
    sync_send = httpx.HTTPTransport.handle_request
    async_send = httpx.AsyncHTTPTransport.handle_async_request

    @functools.wraps(sync_send)
    def handle_request(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        HARVEST.add_request(request, "sync")
        response = sync_send(self, request)
        response.stream = _TeeStream(
            response.stream,  # type: ignore[arg-type]
            lambda body: HARVEST.add_response(request, response, body),
        )
        return response

    @functools.wraps(async_send)
    async def handle_async_request(
        self: httpx.AsyncHTTPTransport, request: httpx.Request
    ) -> httpx.Response:
        HARVEST.add_request(request, "async")
        response = await async_send(self, request)
        response.stream = _AsyncTeeStream(
            response.stream,  # type: ignore[arg-type]
            lambda body: HARVEST.add_response(request, response, body),
        )
        return response

    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request  # type: ignore[method-assign]


def _tap_key_generation() -> None:
    rsa_generate, ec_generate = rsa.generate_private_key, ec.generate_private_key

    @functools.wraps(rsa_generate)
    def generate_rsa(*args: Any, **kwargs: Any) -> rsa.RSAPrivateKey:
        key = rsa_generate(*args, **kwargs)
        HARVEST.add_private_key(key, "rsa.generate_private_key")
        return key

    @functools.wraps(ec_generate)
    def generate_ec(*args: Any, **kwargs: Any) -> ec.EllipticCurvePrivateKey:
        key = ec_generate(*args, **kwargs)
        HARVEST.add_private_key(key, "ec.generate_private_key")
        return key

    rsa.generate_private_key = generate_rsa
    ec.generate_private_key = generate_ec


def _tap_configuration() -> None:
    """The embedded deployment's settings and the target config it hands to the suite."""
    from conformance.config import TargetConfig
    from mock_idp import IdpSettings
    from mock_saas.settings import SaasSettings
    from reference.settings import ReferenceSettings

    for cls in (TargetConfig, IdpSettings, SaasSettings, ReferenceSettings):
        cls.__init__ = _harvesting(cls.__init__)  # type: ignore[method-assign]


def _harvesting(init: Any) -> Any:
    @functools.wraps(init)
    def harvesting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        HARVEST.add_config(self, type(self).__name__)

    return harvesting_init


def _break_redaction(field: str) -> None:
    """Make the suite's structural redaction forget one field (for the self-test of the scan)."""
    from conformance import evidence

    evidence.SECRET_FIELDS.discard(field)


def pytest_configure(config: pytest.Config) -> None:
    _tap_configuration()
    if os.environ.get(BREAK_ENV):
        _break_redaction(os.environ[BREAK_ENV])


def pytest_unconfigure(config: pytest.Config) -> None:
    out = os.environ.get(OUT_ENV)
    if out:
        Path(out).write_text(json.dumps(HARVEST.to_json()), "utf-8")


# `-p tests.secret_tap` imports this module before pytest loads the suite's plugin, so keys
# made and requests sent while the suite's modules load are seen too. Imported anywhere else
# (the self-test reads its constants), it changes nothing.
if os.environ.get(OUT_ENV):
    _tap_transports()
    _tap_key_generation()
