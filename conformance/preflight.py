"""Before collecting anything: is the `--target` URL there, and does it look like MCP?

An unreachable or plainly wrong target is a configuration problem: one line that says what
to fix, within the suite's timeouts, instead of a run of identical errors. A target that
accepts the connection and then misbehaves (never answers, trickles, sends an endless
response) is not a configuration problem but a finding about the target: the run goes on,
every check ends as `error` naming the fault, and the reports are written.
"""

from __future__ import annotations

import pytest

from conformance import mcp
from conformance.errors import ConfigError, ConnectionFailed, HarnessError
from conformance.evidence import Redactor
from conformance.http import HostScope, Http
from conformance.settings import RunSettings

PREFLIGHT_FAULT = pytest.StashKey[str]()
"""Why the MCP endpoint could not be judged at all, when it accepted but did not answer."""


def preflight(settings: RunSettings) -> str | None:
    """None when the target answers like an MCP endpoint; the fault when it misbehaves.
    Raises `ConfigError` when nothing is there or it is plainly not an MCP endpoint."""
    url = settings.target
    scope = HostScope()
    scope.add_url(url)
    http = Http(scope, Redactor(), settings.config.limits)
    try:
        response = mcp.post(http, url, mcp.initialize(settings.config.protocol_version))
    except ConnectionFailed as exc:
        raise ConfigError(f"target {url} is unreachable ({exc}); check --target") from None
    except HarnessError as exc:
        return f"the MCP endpoint failed the preflight initialize, so no check can judge it: {exc}"
    finally:
        http.close()
    content_type = response.headers.get("content-type", "")
    looks_like_mcp = (
        response.status_code in (401, 403)
        or "www-authenticate" in response.headers
        or "json" in content_type
        or "event-stream" in content_type
    )
    if not looks_like_mcp:
        raise ConfigError(
            f"target {url} does not look like an MCP endpoint: an MCP initialize request got "
            f"{response.status_code} {content_type or 'without a content type'}; "
            "--target must be the MCP endpoint URL (e.g. https://host/mcp)"
        )
    return None
