"""The silent call names what paid (issue 3): ``AuthorizingMechanism`` Card / Meeza / MobileWallet and
``AuthorizingInstitution`` the card scheme or the wallet provider (assumed values; README "Payment
mechanisms"). Real loopback sockets: the gateway, the FACTS sender's portal that decrypts the
silent call with the key and IV the test chose; the simulated clock, no sleeps."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .test_efinance_confirmation import REDIRECT_URL, decrypt, portal, start_bench  # noqa: F401 (fixtures)
from .test_efinance_initiation import PAGE_PATH, srn_of
from .test_mechanisms import OTP, mechanism_xml


def initiate(bench: Any, n: int, type_: str) -> tuple[str, str, str]:
    """(SenderRequestNumber, PaymentRequestNumber, session id) of a request with mechanism ``type_``."""
    srn = srn_of(n)
    xml = mechanism_xml(bench.sender, srn, type_, confirmation_url=bench.portal.confirm_url, redirect_url=REDIRECT_URL)
    page = bench.http.post(f"{bench.url}{PAGE_PATH}", data=bench.sender.fields(srn, xml=xml))
    assert page.status_code == 200, page.text
    number = page.headers["X-Payment-Request-Number"]
    return srn, number, bench.log(number)["session_id"]


def confirmation(bench: Any, srn: str) -> dict[str, str]:
    bench.admin("tick")
    call = bench.portal.calls[-1]
    key, iv = bench.sender.secrets[srn]
    return decrypt(call["form"]["RequestObject"][0], key, iv)


def test_a_wallet_payment_is_confirmed_as_mobile_wallet_by_its_provider(start_bench, portal):  # noqa: F811
    bench = start_bench()
    srn, number, session_id = initiate(bench, 0x3A11E7, "MobileWallet")
    otp_page = bench.http.post(f"{bench.url}/pay/{session_id}/wallet", data={"mobile": "01500000004"})
    assert otp_page.status_code == 200
    challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', otp_page.text).group(1)
    done = bench.http.post(f"{bench.url}/pay/{session_id}/challenge", allow_redirects=False,
                           data={"otp": OTP, "challenge_id": challenge_id})
    assert done.status_code == 303 and "IsConfirmed=true" in done.headers["Location"]
    values = confirmation(bench, srn)
    assert (values["AuthorizingMechanism"], values["AuthorizingInstitution"]) == ("MobileWallet", "WE Pay")
    assert values["IsConfirmed"] == "true" and values["PaymentRequestNumber"] == number
    # Neither the wallet's full number nor the OTP is in the gateway's journal of what it sent.
    journal = bench.http.get(f"{bench.url}/_admin/journal", params={"direction": "out"}).text
    assert "01500000004" not in journal


def test_a_wallet_timeout_is_confirmed_false_with_the_wallet_as_mechanism(start_bench, portal):  # noqa: F811
    bench = start_bench()
    srn, _, session_id = initiate(bench, 0x3A11E8, "MobileWallet")
    assert bench.http.post(f"{bench.url}/pay/{session_id}/wallet", data={"mobile": "01000000001"}).status_code == 200
    bench.admin("clock", {"advance": "300s"})
    values = confirmation(bench, srn)
    assert (values["IsConfirmed"], values["AuthorizingMechanism"]) == ("false", "MobileWallet")
    assert values["AuthorizingInstitution"] == "Vodafone Cash"


@pytest.mark.parametrize(("type_", "card", "mechanism", "institution"), [
    ("Meeza", "5078031234567890", "Meeza", "Meeza"),
    ("Card", "4111111111111111", "Card", "Visa"),
    ("NotSet", "5078031234567890", "Meeza", "Meeza"),  # a Meeza card is confirmed as Meeza whatever the page
])
def test_a_card_payment_is_confirmed_as_card_or_meeza_by_its_scheme(start_bench, portal, type_, card,  # noqa: F811
                                                                  mechanism, institution):
    bench = start_bench()
    srn, _, session_id = initiate(bench, 0x3A11F0 + len(type_), type_)
    assert bench.pay(session_id, card=card).status_code == 303
    values = confirmation(bench, srn)
    assert (values["AuthorizingMechanism"], values["AuthorizingInstitution"]) == (mechanism, institution)
