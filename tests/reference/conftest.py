"""Shared fixtures of the reference deployment's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reference import authorization_server
from reference.authorization_server.keys import generate_signing_key


@pytest.fixture(scope="module", autouse=True)
def _one_signing_key() -> Iterator[None]:
    """Reuse one RSA key for every AS instance of a module (key generation is slow)."""
    key = generate_signing_key()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(authorization_server, "generate_signing_key", lambda: key)
        yield
