"""3-D Secure on the hosted page (issue 3): an enrolled test card leads to an OTP challenge; the right
OTP completes the attempt like a non-enrolled card; three wrong OTPs, or no answer within the
challenge time limit on the simulated clock, fail the attempt; the session stays payable until it
expires. Real loopback sockets, simulated clock, no sleeps."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from .test_efinance_confirmation import decrypt, portal, srn_of, start_bench  # noqa: F401 (fixtures)

WEBHOOK_PATH = "/webhooks/card"
ENROLLED = "5123450000000008"  # Mastercard, approved, three_ds: true (contracts/test-cards.yaml)
ENROLLED_MEEZA = "5078080000000008"
OTP = "123456"  # card_gateway.three_ds.otp (published, assumed default)


def open_session(gateway, receiver, **changes):
    return gateway.create({
        "merchant_request_id": changes.pop("merchant_request_id", "REQ-3DS-1"),
        "merchant_reference": "100200300400", "amount": "300.00", "currency": "EGP",
        "return_url": "https://portal.example/return", "webhook_url": receiver.url + WEBHOOK_PATH,
        "governorate_code": "21", "service_code": "TUC", **changes,
    })["session_id"]


def answer(gateway, session_id, otp, lang=None, **extra):
    suffix = f"?lang={lang}" if lang else ""
    extra.setdefault("challenge_id", getattr(gateway, "last_challenge_id", None))  # the page's hidden field
    return gateway.http.post(f"{gateway.url}/pay/{session_id}/challenge{suffix}", allow_redirects=False,
                             data={"otp": otp, **extra})


def status_of(response):
    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.headers["Location"]).query)["status"][0]


def events(receiver):
    return [json.loads(hook["body"]) for hook in receiver.on(WEBHOOK_PATH)]


def test_enrolled_card_gets_a_challenge_page_and_the_right_otp_approves(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)

    page = live_gateway.pay(session_id, ENROLLED)

    assert page.status_code == 200  # the challenge page, not a redirect
    assert 'name="otp"' in page.text and f'action="/pay/{session_id}/challenge"' in page.text
    assert 'data-tries-left="3"' in page.text and "•••• 0008" in page.text
    assert ENROLLED not in page.text and OTP not in page.text
    live_gateway.admin("tick")
    assert receiver.on(WEBHOOK_PATH) == []  # nothing decided yet
    session = live_gateway.signed_get(f"/api/sessions/{session_id}")
    assert (session["status"], session["attempts"]) == ("OPEN", 0)

    assert status_of(answer(live_gateway, session_id, OTP)) == "APPROVED"
    live_gateway.admin("tick")

    [event] = events(receiver)
    assert (event["event_type"], event["status"], event["card"]) == (
        "payment.approved", "APPROVED", {"bin": "512345", "last4": "0008", "scheme": "Mastercard"})
    assert len(receiver.on("/api/collections")) == 1
    session = live_gateway.signed_get(f"/api/sessions/{session_id}")
    assert (session["status"], session["attempts"], session["settlement_feed_state"]) == ("APPROVED", 1, "delivered")
    # The challenge is over: another OTP is refused (the session is paid).
    assert answer(live_gateway, session_id, OTP).status_code == 409
    live_gateway.admin("clock", {"advance": "10m"})  # the time limit passing later changes nothing
    assert len(receiver.on(WEBHOOK_PATH)) == 1


def test_two_wrong_otps_then_the_right_one_approve(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)
    live_gateway.pay(session_id, ENROLLED_MEEZA)

    first = answer(live_gateway, session_id, "000000")
    assert first.status_code == 422 and 'data-tries-left="2"' in first.text and 'id="error"' in first.text
    second = answer(live_gateway, session_id, "111111")
    assert 'data-tries-left="1"' in second.text
    assert status_of(answer(live_gateway, session_id, OTP)) == "APPROVED"
    live_gateway.admin("tick")

    [event] = events(receiver)
    assert (event["status"], event["card"]["scheme"]) == ("APPROVED", "Meeza")


def test_three_wrong_otps_decline_and_the_session_stays_payable(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)
    live_gateway.pay(session_id, ENROLLED)

    answer(live_gateway, session_id, "000000")
    answer(live_gateway, session_id, "000001")
    assert status_of(answer(live_gateway, session_id, "000002")) == "DECLINED"
    live_gateway.admin("tick")
    session = live_gateway.signed_get(f"/api/sessions/{session_id}")
    assert (session["status"], session["decline_reason"], session["attempts"]) == ("DECLINED", "THREE_DS_FAILED", 1)
    [declined] = events(receiver)
    assert (declined["event_type"], declined["decline_reason"]) == ("payment.declined", "THREE_DS_FAILED")
    assert answer(live_gateway, session_id, OTP).status_code == 409  # no challenge pending any more

    assert status_of(live_gateway.pay(session_id, "4111111111111111")) == "APPROVED"
    live_gateway.admin("tick")

    approvals = [e for e in events(receiver) if e["event_type"] == "payment.approved"]
    assert len(approvals) == 1 and approvals[0]["card"]["last4"] == "1111"
    assert live_gateway.signed_get(f"/api/sessions/{session_id}")["attempts"] == 2


def test_abandoned_challenge_times_out_on_the_simulated_clock(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)
    live_gateway.pay(session_id, ENROLLED)
    tasks = live_gateway.http.get(f"{live_gateway.url}/_admin/scheduled").json()["tasks"]
    [limit] = [task for task in tasks if task["name"].startswith("card_gateway.three_ds_timeout:")]
    assert limit["at"].startswith("2026-12-03T10:05:00")  # started 12:00 Cairo (10:00 UTC) + 300 s

    live_gateway.admin("clock", {"advance": "299s"})
    assert receiver.on(WEBHOOK_PATH) == []
    live_gateway.admin("clock", {"advance": "1s"})  # 300 s: card_gateway.three_ds.challenge_seconds

    [event] = events(receiver)
    assert (event["event_type"], event["decline_reason"]) == ("payment.declined", "THREE_DS_TIMEOUT")
    late = answer(live_gateway, session_id, OTP)
    assert late.status_code == 410
    assert 'data-code="THREE_DS_CHALLENGE_EXPIRED"' in late.text and f'href="/pay/{session_id}"' in late.text
    assert len(receiver.on(WEBHOOK_PATH)) == 1  # the late OTP changed nothing

    assert live_gateway.http.get(f"{live_gateway.url}/pay/{session_id}").status_code == 200  # still payable
    assert status_of(live_gateway.pay(session_id, "4111111111111111")) == "APPROVED"


def test_a_late_otp_fails_the_attempt_even_before_the_scheduler_ran(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)
    live_gateway.pay(session_id, ENROLLED)
    live_gateway.admin("clock", {"advance": "301s", "run_due": False})

    assert answer(live_gateway, session_id, OTP).status_code == 410
    live_gateway.admin("tick")
    [event] = events(receiver)  # once, though the timeout task ran too
    assert event["decline_reason"] == "THREE_DS_TIMEOUT"


def test_a_new_card_while_a_challenge_is_pending_abandons_it(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)
    live_gateway.pay(session_id, ENROLLED)

    assert status_of(live_gateway.pay(session_id, "4000000000000002")) == "DECLINED"
    assert answer(live_gateway, session_id, OTP).status_code == 409  # the challenge was abandoned
    live_gateway.admin("clock", {"advance": "10m"})  # its time limit fails nothing more
    assert [e["decline_reason"] for e in events(receiver)] == ["INSUFFICIENT_FUNDS"]


def test_a_cvv_mismatch_on_an_enrolled_card_declines_without_a_challenge(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)
    assert status_of(live_gateway.pay(session_id, ENROLLED, cvv="999")) == "DECLINED"


def test_the_otp_never_reaches_the_journal(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)
    live_gateway.pay(session_id, ENROLLED)
    answer(live_gateway, session_id, "654321")
    assert status_of(answer(live_gateway, session_id, OTP)) == "APPROVED"
    live_gateway.admin("tick")

    journal = live_gateway.http.get(f"{live_gateway.url}/_admin/journal").text
    assert "/challenge" in journal
    assert OTP not in journal and "654321" not in journal
    assert ENROLLED not in journal


def test_an_otp_in_the_url_is_refused(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)
    live_gateway.pay(session_id, ENROLLED)
    refused = live_gateway.http.post(f"{live_gateway.url}/pay/{session_id}/challenge?otp={OTP}")
    assert refused.status_code == 422


@pytest.mark.parametrize(("lang", "marker", "text"), [
    (None, 'dir="rtl"', "كلمة المرور لمرة واحدة"), ("en", 'dir="ltr"', "One-time password")])
def test_the_challenge_page_in_arabic_and_english(live_gateway, receiver, lang, marker, text):
    session_id = open_session(live_gateway, receiver)
    suffix = f"?lang={lang}" if lang else ""
    page = live_gateway.http.post(f"{live_gateway.url}/pay/{session_id}{suffix}", allow_redirects=False,
                                  data={"card_number": ENROLLED, "expiry": "12/30", "cvv": "123"})
    assert page.status_code == 200 and marker in page.text and text in page.text
    assert f'action="/pay/{session_id}/challenge{suffix}"' in page.text
    challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', page.text).group(1)
    wrong = answer(live_gateway, session_id, "000000", lang=lang, challenge_id=challenge_id)
    assert marker in wrong.text and ("غير صحيحة" if lang is None else "Wrong one-time password") in wrong.text


def test_the_test_otp_is_published_on_the_test_cards_page(live_gateway):
    for suffix in ("", "?lang=en"):
        page = live_gateway.http.get(f"{live_gateway.url}/test-cards{suffix}").text
        assert f'data-otp="{OTP}"' in page


def test_efinance_session_with_an_enrolled_card(start_bench, portal):  # noqa: F811
    bench = start_bench()
    srn = srn_of(0x3D5)
    number, session_id = bench.initiate(srn)

    page = bench.pay(session_id, ENROLLED)
    assert page.status_code == 200  # challenge page
    bench.admin("tick")
    assert portal.calls == []
    challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', page.text).group(1)
    challenged = bench.http.post(f"{bench.url}/pay/{session_id}/challenge",
                                 data={"otp": OTP, "challenge_id": challenge_id}, allow_redirects=False)
    assert challenged.status_code == 303
    assert parse_qs(urlsplit(challenged.headers["Location"]).query)["IsConfirmed"] == ["true"]
    bench.admin("tick")

    [call] = portal.calls
    form = {name: values[0] for name, values in call["form"].items()}
    key, iv = bench.sender.secrets[srn]
    confirmation = decrypt(form["RequestObject"], key, iv)
    assert (confirmation["IsConfirmed"], confirmation["AuthorizingInstitution"]) == ("true", "Mastercard")
    assert re.fullmatch(r"[0-9]{6}", confirmation["AuthorizationCode"])


def test_efinance_session_challenge_timeout_sends_a_declined_confirmation(start_bench, portal):  # noqa: F811
    bench = start_bench()
    srn = srn_of(0x3D6)
    number, session_id = bench.initiate(srn)
    bench.pay(session_id, ENROLLED)

    bench.admin("clock", {"advance": "5m"})

    [call] = portal.calls
    form = {name: values[0] for name, values in call["form"].items()}
    key, iv = bench.sender.secrets[srn]
    assert decrypt(form["RequestObject"], key, iv)["IsConfirmed"] == "false"
    assert bench.log(number)["status"] != "PAID"
    assert bench.pay(session_id).status_code == 303  # still payable


@pytest.mark.parametrize("challenge_id", [None, ""])
def test_an_otp_without_its_challenge_id_answers_nothing(live_gateway, receiver, challenge_id):
    """A stale or forged form must not answer whichever challenge happens to be pending."""
    session_id = open_session(live_gateway, receiver)
    assert live_gateway.pay(session_id, ENROLLED).status_code == 200
    data = {"otp": OTP} if challenge_id is None else {"otp": OTP, "challenge_id": challenge_id}
    refused = live_gateway.http.post(f"{live_gateway.url}/pay/{session_id}/challenge", data=data,
                                     allow_redirects=False)
    assert refused.status_code == 409
    assert status_of(answer(live_gateway, session_id, OTP)) == "APPROVED"  # the real challenge still stands


def test_an_enrolled_card_the_issuer_declines_is_challenged_first_then_declined(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver, merchant_request_id="REQ-3DS-DECLINE")

    page = live_gateway.pay(session_id, "5200000000000007")  # three_ds: true, DO_NOT_HONOUR

    assert page.status_code == 200 and 'name="otp"' in page.text  # the challenge comes before the issuer
    assert status_of(answer(live_gateway, session_id, OTP)) == "DECLINED"
    live_gateway.admin("tick")
    [event] = events(receiver)
    assert (event["status"], event["decline_reason"]) == ("DECLINED", "DO_NOT_HONOUR")
    session = live_gateway.signed_get(f"/api/sessions/{session_id}")
    assert (session["status"], session["attempts"]) == ("DECLINED", 1)  # still payable with another card
