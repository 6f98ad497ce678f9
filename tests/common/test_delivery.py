"""The courier: a message retried on the simulated clock until acknowledged, or given up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from simulators.common.clock import parse_instant
from simulators.common.component import Component
from simulators.common.config import load_settings
from simulators.common.delivery import Courier, Delivery

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
