"""Wire errors of the Khales simulator's own API (the outlet desk and the transaction log).

What the *biller* refuses is not an error of this API: it is recorded on the transaction
(status ``REFUSED`` with the biller's code) and the call still answers 201.
"""

from __future__ import annotations

from simulators.common.errors import ApiError, NotFound


class UnknownOutlet(NotFound):
    """Raised when an outlet payment names an outlet_id the network does not have."""

    code = "UNKNOWN_OUTLET"


class UnknownTransaction(NotFound):
    """Raised when a transaction id in the path was never used at any outlet."""

    code = "UNKNOWN_TRANSACTION"


class UnknownGovernorate(ApiError):
    """Raised when an outlet filter names a governorate code that is not a governorate."""

    code = "UNKNOWN_GOVERNORATE"
    status = 422


class InvalidDate(ApiError):
    """Raised when a ``business_date`` filter is not an ISO date ``YYYY-MM-DD``."""

    code = "INVALID_DATE"
    status = 422


class UnknownVisit(NotFound):
    """Raised when a visit id in the path was never used at any outlet."""

    code = "UNKNOWN_VISIT"


class DuplicateBill(ApiError):
    """Raised when one visit names the same bill reference twice (a bill is paid once per visit)."""

    code = "DUPLICATE_BILL"
    status = 422


class InvalidQuery(ApiError):
    """Raised when a query parameter (format, excel, bom) has a value the API does not know."""

    code = "INVALID_QUERY"
    status = 400
