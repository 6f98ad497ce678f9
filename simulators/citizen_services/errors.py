"""Wire errors of the central citizen-services system.

Each class is one error the system returns on purpose; the common error handler renders it as
``{"error": {"code", "message", "field"}}``. Generic errors (malformed body, schema violations,
bad signature, idempotency conflicts) come from :mod:`simulators.common.errors`.
"""

from __future__ import annotations

from simulators.common.errors import ApiError, Conflict, NotFound


class UnknownGovernorate(ApiError):
    """Raised when a service request names a governorate that is not in the catalog."""

    code = "UNKNOWN_GOVERNORATE"
    status = 422


class UnknownService(ApiError):
    """Raised when a service request names a service that is not in the catalog."""

    code = "UNKNOWN_SERVICE"
    status = 422


class UnknownLocalUnit(ApiError):
    """Raised when a service request names a local unit the governorate does not have."""

    code = "UNKNOWN_LOCAL_UNIT"
    status = 422


class AssessmentTooLarge(ApiError):
    """Raised when a fee line or the total would pass the largest amount the wire carries
    (999,999,999,999.99 EGP): a catalog edited with huge rates times huge units must fail here, naming
    the units, not publish an answer off its own contract."""

    code = "AMOUNT_TOO_LARGE"
    status = 422


class MissingUnits(ApiError):
    """Raised when a per-unit fee line needs a unit (e.g. ``area_m2``) that neither the request
    nor the service's default units give."""

    code = "MISSING_UNITS"
    status = 422


class UnknownUnit(ApiError):
    """Raised when ``units`` names a quantity the service does not charge by (a typo would go unbilled)."""

    status = 422
    code = "UNKNOWN_UNIT"


class InvalidName(ApiError):
    """Raised when a citizen's name has fewer than two letters or holds control or invisible characters."""

    status = 422
    code = "INVALID_NAME"


class InvalidNationalId(ApiError):
    """Raised when a given citizen's national ID is not structurally valid (or, when the option is
    on, fails the community check digit)."""

    code = "INVALID_NATIONAL_ID"
    status = 422


class UnknownRequest(NotFound):
    """Raised when a request number (in the path or in a confirmation) was never issued."""

    code = "UNKNOWN_REQUEST"


class UnknownPayment(NotFound):
    """Raised when a cancellation names a payment_id that was never confirmed."""

    code = "UNKNOWN_PAYMENT"


class AmountMismatch(ApiError):
    """Raised when a confirmed amount is not the request's assessed total (P6)."""

    code = "AMOUNT_MISMATCH"
    status = 422


class RequestMismatch(ApiError):
    """Raised when a cancellation names another request than the one the payment confirmed."""

    code = "REQUEST_MISMATCH"
    status = 422


class AlreadyPaid(Conflict):
    """Raised when a request already paid by one payment_id is confirmed with another one."""

    code = "ALREADY_PAID"


class RequestExpired(Conflict):
    """Raised when a payment is confirmed for a request that expired unpaid before it was paid
    (``paid_at`` not before ``expires_at``, or any late confirmation when ``accept_paid_before_expiry`` is
    off); the refusal is recorded (``GET /api/confirmation-conflicts``) and nothing is applied."""

    code = "REQUEST_EXPIRED"


class RequestCancelled(Conflict):
    """Raised when a payment is confirmed for a request the citizen cancelled; recorded, not applied."""

    code = "REQUEST_CANCELLED"


class WorkStarted(Conflict):
    """Raised when a payment is cancelled (reversed) after the office started or completed the work
    it paid for; recorded, not applied: people must settle it."""

    code = "WORK_STARTED"


class NotCancellable(Conflict):
    """Raised when a citizen cancels a request that is no longer awaiting payment (paid, expired…)."""

    code = "REQUEST_NOT_CANCELLABLE"


class InvalidTransition(Conflict):
    """Raised when the admin plane moves a request to a status its lifecycle does not lead to from
    where it is (IN_PROGRESS only from PAID, COMPLETED only from IN_PROGRESS)."""

    code = "INVALID_TRANSITION"


class InvalidQuery(ApiError):
    """Raised when a query parameter is malformed (a date not YYYY-MM-DD, an unknown format, a bad flag)."""

    code = "INVALID_QUERY"
    status = 400


class InvalidRange(ApiError):
    """Raised when a report's date range is well-formed but unusable (``to`` before ``from``, too long)."""

    code = "INVALID_RANGE"
    status = 422


class CatalogInvalid(ApiError):
    """Raised when a catalog reload finds the files wrong; the message names file, line and field, and
    the catalog in use stays as it was."""

    code = "CATALOG_INVALID"
    status = 422
