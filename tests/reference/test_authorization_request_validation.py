"""Unit tests of the reference AS's redirect URI matching and PKCE value grammar, with and
without the defects that loosen them (`reference.authorization_server.authorize`, `params`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from reference.authorization_server.authorize import redirect_uri_matches
from reference.authorization_server.params import is_pkce_value, is_s256_challenge

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@dataclass
class _Ctx:
    """The one thing `redirect_uri_matches` asks of its context: which defects are on."""

    defects: tuple[str, ...] = ()

    def defect(self, name: str) -> bool:
        return name in self.defects


def matches(registered: str, requested: str, *defects: str) -> bool:
    ctx: Any = _Ctx(defects)
    return redirect_uri_matches(ctx, registered, requested)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (VERIFIER, True),
        (VERIFIER[:42], False),
        ("a" * 128, True),
        ("a" * 129, False),
        (VERIFIER[:41] + "+/", False),
        (VERIFIER + "\n", False),  # `$` would let a trailing newline through
    ],
)
def test_pkce_value_grammar(value: str, valid: bool) -> None:
    assert is_pkce_value(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (CHALLENGE, True),
        (CHALLENGE + "=", False),
        (CHALLENGE[:41] + ".~", False),
        ("a" * 44, False),
    ],
)
def test_s256_challenge_shape(value: str, valid: bool) -> None:
    assert is_s256_challenge(value) is valid


@pytest.mark.parametrize(
    ("registered", "requested", "expected"),
    [
        ("https://c.example/cb", "https://c.example/cb", True),
        ("https://c.example/cb", "https://C.example/cb", False),
        ("https://c.example/cb", "HTTPS://c.example/cb", False),
        ("https://c.example/cb", "https://user@c.example/cb", False),
        ("https://c.example/cb", "https://c.example/cb#f", False),
        ("https://c.example/cb", "https://c.example:444/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.1:53117/cb", True),
        ("http://127.0.0.1:8765/cb", "http://127.0.0.1:53117/cb", True),
        ("http://127.0.0.1/cb", "http://localhost:53117/cb", False),
        ("http://127.0.0.1/cb", "http://[::1]:53117/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.2:53117/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.1:53117/cb?x=1", False),
        ("http://127.0.0.1/cb", "http://user@127.0.0.1:53117/cb", False),
        ("http://127.0.0.1:8765/cb", "http://127.0.0.1:8765@127.0.0.2/cb", False),
    ],
)
def test_exact_matching_with_the_loopback_port_exception(
    registered: str, requested: str, expected: bool
) -> None:
    assert matches(registered, requested) is expected


def test_normalised_match_defect_ignores_case_and_userinfo() -> None:
    defect = "authz-redirect-normalised-match"
    assert matches("https://c.example/cb", "HTTPS://C.example/cb", defect)
    assert matches("https://c.example/cb", "https://user@c.example/cb", defect)
    assert not matches("https://c.example/cb", "https://c.example/cb/x", defect)
    assert not matches("http://127.0.0.1:8765/cb", "http://127.0.0.1:8765@127.0.0.2/cb", defect)


def test_loopback_host_confusion_defect_takes_any_loopback_host() -> None:
    defect = "authz-loopback-host-confusion"
    assert matches("http://127.0.0.1/cb", "http://localhost:53117/cb", defect)
    assert matches("http://127.0.0.1/cb", "http://[::1]:53117/cb", defect)
    assert not matches("http://127.0.0.1/cb", "http://127.0.0.2:53117/cb", defect)
    assert not matches("http://127.0.0.1/cb", "http://localhost:53117/other", defect)
