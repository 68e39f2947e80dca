"""An API error: an HTTP status and one line naming the problem (sent as ``{"error": ...}``).

An HTTPException, so that FastAPI passes it through unchanged where it wraps other exceptions
(one raised while a request's form is read is otherwise turned into a generic 400)."""

from __future__ import annotations

from starlette.exceptions import HTTPException


class ApiError(HTTPException):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(status_code=status, detail=message)
        self.status = status
        self.message = message
