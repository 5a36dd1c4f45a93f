"""How the reference's servers answer when a handler crashes (some defects crash on purpose)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response


async def _server_error(request: Request, exc: Exception) -> Response:
    # uvicorn closes the connection after an unhandled exception; saying so in the response
    # keeps a client from sending its next request on a connection about to be reset.
    return PlainTextResponse("Internal Server Error", 500, headers={"Connection": "close"})


SERVER_ERROR_HANDLERS = {Exception: _server_error}
"""Starlette `exception_handlers` for a 500 that closes the connection cleanly."""
