"""Login drivers: the form driver reads login forms; the vendor hook is dispatched."""

from __future__ import annotations

import textwrap

import pytest

from conformance.login import find_login_form


def test_form_driver_finds_the_form_with_both_fields() -> None:
    html = """
      <form action="/search"><input name="q"></form>
      <form method="POST" action="https://idp.example/login">
        <input type="hidden" name="request_id" value="r1">
        <input name="username"><input type="password" name="password">
        <input type="submit" value="Sign in"><button type="submit">Go</button>
      </form>"""
    form = find_login_form(html, "username", "password")
    assert form is not None
    assert (form.action, form.method) == ("https://idp.example/login", "post")
    assert [name for name, _ in form.fields] == ["request_id", "username", "password"]


def test_login_hook_is_dispatched(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        textwrap.dedent("""
        def pytest_conformance_login(config, authorization_url, user, redirect_uri):
            return f"{redirect_uri}?code=from-hook-{user.name}&state=s"
    """)
    )
    pytester.makepyfile(
        textwrap.dedent("""
        from conformance.config import TargetConfig, UserCredentials
        from conformance.login import FormLogin, sign_in

        def test_hook(request):
            driver = FormLogin(TargetConfig(login_driver="hook"))
            user = UserCredentials("alice", "alice", "pw")
            url = sign_in(request.config, driver, None, "https://as/authorize", user,
                          "http://127.0.0.1:8765/callback")
            assert url == "http://127.0.0.1:8765/callback?code=from-hook-alice&state=s"
    """)
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
