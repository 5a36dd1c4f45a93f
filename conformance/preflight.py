"""Before collecting anything: is the `--target` URL there, and does it look like MCP?

An unreachable or plainly wrong target is a configuration problem: one line that says what
to fix, within the suite's timeouts, instead of a run of identical errors.
"""

from __future__ import annotations

from conformance import mcp
from conformance.errors import ConfigError, HarnessError
from conformance.evidence import Redactor
from conformance.http import HostScope, Http, Limits
from conformance.settings import RunSettings

_LIMITS = Limits(connect_timeout=5.0, read_timeout=10.0, deadline=12.0)


def preflight(settings: RunSettings) -> None:
    url = settings.target
    scope = HostScope()
    scope.add_url(url)
    http = Http(scope, Redactor(), _LIMITS)
    try:
        response = mcp.post(http, url, mcp.initialize(settings.config.protocol_version))
    except HarnessError as exc:
        raise ConfigError(f"target {url} is unreachable ({exc}); check --target") from None
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
