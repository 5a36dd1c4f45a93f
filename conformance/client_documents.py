"""The suite's own host for OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-
metadata-document-01): the https URLs its test clients use as `client_id`.

A client identifier URL MUST be https (§3), so the documents are served over TLS on loopback,
with a certificate issued at start-up by a throwaway certificate authority; the target must
trust exactly that authority (`ca_file`) to fetch them. Three listeners share one table of
documents and one record of the requests they receive:

- `documents`: https on 127.0.0.2, the document host the target is told to allow;
- `plain`: http on 127.0.0.2, for identifiers that break the https rule;
- `canary`: https on 127.0.0.3, a loopback address the target was never told about, so any
  request reaching it shows that the target fetched from a special-use address (§6.5).

It is the suite's server, not the target's: checks publish documents and read the record
in-process.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conformance.servers import ServerThread, bind_loopback

DOCUMENT_HOST = "127.0.0.2"
CANARY_HOST = "127.0.0.3"
# The canary's address as an IPv4-mapped IPv6 literal: the same interface, spelled so that a
# guard that only parses dotted quads lets it through.
MAPPED_CANARY_HOST = f"::ffff:{CANARY_HOST}"
JSON = "application/json"
CLIENT_NAME = "mcp-auth-conformance test client"


@dataclass(frozen=True)
class Document:
    """What one path answers: any status, body and content type (valid or not)."""

    body: bytes
    status: int = 200
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Fetch:
    """One request a listener received."""

    listener: str  # "documents", "plain" or "canary"
    path: str
    at: float  # time.time()


def client_metadata(client_id: str, redirect_uris: list[str], /, **members: Any) -> dict[str, Any]:
    """A valid document for a public client (§4.1; MCP 2025-11-25 "Implementation
    Requirements": `client_id`, `client_name` and `redirect_uris` at least). `members` add or
    replace members; a member set to None is left out."""
    document: dict[str, Any] = {
        "client_id": client_id,
        "client_name": CLIENT_NAME,
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **members,
    }
    return {k: v for k, v in document.items() if v is not None}


def _without_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, as a web server resolves a request path that still has them."""
    if "/." not in path:
        return path
    resolved = posixpath.normpath(path)
    return resolved + "/" if path.endswith(("/", "/.", "/..")) and resolved != "/" else resolved


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificates(hosts: tuple[str, ...]) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate, server key), PEM: a CA made for this run only,
    and a one-day server certificate for the given IP addresses."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("mcp-auth-conformance document host CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("mcp-auth-conformance document host"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)) for host in hosts]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem), server.public_bytes(pem), key_pem


class ClientDocuments:
    """Serves published documents on the three listeners and records every request."""

    host = DOCUMENT_HOST

    def __init__(self) -> None:
        self._documents: dict[str, Document] = {}
        self._fetches: list[Fetch] = []
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="conformance-documents-"))
        ca, certificate, key = _certificates((DOCUMENT_HOST, CANARY_HOST, MAPPED_CANARY_HOST))
        self.ca_file = str(self._write("ca.pem", ca))
        tls = {
            "ssl_certfile": str(self._write("server.pem", certificate)),
            "ssl_keyfile": str(self._write("server-key.pem", key)),
        }
        self.servers = [
            ServerThread(self._app("documents"), bind_loopback(DOCUMENT_HOST), "cimd", **tls),
            ServerThread(self._app("plain"), bind_loopback(DOCUMENT_HOST), "cimd-plain"),
            ServerThread(self._app("canary"), bind_loopback(CANARY_HOST), "cimd-canary", **tls),
        ]
        self.origin, self.plain_origin, self.canary_origin = (s.url for s in self.servers)
        self.canary_port = self.servers[2].sock.getsockname()[1]

    def _write(self, name: str, content: bytes) -> Path:
        path = self._dir / name
        path.touch(mode=0o600)
        path.write_bytes(content)
        return path

    def _app(self, listener: str) -> Starlette:
        async def serve(request: Request) -> Response:
            path = _without_dot_segments(request.url.path)
            with self._lock:
                self._fetches.append(Fetch(listener, path, time.time()))
                document = self._documents.get(path)
            if document is None:
                return Response(status_code=404)
            return Response(
                document.body,
                status_code=document.status,
                headers={
                    "Content-Type": document.content_type,
                    "Cache-Control": "no-store",
                    **dict(document.headers),
                },
            )

        return Starlette(routes=[Route("/{path:path}", serve, methods=["GET"])])

    def launch(self) -> list[ServerThread]:
        """Start the listeners without waiting (see `ServerThread.wait_started`)."""
        return [server.launch() for server in self.servers]

    def close(self) -> None:
        """Forget the certificate and key files (the listeners are stopped by their owner)."""
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- what the checks use ---

    @staticmethod
    def new_path(label: str) -> str:
        """A path no document has used in this run."""
        return f"/clients/{label}-{secrets.token_hex(6)}.json"

    def publish(
        self,
        path: str,
        content: dict[str, Any] | list[Any] | bytes,
        *,
        status: int = 200,
        content_type: str = JSON,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer GET `path` (on every listener) with `content`: JSON unless given as bytes."""
        body = content if isinstance(content, bytes) else json.dumps(content).encode()
        with self._lock:
            self._documents[_without_dot_segments(path)] = Document(
                body, status, content_type, headers
            )

    def fetches(self, since: int = 0) -> list[Fetch]:
        """The requests received so far, from the `since`-th on (see `count`)."""
        with self._lock:
            return self._fetches[since:]

    def count(self) -> int:
        with self._lock:
            return len(self._fetches)
