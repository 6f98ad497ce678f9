"""Wire errors of the e-finance settlement simulator (one class per error it returns)."""

from __future__ import annotations

from simulators.common.errors import ApiError, Conflict, NotFound


class CollectionConflict(Conflict):
    """Raised when a ``collection_id`` is fed again with a different body."""

    code = "IDEMPOTENCY_CONFLICT"


class UnknownGovernorate(ApiError):
    """Raised when a collection names a governorate that has no bank account in the catalog."""

    code = "UNKNOWN_GOVERNORATE"
    status = 422


class UnknownCollection(ApiError):
    """Raised when a reversal's ``reverses`` is not a payment this settlement has received."""

    code = "UNKNOWN_COLLECTION"
    status = 422


class ReversalMismatch(ApiError):
    """Raised when a reversal does not fit its payment (governorate, amount, or missing ``reverses``)."""

    code = "REVERSAL_MISMATCH"
    status = 422


class AlreadyReversed(Conflict):
    """Raised when a payment that another reversal already reversed is reversed again."""

    code = "ALREADY_REVERSED"


class BatchNotFound(NotFound):
    """Raised when a settlement batch id in the path does not exist."""

    code = "BATCH_NOT_FOUND"


class InvalidDate(ApiError):
    """Raised when a business date in the path or query is not ``YYYY-MM-DD``."""

    code = "INVALID_DATE"
    status = 400


class InvalidQuery(ApiError):
    """Raised when a query parameter (format, governorate_code, bom) has a value the API does not know."""

    code = "INVALID_QUERY"
    status = 400


class KhalesFileNotFound(NotFound):
    """Raised when the content of a Khales end-of-day file is asked for a day none was received."""

    code = "KHALES_FILE_NOT_FOUND"


class CollectionNotFound(NotFound):
    """Raised when a collection id in the path was never received."""

    code = "COLLECTION_NOT_FOUND"
