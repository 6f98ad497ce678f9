"""Khales scenarios run against a stack of their own, with the partial-payment rule set to accept.

Scenarios cannot change settings (``given`` has no settings), so the partial-payment scenario with the
biller's rule set to ``accept`` lives here, beside its stack: every party on loopback with
``reference.khales_partial_payments: accept``. The same stack also checks, over real sockets, that the
end-of-day file settlement keeps is byte for byte the one Khales serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.loader import load_file
from harness.runner import Runner
from harness.stack import Stack

HERE = Path(__file__).resolve().parent / "scenarios"
SHIPPED = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def accepting_stack() -> Iterator[Stack]:
    with Stack(overrides={"reference": {"khales_partial_payments": "accept"}}) as stack:
        yield stack


@pytest.fixture(scope="module")
def accepting_runner(accepting_stack: Stack) -> Iterator[Runner]:
    runner = Runner(accepting_stack.urls, accepting_stack.settings)
    yield runner
    runner.close()


def test_partial_cash_payment_accepted_is_never_marked_paid_until_whole(accepting_runner: Runner) -> None:
    result = accepting_runner.run_one(load_file(HERE / "partial_cash_payment_accepted.yaml"))
    assert result.status == "passed", result.message + "\n" + repr(result.failed_step)


def test_settlement_keeps_the_end_of_day_file_byte_for_byte(accepting_runner: Runner, accepting_stack: Stack) -> None:
    """Over real sockets: the file settlement stored is, byte for byte, the one Khales serves (Arabic
    names in UTF-8, no byte-order mark), and Khales' spreadsheet copy is the same behind the mark."""
    result = accepting_runner.run_one(load_file(SHIPPED / "settlement/khales_end_of_day_file_matches.yaml"))
    assert result.status == "passed", result.message
    with requests.Session() as http:
        http.trust_env = False
        served = http.get(accepting_stack.urls["khales"] + "/api/end-of-day/2026-12-07").content
        excel = http.get(accepting_stack.urls["khales"] + "/api/end-of-day/2026-12-07?excel=1").content
        stored = http.get(accepting_stack.urls["settlement"] + "/api/khales-files/2026-12-07/content").content
    assert stored == served and excel == b"\xef\xbb\xbf" + served
    text = served.decode("utf-8")
    assert text.count("\r\n") == 3 and any("\u0600" <= ch <= "\u06ff" for ch in text)
