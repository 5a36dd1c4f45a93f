"""JWK Sets (RFC 7517 §5) published at an authorization server's `jwks_uri`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from conformance.discovery import json_object
from conformance.http import Http


@dataclass
class JwkSet:
    url: str
    response: httpx.Response
    keys: list[dict[str, Any]] | None  # None when the body is not a JWK Set

    @property
    def kids(self) -> list[Any]:
        return [k.get("kid") for k in self.keys or []]

    def key_for(self, kid: str | None) -> dict[str, Any] | None:
        """The key a JWT names by `kid`; without a `kid`, a set's only key."""
        keys = self.keys or []
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.get("kid") == kid), None)


def fetch_jwk_set(http: Http, url: str) -> JwkSet:
    response = http.get(url, headers={"Accept": "application/json"}, note="JWK Set")
    body = json_object(response)
    keys = body.get("keys") if body and response.status_code == 200 else None
    if not isinstance(keys, list):
        return JwkSet(url, response, None)
    return JwkSet(url, response, [k for k in keys if isinstance(k, dict)])
