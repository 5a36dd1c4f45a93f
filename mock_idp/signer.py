"""POST /_test/sign: a test-only hook that signs arbitrary JWTs with the IdP's key.

It lets the suite build ID-JAGs a resource authorization server must refuse (expired,
mistyped, addressed to another server, naming another client). It is routed only when
`settings.test_signer` is true, and answers loopback callers only.

Request: JSON `{"claims": {...}, "header": {...}}`; response `{"token": "<JWT>"}`. The
header defaults to `{"kid": <the IdP kid>, "typ": "JWT"}`; given members override those
and a null value removes one. `alg` is always RS256 (any other value is refused).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mock_idp.keys import ALGORITHM, SigningKey


def is_loopback_client(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def signing_header(requested: dict[str, Any], kid: str) -> dict[str, Any]:
    """`kid` and `typ: JWT` unless overridden; a null value removes the member."""
    header = {"kid": kid, "typ": "JWT", **requested}
    header.pop("alg", None)
    if header.get("kid") is None:
        header.pop("kid")
    if header.get("typ") is None:
        header["typ"] = ""  # pyjwt leaves a falsy typ out of the header
    return header


async def sign_endpoint(request: Request, signing_key: SigningKey) -> Response:
    """Sign `claims` (RS256, the IdP key) under `header`."""
    if request.client is None or not is_loopback_client(request.client.host):
        return JSONResponse({"error": "forbidden"}, status_code=403)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    if not isinstance(body, dict):
        body = {}
    claims, header = body.get("claims"), body.get("header") or {}
    if not isinstance(claims, dict) or not isinstance(header, dict):
        return JSONResponse(
            {"error": 'expected {"claims": {...}, "header": {...}}'}, status_code=400
        )
    if header.get("alg", ALGORITHM) != ALGORITHM:
        return JSONResponse({"error": f"only {ALGORITHM} is signed here"}, status_code=400)
    try:
        token = jwt.encode(
            claims,
            signing_key.private_key,
            algorithm=ALGORITHM,
            headers=signing_header(header, signing_key.kid),
        )
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"token": token})
