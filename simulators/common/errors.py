"""Wire errors shared by every component.

Each exception class says when it is raised and carries the machine-readable ``code``, the HTTP
``status`` and, where one field is at fault, its name. One Flask error handler (installed by
:mod:`simulators.common.component`) renders them all as
``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

from typing import Any

MAX_MESSAGE = 500  # an error names the field; it never echoes a whole (possibly huge) value back


class ApiError(Exception):
    """Base of every error a component returns on purpose."""

    code = "BAD_REQUEST"
    status = 400

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 status: int | None = None, details: Any = None) -> None:
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "…"
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details
        if code:
            self.code = code
        if status:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class MalformedBody(ApiError):
    """Raised when a body is not parseable JSON (or not the media type the endpoint takes)."""

    code = "MALFORMED_BODY"


class UnsupportedMediaType(ApiError):
    """Raised when a JSON endpoint is sent another media type (or none)."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415


class ValidationFailed(ApiError):
    """Raised when a body parses but breaks its JSON Schema in ``contracts/``."""

    code = "VALIDATION_FAILED"
    status = 422


class InvalidAmount(ApiError):
    """Raised when an amount is not a non-negative decimal string with exactly two fraction digits."""

    code = "INVALID_AMOUNT"
    status = 422


class NotFound(ApiError):
    """Raised when the entity named in the path or body does not exist."""

    code = "NOT_FOUND"
    status = 404


class Conflict(ApiError):
    """Raised when an idempotency key is reused with another body, or a state forbids the call."""

    code = "CONFLICT"
    status = 409


class BadSignature(ApiError):
    """Raised when a signed request's signature is missing, wrong or outside the replay window."""

    code = "BAD_SIGNATURE"
    status = 401


class Unavailable(ApiError):
    """Raised when the component is made unavailable by an injected fault or a dependency is down."""

    code = "UNAVAILABLE"
    status = 503
