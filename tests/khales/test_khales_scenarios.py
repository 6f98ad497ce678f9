"""Khales scenarios on a stack of their own, and the settings test hook they use.

The partial-payment scenario switches the biller's rule to ``accept`` through the reference's
``/_admin/settings`` hook; here it also runs on a stack configured with ``accept`` from the start.
The same stack checks, over real sockets, that the end-of-day file settlement keeps is byte for byte
the one Khales serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.loader import load_file
from harness.runner import Runner
from harness.stack import Stack

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
    result = accepting_runner.run_one(load_file(SHIPPED / "khales/partial_cash_payment_accepted.yaml"))
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


def test_the_settings_hook_switches_only_declared_settings_checks_values_and_reset_restores(
        accepting_stack: Stack) -> None:
    with requests.Session() as http:
        http.trust_env = False
        url = accepting_stack.urls["reference"] + "/_admin/settings"
        assert http.get(url).json()["settings"]["khales_partial_payments"] == {
            "value": "accept", "allowed": ["reject", "accept"]}
        unknown = http.post(url, json={"order_ttl": "1h"})
        bad = http.post(url, json={"khales_partial_payments": "sometimes"})
        mixed = http.post(url, json={"khales_partial_payments": "reject", "order_ttl": "1h"})
        for answer, field in ((unknown, "order_ttl"), (bad, "khales_partial_payments"), (mixed, "order_ttl")):
            assert answer.status_code == 422 and answer.json()["error"]["field"] == field
        assert http.get(url).json()["settings"]["khales_partial_payments"]["value"] == "accept"  # nothing applied
        assert http.post(url, json={"khales_partial_payments": "reject"}).status_code == 200
        assert http.get(url).json()["settings"]["khales_partial_payments"]["value"] == "reject"
        http.post(accepting_stack.urls["reference"] + "/_admin/reset")
        assert http.get(url).json()["settings"]["khales_partial_payments"]["value"] == "accept"  # as configured
