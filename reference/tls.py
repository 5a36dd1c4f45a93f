"""One TLS context for the deployment's outgoing calls.

Building a context loads the CA bundle (~50 ms); an httpx client builds one unless it is given
one, and the reference makes several clients per run.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """httpx's default verification (the certifi bundle), built once per process."""
    return httpx.create_ssl_context()
