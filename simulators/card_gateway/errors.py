"""Wire errors of the e-finance card gateway simulator.

One class per error the gateway returns; the component's error handler renders them as
``{"error": {"code", "message", "field"}}`` on the merchant API, and the hosted page renders the same
classes as an HTML page (a citizen's browser should never see JSON).
"""

from __future__ import annotations

from simulators.common.errors import ApiError, Conflict, NotFound


class UnknownMerchant(ApiError):
    """Raised when ``X-Merchant-Id`` is missing or is not the merchant this gateway serves."""

    code = "UNKNOWN_MERCHANT"
    status = 401


class SessionNotFound(NotFound):
    """Raised when a session id in the path was never issued (or was forgotten by a reset)."""

    code = "SESSION_NOT_FOUND"


class RequestIdConflict(Conflict):
    """Raised when a ``merchant_request_id`` is reused with a different session body."""

    code = "IDEMPOTENCY_CONFLICT"


class AmountMismatch(ApiError):
    """Raised when the fee lines of a session do not add up to its amount."""

    code = "AMOUNT_MISMATCH"
    status = 422


class SessionAlreadyPaid(Conflict):
    """Raised when the hosted page or a card payment is asked for a session already approved."""

    code = "SESSION_ALREADY_PAID"


class SessionExpired(ApiError):
    """Raised when the hosted page or a card payment is asked for a session past its expiry."""

    code = "SESSION_EXPIRED"
    status = 410


class SessionCancelled(ApiError):
    """Raised when the hosted page or a card payment is asked for an e-finance request its sender
    cancelled (the page refuses payment)."""

    code = "SESSION_CANCELLED"
    status = 410


class InvalidCardInput(ApiError):
    """Raised when the hosted form's card number, expiry or CVV is malformed (nothing changes)."""

    code = "INVALID_CARD_INPUT"
    status = 422


class PaymentRequestNotFound(NotFound):
    """Raised when a ``PaymentRequestNumber`` in the path was never issued (or was forgotten by a reset)."""

    code = "PAYMENT_REQUEST_NOT_FOUND"


class ChallengeNotPending(Conflict):
    """Raised when a 3-D Secure OTP is posted for a session with no pending challenge (none was
    started, it was answered already, or a newer card attempt abandoned it)."""

    code = "THREE_DS_NO_CHALLENGE"


class ChallengeExpired(ApiError):
    """Raised when a 3-D Secure OTP is posted after the challenge time limit (the attempt has
    failed with ``THREE_DS_TIMEOUT``; the session stays payable with another attempt)."""

    code = "THREE_DS_CHALLENGE_EXPIRED"
    status = 410
