"""The API's error answers: ``{"error": {"code", "message"}}`` with the status code, from anywhere in the server."""

from __future__ import annotations

from fastapi.responses import JSONResponse

# Closing the connection after a 413 stops the server from draining the rest of a huge body.
CLOSE = {"Connection": "close"}


class ApiError(Exception):
    """An answer for the client: raised anywhere in request handling, turned into :func:`error_response`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class BodyTooLarge(Exception):
    """Raised by the body-counting ``receive`` once a streamed body passes the limit."""


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message}}, status_code=status, headers=headers)
