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


# --- payment mechanisms on the hosted page (issue 3) ----------------------------------------------
class MechanismMismatch(InvalidCardInput):
    """Raised when a card of another scheme is posted for a request that asks for Meeza (nothing
    changes; the form is shown again naming ``card_number``)."""

    code = "MECHANISM_MISMATCH"
    status = 422


class MechanismNotOffered(ApiError):
    """Raised when the page or a form asks for a payment mechanism the request does not offer (or
    ``?mechanism=`` is not one of Card, Meeza, MobileWallet, Channel)."""

    code = "MECHANISM_NOT_OFFERED"
    status = 422


class InvalidWalletInput(ApiError):
    """Raised when the wallet form's mobile number is not an Egyptian mobile (010/011/012/015 and
    eight digits); nothing changes."""

    code = "INVALID_WALLET_INPUT"
    status = 422


# --- the cash network's Channel API (channel.py; assumed) -----------------------------------------
class ChannelNotOffered(Conflict):
    """Raised when a Khales outlet inquires or pays a request that is not payable in cash: its
    mechanism is Card, Meeza or MobileWallet, or NotSet and the citizen has not picked Channel."""

    code = "CHANNEL_NOT_OFFERED"


class ChannelAlreadyPaid(Conflict):
    """Raised when a Khales outlet pays a request that is already paid (by any mechanism)."""

    code = "ALREADY_PAID"


class ChannelRequestExpired(ApiError):
    """Raised when a Khales outlet pays a request past its expiry."""

    code = "PAYMENT_REQUEST_EXPIRED"
    status = 410


class ChannelRequestCancelled(ApiError):
    """Raised when a Khales outlet pays a request its sender cancelled."""

    code = "PAYMENT_REQUEST_CANCELLED"
    status = 410


class TransactionReversed(Conflict):
    """Raised when a Khales payment arrives (again) under a ``khales_transaction_id`` that a reversal
    already voided: a late payment must never be taken after its reversal."""

    code = "TRANSACTION_REVERSED"


class ChannelReversalMismatch(Conflict):
    """Raised when a reversal names a ``payment_request_number`` other than the one its
    ``khales_transaction_id`` paid: the outlet is confused, and reversing anyway would refund the
    wrong citizen's request."""

    code = "REQUEST_MISMATCH"


# --- the test bench's back-office refund (efinance_views.py) -------------------------------------
class BackOfficeRefundRefused(ApiError):
    """Raised when a back-office refund breaks a rule of the sender's refund call: the same checks,
    as JSON; ``code`` is the ResponseCode's name (NOT_PAID, REFUND_EXCEEDS_PAYMENT,
    REFUND_ID_CONFLICT, ALREADY_CANCELLED, INVALID_AMOUNT) with its HTTP status, ``details`` the
    ``response_code`` the sender's call would have given."""

    code = "REFUND_REFUSED"
    status = 409
