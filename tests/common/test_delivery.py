"""The courier: a message retried on the simulated clock until acknowledged, or given up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest

from simulators.common.clock import parse_instant
from simulators.common.component import Component
from simulators.common.config import load_settings
from simulators.common.delivery import Courier, Delivery
from simulators.common.signing import verify

START = parse_instant("2026-12-07T10:00:00+02:00")


def make_courier(url: str, **kwargs: object) -> tuple[Component, Courier, Delivery]:
    component = Component("khales", load_settings(), ticker=False)
    component.clock.set(START)
    courier = Courier(component, [60, 300], **kwargs)  # type: ignore[arg-type]
    delivery = Delivery("d1", "test", url + "/inbox", "settlement", "collections_feed", {"n": 1})
    return component, courier, delivery


def test_retried_after_each_backoff_until_acknowledged(receiver: Any) -> None:
    receiver.answer_next(503, 500)
    component, courier, delivery = make_courier(receiver.url)
    courier.send(delivery)
    component.scheduler.run_due()
    assert delivery.state == "pending" and delivery.next_attempt_at == START + timedelta(seconds=60)
    component.clock.advance(timedelta(seconds=59))
    assert component.scheduler.run_due() == 0  # not yet
    component.clock.advance(timedelta(seconds=1))
    component.scheduler.run_due()
    assert [a["status"] for a in delivery.attempts] == [503, 500]
    component.clock.advance(timedelta(seconds=300))
    component.scheduler.run_due()
    assert delivery.state == "delivered" and len(delivery.attempts) == 3
    component.clock.advance(timedelta(days=1))
    component.scheduler.run_due()
    assert len(delivery.attempts) == 3  # never re-sent once acknowledged


def test_gives_up_or_repeats_the_last_wait(receiver: Any) -> None:
    receiver.answer_next(*[503] * 10)
    url = receiver.url
    component, courier, delivery = make_courier(url)
    courier.send(delivery)
    for _ in range(5):
        component.scheduler.run_due()
        component.clock.advance(timedelta(seconds=300))
    assert delivery.state == "gave_up" and len(delivery.attempts) == 3

    component, courier, delivery = make_courier(url, give_up=False)
    courier.send(delivery)
    for _ in range(10):
        component.scheduler.run_due()
        component.clock.advance(timedelta(seconds=300))
    assert delivery.state == "delivered" and len(delivery.attempts) == 8  # 7 refusals, then acknowledged


def test_reset_forgets_pending_deliveries(receiver: Any) -> None:
    component, courier, delivery = make_courier(receiver.url)
    courier.send(delivery)
    component.reset()
    component.scheduler.run_due()
    assert delivery.attempts == [] and courier.get("d1") is None


def test_a_form_body_goes_unsigned_when_the_delivery_names_no_secret(receiver: Any) -> None:
    component = Component("khales", load_settings(), ticker=False)
    component.clock.set(START)
    courier = Courier(component, [60])
    delivery = Delivery("f1", "test", receiver.url + "/form", "reference", None,
                        {"SenderID": "9001", "RequestObject": "a+b/c=="}, encoding="form")
    courier.send(delivery)
    component.scheduler.run_due()
    [got] = receiver.on("/form")
    assert got["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(got["body"].decode()) == {"SenderID": ["9001"], "RequestObject": ["a+b/c=="]}
    assert not any(name.lower().startswith("x-tahseel") for name in got["headers"])
    assert delivery.state == "delivered"


def test_a_json_delivery_is_still_signed_with_its_secret(receiver: Any) -> None:
    component, courier, delivery = make_courier(receiver.url)
    courier.send(delivery)
    component.scheduler.run_due()
    [got] = receiver.on("/inbox")
    verify(component.secret("collections_feed"), got["headers"], got["body"], component.clock.now())
    assert got["body"] == b'{"n":1}'


def test_an_unknown_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="encoding"):
        Delivery("x", "test", "http://127.0.0.1:9/", "reference", None, {}, encoding="xml")


def test_an_acknowledged_predicate_retries_a_2xx_that_does_not_acknowledge(receiver: Any) -> None:
    receiver.answer_next(200, 503, (200, {"Response_Code": "101"}), (200, {"Response_Code": "000"}))
    component, courier, delivery = make_courier(
        receiver.url, acknowledged=lambda r: {k.lower(): v for k, v in r.headers.items()}.get("response_code") == "000")
    courier.backoff = [60, 60, 60, 60]
    courier.send(delivery)
    for _ in range(6):
        component.scheduler.run_due()
        component.clock.advance(timedelta(seconds=60))
    assert [a["outcome"] for a in delivery.attempts] == ["not_acknowledged", "http_503", "not_acknowledged",
                                                          "delivered"]
    assert delivery.state == "delivered" and len(receiver.on("/inbox")) == 4
