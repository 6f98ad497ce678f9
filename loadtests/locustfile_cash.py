"""Cash path load test: a citizen's service request → a payment order → cash at a Khales outlet.

One user class per role, in Locust's own style: ``CashPaymentUser`` is a Khales outlet serving a
stream of citizens. Every response is checked inside ``catch_response`` blocks, so a 200 that
carries the wrong business status counts as the failure it is. Party URLs come from
``TAHSEEL_URL_<PARTY>`` (set by ``tahseel load``) or the ``tahseel serve`` defaults.
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, between, task

GOVERNORATES = ("01", "02", "21")
SERVICES = ("BPR", "TUC", "CUA", "OLR", "SLW", "CTC", "RNT", "CEM", "ASR")


def party_url(name: str, default_port: int) -> str:
    return os.environ.get(f"TAHSEEL_URL_{name.upper()}", f"http://127.0.0.1:{default_port}").rstrip("/")


class CashPaymentUser(HttpUser):
    """A Khales outlet: each task is one citizen paying one governorate fee in cash."""

    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.citizen_services = party_url("citizen_services", 8001)
        self.khales = party_url("khales", 8003)

    @task
    def pay_cash(self) -> None:
        governorate = random.choice(GOVERNORATES)
        service = random.choice(SERVICES)
        with self.client.post(f"{self.citizen_services}/api/service-requests",
                              json={"governorate_code": governorate, "service_code": service},
                              name="citizen_services: service request", catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"service request: HTTP {response.status_code}")
                return
            request_number = response.json()["request_number"]
        with self.client.post("/api/orders", json={"request_number": request_number},
                              name="reference: payment order", catch_response=True) as response:
            if response.status_code not in (200, 201) or response.json().get("status") != "UNPAID":
                response.failure(f"order: HTTP {response.status_code} {response.text[:120]}")
                return
            bill_reference = response.json()["bill_reference"]
        with self.client.post(f"{self.khales}/api/outlet-payments", json={"bill_reference": bill_reference},
                              name="khales: cash payment", catch_response=True) as response:
            status = response.json().get("status") if response.status_code == 201 else None
            if status != "PAID":
                response.failure(f"cash payment: HTTP {response.status_code}, status {status}")
