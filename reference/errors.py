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


class BillRefunded(Conflict):
    """Raised when a payment is asked for an order whose card payment was refunded (a closed order)."""

    code = "BILL_REFUNDED"


class CardPaymentsUnavailable(Conflict):
    """Raised when the order's governorate has no e-finance sender configured (``reference.efinance.senders``)."""

    code = "CARD_PAYMENTS_UNAVAILABLE"


class TooManyCardAttempts(ApiError):
    """Raised when an order already has ``reference.efinance.max_attempts_per_order`` card attempts:
    each one costs an RSA operation, a ledger row and the status watch's inquiries, so a script
    posting the portal's form in a loop must not be able to open them without end."""

    code = "TOO_MANY_ATTEMPTS"
    status = 429


class UnknownCardPayment(NotFound):
    """Raised when a SenderRequestNumber (in a path or a query) is not a card payment this service opened."""

    code = "UNKNOWN_CARD_PAYMENT"


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


# The e-finance silent call's answers (reference/README.md, "Silent call"): the gateway reads only
# the Response_Code header, 000 = processed. Every other code is ours (e-finance publishes none).
SILENT_CALL_CODES: dict[str, tuple[str, int]] = {
    "UNKNOWN_SENDER": ("101", 403),
    "UNKNOWN_REQUEST": ("104", 404),
    "BAD_SIGNATURE": ("110", 401),
    "UNDECRYPTABLE": ("112", 400),
    "MALFORMED_XML": ("113", 400),
    "MISSING_FIELD": ("114", 400),
    "INVALID_FIELD": ("115", 422),
    "REQUEST_MISMATCH": ("116", 409),
    "AMOUNT_MISMATCH": ("122", 422),
    "NOT_CONFIRMED_BY_GATEWAY": ("150", 409),
    "STATUS_UNAVAILABLE": ("190", 503),
}
PROCESSED = "000"


class SilentCallRefused(ApiError):
    """Raised when an e-finance silent call is not processed; nothing changed, the gateway retries.

    ``response_code`` goes in the answer's ``Response_Code`` header (never ``000``).
    """

    def __init__(self, name: str, message: str, *, field: str | None = None) -> None:
        response_code, status = SILENT_CALL_CODES[name]
        super().__init__(message, field=field, code=name, status=status)
        self.response_code = response_code
