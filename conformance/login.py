"""Signing a test user in during an authorization request, headlessly.

The `form` driver (also used for the bundled mock IdP, whose login page is a plain form)
follows redirects step by step, fills the first form that has the configured username and
password fields, and stops at the redirect to the client's redirect URI without following it.
A vendor whose login needs a real browser implements the `pytest_conformance_login` hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest

from conformance.config import TargetConfig, UserCredentials
from conformance.errors import PreconditionFailed
from conformance.http import Http
from conformance.oauth.authorization import same_endpoint


class LoginHookSpec:
    @pytest.hookspec(firstresult=True)
    def pytest_conformance_login(  # type: ignore[empty-body]
        self,
        config: pytest.Config,
        authorization_url: str,
        user: UserCredentials,
        redirect_uri: str,
    ) -> str | None:
        """Sign `user` in for `authorization_url`; return the URL the AS finally redirected to
        (the client's `redirect_uri` with `code`, `state`, `iss`), or None to decline."""


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = Form(a.get("action", ""), a.get("method", "get").lower(), [])
            self.forms.append(self._current)
        elif (
            tag == "input"
            and self._current is not None
            and a.get("name")
            and a.get("type", "text") not in ("button", "reset", "image", "file")
        ):
            self._current.fields.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def find_login_form(html: str, username_field: str, password_field: str) -> Form | None:
    parser = _FormParser()
    parser.feed(html)
    for form in parser.forms:
        names = {name for name, _ in form.fields}
        if username_field in names and password_field in names:
            return form
    return None


class FormLogin:
    """Follows the authorization request through a login form to the client's redirect URI."""

    def __init__(self, config: TargetConfig) -> None:
        self.config = config

    def sign_in(
        self, http: Http, authorization_url: str, user: UserCredentials, redirect_uri: str
    ) -> str:
        url, method, data = authorization_url, "GET", None
        for _ in range(self.config.login_max_steps):
            response = http.request(method, url, data=data, note=f"login as {user.name}")
            if response.is_redirect:
                location = urljoin(url, response.headers["location"])
                if same_endpoint(location, redirect_uri):
                    return location
                url, method, data = location, "GET", None
                continue
            form = None
            if response.status_code == 200 and "html" in response.headers.get("content-type", ""):
                form = find_login_form(
                    response.text, self.config.username_field, self.config.password_field
                )
            if form is None:
                raise PreconditionFailed(
                    f"login as {user.name} stopped at {response.status_code} from {url}: "
                    "no redirect and no login form with fields "
                    f"{self.config.username_field!r}/{self.config.password_field!r}"
                )
            filled = {
                self.config.username_field: user.username,
                self.config.password_field: user.password,
            }
            data = [(k, filled.get(k, v)) for k, v in form.fields]
            url, method = urljoin(url, form.action or url), form.method.upper()
        raise PreconditionFailed(
            f"login as {user.name} did not reach {redirect_uri} within "
            f"{self.config.login_max_steps} steps"
        )


def sign_in(
    pytest_config: pytest.Config,
    driver: FormLogin,
    http: Http,
    authorization_url: str,
    user: UserCredentials,
    redirect_uri: str,
) -> str:
    """Sign in through the vendor's hook when one answers, else through the form driver."""
    if driver.config.login_driver == "hook":
        result = pytest_config.hook.pytest_conformance_login(
            config=pytest_config,
            authorization_url=authorization_url,
            user=user,
            redirect_uri=redirect_uri,
        )
        if result is None:
            raise PreconditionFailed(
                "login driver 'hook' chosen but no plugin implements pytest_conformance_login"
            )
        return str(result)
    return driver.sign_in(http, authorization_url, user, redirect_uri)
