"""Wire errors of the reference service: one class per error code it answers with on purpose.

They extend :mod:`simulators.common.errors`, so the common error handler renders every one of them
as ``{"error": {"code", "message", "field"}}`` with a 4xx/5xx status and never a traceback.
"""

from __future__ import annotations

from simulators.common.errors import ApiError, Conflict, NotFound, Unavailable


class UnknownRequest(NotFound):
    """Raised when citizen services does not know the service request an order is asked for."""

    code = "UNKNOWN_REQUEST"


class UnknownBill(NotFound):
    """Raised when a bill reference (in a path, a Khales call or a webhook) is not one of our orders."""

    code = "UNKNOWN_BILL"


class UnknownSession(NotFound):
    """Raised when a card webhook names a session this service never opened."""

    code = "UNKNOWN_SESSION"


class AlreadyPaid(Conflict):
    """Raised when a payment is asked for an order (or a service request) that is already paid."""

    code = "ALREADY_PAID"


class BillExpired(Conflict):
    """Raised when a payment is asked for an order past its ``expires_at``."""

    code = "BILL_EXPIRED"


class RequestNotPayable(Conflict):
    """Raised when citizen services reports the service request as cancelled."""

    code = "REQUEST_CANCELLED"


class TransactionReversed(Conflict):
    """Raised when Khales posts a payment whose transaction id it already reversed with us."""

    code = "TRANSACTION_REVERSED"


class PaymentNotConfirmed(Conflict):
    """Raised when the card gateway, asked directly, does not confirm what an APPROVED webhook says."""

    code = "NOT_CONFIRMED_BY_GATEWAY"


class AmountMismatch(ApiError):
    """Raised when a payment's amount is not the order's amount due (no partial payments)."""

    code = "AMOUNT_MISMATCH"
    status = 422


class InvalidQuery(ApiError):
    """Raised when a query parameter (such as a report date) is missing or malformed."""

    code = "INVALID_QUERY"
    status = 400


class UpstreamUnavailable(Unavailable):
    """Raised when citizen services or the card gateway gave no answer or a 5xx."""

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamRejected(ApiError):
    """Raised when an upstream answered with something we cannot use (a 4xx or a body off contract)."""

    code = "UPSTREAM_REJECTED"
    status = 502
