"""Several bills in one outlet visit, and partial payments, against the fake biller on loopback."""

from __future__ import annotations

VISITS = "/api/outlet-visits"


def test_a_visit_pays_each_bill_on_its_own_transaction_and_totals_the_cash(bills, khales, fake_biller):
    body = {"visit_id": "KHV-1", "outlet_id": "KH-21-0001",
            "bills": [{"bill_reference": bills.unpaid}, {"bill_reference": bills.big, "transaction_id": "KHT-BIG"}]}
    response = khales.post(VISITS, json=body)

    assert response.status_code == 201
    visit = response.get_json()
    assert (visit["visit_id"], visit["status"], visit["bills"], visit["paid"], visit["not_paid"]) == (
        "KHV-1", "COMPLETED", 2, 2, 0)
    assert (visit["amount"], visit["cash_collected"], visit["outlet_id"]) == ("1282.00", "1282.00", "KH-21-0001")
    first, second = visit["transactions"]
    assert (first["status"], first["visit_id"], first["amount"]) == ("PAID", "KHV-1", "360.00")
    assert (second["transaction_id"], second["status"], second["amount"]) == ("KHT-BIG", "PAID", "922.00")
    # Each bill had its own inquiry and its own payment, in the order the citizen gave them.
    assert [i["bill_reference"] for i in fake_biller.inquiries] == [bills.unpaid, bills.big]
    assert [p["khales_transaction_id"] for p in fake_biller.payments] == [first["transaction_id"], "KHT-BIG"]
    assert khales.get("/api/outlet-visits/KHV-1").get_json() == visit
    assert khales.get(f"/api/transactions/{first['transaction_id']}").get_json() == first


def test_a_refused_bill_does_not_undo_the_others(bills, khales, fake_biller):
    body = {"bills": [{"bill_reference": bills.unpaid}, {"bill_reference": bills.paid},
                      {"bill_reference": "999999999999"}, {"bill_reference": bills.big, "amount": "1.00"}]}
    visit = khales.post(VISITS, json=body).get_json()

    assert (visit["status"], visit["paid"], visit["not_paid"], visit["cash_collected"]) == (
        "PARTLY_COMPLETED", 1, 3, "360.00")
    assert [(t["status"], (t["error"] or {}).get("code")) for t in visit["transactions"]] == [
        ("PAID", None), ("REFUSED", "ALREADY_PAID"), ("REFUSED", "UNKNOWN_BILL"), ("REFUSED", "AMOUNT_MISMATCH")]
    assert fake_biller.bills[bills.unpaid]["status"] == "PAID"
    assert visit["visit_id"].startswith("KHV")


def test_a_visit_where_nothing_is_paid_is_not_completed(bills, khales):
    visit = khales.post(VISITS, json={"bills": [{"bill_reference": bills.paid}]}).get_json()
    assert (visit["status"], visit["paid"], visit["cash_collected"]) == ("NOT_COMPLETED", 0, "0.00")


def test_a_visit_is_idempotent_by_its_id(bills, khales, fake_biller):
    body = {"visit_id": "KHV-2", "bills": [{"bill_reference": bills.unpaid}]}
    first = khales.post(VISITS, json=body)
    replay = khales.post(VISITS, json=body)
    other = khales.post(VISITS, json={"visit_id": "KHV-2", "bills": [{"bill_reference": bills.big}]})

    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.get_json() == first.get_json()
    assert (other.status_code, other.get_json()["error"]["field"]) == (409, "visit_id")
    assert (len(fake_biller.inquiries), len(fake_biller.payments)) == (1, 1)
    # The visit's transaction cannot be replayed as a single payment with another body either.
    tx_id = first.get_json()["transactions"][0]["transaction_id"]
    single = khales.post("/api/outlet-payments", json={"bill_reference": bills.unpaid, "transaction_id": tx_id})
    assert (single.status_code, single.get_json()["error"]["field"]) == (409, "transaction_id")


