"""Khales' faults on the biller link: the domain kinds (a payment posted twice, a reversal that
overtakes its payment) and the common out-faults that make the biller slow, down or lose its answer."""

from __future__ import annotations

PAY = "/api/outlet-payments"


def test_a_payment_posted_twice_sends_the_very_same_body_twice(bills, khales, fake_biller, fault):
    fault(khales, kind="duplicate_payment", direction="domain", match={"bill_reference": bills.unpaid})
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()

    assert (tx["status"], tx["attempts"]) == ("PAID", 1)
    first, second = fake_biller.payments
    assert first == second and first["khales_transaction_id"] == tx["transaction_id"]
    assert any(e["outcome"].startswith("posted twice") for e in tx["events"])
    assert len(fake_biller.accepted) == 1  # the biller took it once, and replayed its answer
    # The fault is scoped to that bill: another bill is posted once.
    other = khales.post(PAY, json={"bill_reference": bills.big}).get_json()
    assert other["status"] == "PAID" and len(fake_biller.payments) == 3


def test_a_payment_posted_twice_at_the_same_moment(bills, khales, fake_biller, fault):
    fault(khales, kind="duplicate_payment", direction="domain", params={"same_moment": True}, count=1)
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()
    assert tx["status"] == "PAID"
    assert len(fake_biller.payments) == 2 and len(fake_biller.accepted) == 1
    journal = khales.get("/_admin/journal?direction=out&path=/khales/payments").get_json()["entries"]
    assert len(journal) == 2 and {e["status"] for e in journal} <= {200, 201}


def test_a_reversal_that_overtakes_its_payment(bills, khales, fake_biller, fault):
    fault(khales, kind="reversal_before_payment", direction="domain", match={"outlet_id": "KH-21-0001"})
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid, "outlet_id": "KH-21-0001"}).get_json()

    # The reversal reached the biller first (nothing to reverse yet), then the held payment.
    [reversal] = fake_biller.reversals
    assert reversal["khales_transaction_id"] == tx["transaction_id"]
    assert tx["reversal"]["answer"]["status"] == "NOT_FOUND"
    assert tx["status"] == "REVERSED"
    assert [e["outcome"] for e in tx["events"] if e["step"] == "payment"][0].startswith("held in the network")
    # This fake biller forgets unknown reversals and credits the late payment: the outlet says so.
    assert len(fake_biller.payments) == 1 and tx["error"]["code"] == "LATE_PAYMENT_ACCEPTED"
    assert tx["settlement_feed"] is None  # the cash went back to the citizen: nothing is fed
    # The fault is scoped to that outlet.
    other = khales.post(PAY, json={"bill_reference": bills.big, "outlet_id": "KH-21-0002"}).get_json()
    assert other["status"] == "PAID" and len(fake_biller.reversals) == 1


def test_a_slow_biller_is_waited_for(bills, khales, fake_biller, fault):
    fault(khales, kind="delay", direction="out", target="reference", endpoint="/khales/inquiry",
          params={"seconds": 0.05}, count=1)
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()
    assert (tx["status"], tx["attempts"]) == ("PAID", 1)


def test_a_biller_down_for_payments_gets_retries_then_a_reversal(bills, khales, fake_biller, fault):
    fault(khales, kind="down", direction="out", target="reference", endpoint="/khales/payments")
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()
    assert (tx["status"], tx["attempts"]) == ("REVERSED", 3)
    assert fake_biller.payments == [] and tx["reversal"]["answer"]["status"] == "NOT_FOUND"
