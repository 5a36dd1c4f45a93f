"""Shared fixtures of the reference deployment's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from conformance.servers import ServerThread, bind_loopback
from mock_idp import IdpClient, IdpSettings
from mock_idp import create_app as create_idp_app
from mock_idp.keys import SigningKey as IdpSigningKey
from reference import authorization_server
from reference.authorization_server.keys import generate_signing_key

AS_ISSUER = "http://127.0.0.1:41001"  # the reference AS, served through TestClient, never bound


@pytest.fixture(scope="module", autouse=True)
def _one_signing_key() -> Iterator[None]:
    """Reuse one RSA key for every AS instance of a module (key generation is slow)."""
    key = generate_signing_key()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(authorization_server, "generate_signing_key", lambda: key)
        yield


class Idp:
    """The mock IdP, served over loopback HTTP, with its signing key at hand."""

    def __init__(self, issuer: str, app: Starlette) -> None:
        self.issuer = issuer
        self.key: IdpSigningKey = app.state.signing_key


@pytest.fixture(scope="module")
def idp() -> Iterator[Idp]:
    """The mock IdP the reference AS federates sign-in to (client `reference-as`)."""
    sock = bind_loopback("127.0.0.1")
    issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = IdpSettings(
        issuer=issuer,
        clients=(IdpClient("reference-as", "reference-as-secret", (f"{AS_ISSUER}/callback",)),),
    )
    app = create_idp_app(settings)
    server = ServerThread(app, sock, "mock-idp").start()
    try:
        yield Idp(issuer, app)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def idp_issuer(idp: Idp) -> str:
    return idp.issuer
