"""POST /_test/sign: a test-only hook that signs arbitrary JWTs with the access-token key.

It lets the suite build expired, not-yet-valid or mistyped tokens. It exists only when
`settings.test_signer` is true, and answers loopback callers only.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reference.authorization_server.context import context
from reference.authorization_server.keys import ALGORITHM

LOOPBACK_CLIENTS = ("127.0.0.1", "::1", "localhost")


def _header(requested: dict[str, Any], kid: str) -> dict[str, Any]:
    """`kid` and `typ: at+jwt` unless overridden; a null value removes the member."""
    header = {"kid": kid, "typ": "at+jwt", **requested}
    header.pop("alg", None)
    if header.get("kid") is None:
        header.pop("kid")
    if header.get("typ") is None:
        header["typ"] = ""  # pyjwt drops a falsy typ
    return header


async def loopback_json(request: Request) -> dict[str, Any] | Response:
    """The JSON object a test hook was sent ({} for another JSON value), or the error response:
    403 for a caller that is not on loopback, 400 for a body that is not JSON."""
    if request.client is None or request.client.host not in LOOPBACK_CLIENTS:
        return JSONResponse({"error": "forbidden"}, status_code=403)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    return body if isinstance(body, dict) else {}


async def sign_endpoint(request: Request) -> Response:
    """Sign `claims` with the AS key (RS256); `header` may override kid/typ."""
    ctx = context(request)
    body = await loopback_json(request)
    if isinstance(body, Response):
        return body
    claims, header = body.get("claims"), body.get("header") or {}
    if not isinstance(claims, dict) or not isinstance(header, dict):
        return JSONResponse(
            {"error": 'expected {"claims": {...}, "header": {...}}'}, status_code=400
        )
    if header.get("alg", ALGORITHM) != ALGORITHM:
        return JSONResponse({"error": f"only {ALGORITHM} is signed here"}, status_code=400)
    try:
        token = jwt.encode(
            claims, ctx.key.private_key, algorithm=ALGORITHM, headers=_header(header, ctx.key.kid)
        )
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"token": token})
