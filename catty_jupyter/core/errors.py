"""Errors a user can meet, each with a message that says what to do and an HTTP-ish status."""

from __future__ import annotations


class CattyError(Exception):
    """A refusal with a clear message; `status` is the HTTP code the API answers with."""

    status = 400
    reason = "bad_request"

    def __init__(self, message: str, *, reason: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        if status is not None:
            self.status = status


class NotFound(CattyError):
    """No such session (or environment, or permission request)."""

    status = 404
    reason = "not_found"


class Conflict(CattyError):
    """The request does not fit the session's current state."""

    status = 409
    reason = "conflict"


class TooLarge(CattyError):
    """A message or upload over its size limit."""

    status = 413
    reason = "too_large"


class Unavailable(CattyError):
    """This server cannot do it (e.g. no sandbox available); the message says what to install."""

    status = 503
    reason = "unavailable"