def test_bad_visits_are_refused_naming_the_field_and_create_nothing(bills, khales_factory, fake_biller):
    client = khales_factory({"urls": {"reference": fake_biller.url}, "khales": {"visit_max_bills": 2}})
    used = client.post("/api/outlet-payments", json={"bill_reference": bills.unpaid, "transaction_id": "KHT-USED"})
    assert used.status_code == 201
    before = client.get("/api/transactions").get_json()["transactions"]
    cases = [
        ({}, 422, "VALIDATION_FAILED", "bills"),
        ({"bills": []}, 422, "VALIDATION_FAILED", "bills"),
        ({"bills": [{"bill_reference": "12"}]}, 422, "VALIDATION_FAILED", "bills.0.bill_reference"),
        ({"bills": [{"bill_reference": bills.big, "amount": "1.5"}]}, 422, "VALIDATION_FAILED", "bills.0.amount"),
        ({"bills": [{"bill_reference": bills.big, "amount": "0.00"}]}, 422, "INVALID_AMOUNT", "bills.0.amount"),
        ({"bills": [{"bill_reference": bills.big}, {"bill_reference": bills.big}]}, 422, "DUPLICATE_BILL",
         "bills.1.bill_reference"),
        ({"bills": [{"bill_reference": bills.big}] * 1 + [{"bill_reference": bills.paid},
                                                          {"bill_reference": bills.expired}]},
         422, "VALIDATION_FAILED", "bills"),
        ({"bills": [{"bill_reference": bills.big, "transaction_id": "KHT-USED"}]}, 409, "CONFLICT",
         "bills.0.transaction_id"),
        ({"bills": [{"bill_reference": bills.big, "transaction_id": "T1"},
                    {"bill_reference": bills.paid, "transaction_id": "T1"}]}, 409, "CONFLICT",
         "bills.1.transaction_id"),
        ({"bills": [{"bill_reference": bills.big}], "outlet_id": "KH-99-0001"}, 404, "UNKNOWN_OUTLET", "outlet_id"),
        ({"bills": [{"bill_reference": bills.big}], "tip": "1.00"}, 422, "VALIDATION_FAILED", "tip"),
        ({"bills": [{"bill_reference": bills.big, "biller": "bank"}]}, 422, "VALIDATION_FAILED", "bills.0.biller"),
    ]
    for body, status, code, field in cases:
        response = client.post(VISITS, json=body)
        assert response.status_code == status, body
        assert response.get_json()["error"]["code"] == code, body
        assert response.get_json()["error"]["field"] == field, body
    assert client.get("/api/transactions").get_json()["transactions"] == before
    assert len(fake_biller.payments) == 1  # only the payment made before the bad visits
    assert client.get("/api/outlet-visits/KHV-NOPE").status_code == 404


def test_a_partial_payment_is_paid_at_the_outlet_with_the_rest_outstanding(bills, khales, fake_biller):
    part = khales.post("/api/outlet-payments", json={"bill_reference": bills.parts, "amount": "40.00"}).get_json()
    assert (part["status"], part["bill_status"], part["outstanding_amount"]) == ("PAID", "PARTIALLY_PAID", "60.00")
    assert part["settlement_feed"] is not None  # the part's cash goes to settlement like any payment
    # The biller now says PARTIALLY_PAID: still payable, and the outlet's default is what is left.
    rest = khales.post("/api/outlet-payments", json={"bill_reference": bills.parts}).get_json()
    assert (rest["inquiry"]["status"], rest["amount"], rest["status"], rest["bill_status"]) == (
        "PARTIALLY_PAID", "60.00", "PAID", "PAID")
    assert rest["outstanding_amount"] == "0.00"
    again = khales.post("/api/outlet-payments", json={"bill_reference": bills.parts}).get_json()
    assert (again["status"], again["error"]["code"]) == ("REFUSED", "ALREADY_PAID")
