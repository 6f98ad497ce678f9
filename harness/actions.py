"""Step actions: each does one thing against the parties and returns an :class:`Observation`.

Actions know the parties' public interfaces (the contracts), never their code. The card payment
goes the way a browser would, without a browser: the collection service opens an e-finance payment
request, the "browser" posts its sealed fields to the gateway's initiation page (what the portal's
auto-post page does), fills the hosted card form, answers the 3-D Secure challenge if one comes, and
reads the redirect back.
"""

from __future__ import annotations

import csv
import hashlib
import html as html_text
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from simulators.common.clock import CAIRO
from simulators.common.errors import BadSignature
from simulators.common.files import BOM, csv_bytes
from simulators.common.http import encode_json
from simulators.common.signing import sign_headers, verify

from .expressions import ScenarioError

if TYPE_CHECKING:
    from .runner import ScenarioRun


@dataclass
class Observation:
    """What a step saw: HTTP status, JSON (or text) and the request it made, for evidence."""

    status: int | None = None
    json: Any = None
    text: str = ""
    request: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        body = self.json if self.json is not None else self.text[:500]
        return {"request": self.request, "status": self.status, "body": body}


def _observe(response: Any, request: dict[str, Any]) -> Observation:
    try:
        data = response.json()
    except ValueError:
        data = None
    return Observation(status=response.status_code, json=data, text=response.text[:4000], request=request)


def _post(run: ScenarioRun, party: str, path: str, payload: Any) -> Observation:
    response = run.parties.call(party, "POST", path, json=payload)
    return _observe(response, {"party": party, "method": "POST", "path": path, "json": payload})


def _get(run: ScenarioRun, party: str, path: str, **params: Any) -> Observation:
    response = run.parties.call(party, "GET", path, params=params or None)
    return _observe(response, {"party": party, "method": "GET", "path": path, "params": params})


def service_request(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    body: dict[str, Any] = {
        "governorate_code": args.get("governorate") or run.given.get("governorate", "01"),
        "service_code": args.get("service") or run.given.get("service", "BPR"),
    }
    for key in ("units", "citizen"):
        if key in args:
            body[key] = args[key]
    return _post(run, "citizen_services", "/api/service-requests", body)


def order(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    number = args.get("request_number") or run.var("request.request_number")
    return _post(run, "reference", "/api/orders", {"request_number": number})


def get_order(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    reference = args.get("bill_reference") or run.var("order.bill_reference")
    return _get(run, "reference", f"/api/orders/{reference}")


_FORM_TAG = re.compile(r"<form\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r'([a-zA-Z_-]+)\s*=\s*"([^"]*)"')
TEST_OTP = "123456"  # card_gateway.three_ds.otp, published on the gateway's /test-cards page


def _forms(page: str) -> list[dict[str, str]]:
    """The attributes of every ``<form>`` tag of a page (unescaped)."""
    return [{k.lower(): html_text.unescape(v) for k, v in _ATTRIBUTE.findall(tag)} for tag in _FORM_TAG.findall(page)]


def _form_action(page: str, form_id: str, path_part: str) -> str | None:
    forms = _forms(page)
    chosen = next((f for f in forms if f.get("id") == form_id), None)
    chosen = chosen or next((f for f in forms if path_part in f.get("action", "")), None)
    return chosen.get("action") if chosen else None


def open_card(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    """Open a card payment and land on the gateway's hosted page, without paying (so a scenario can
    scope a fault to ``${card.payment_request_number}`` first). Mechanism Channel has no page: the
    collection service's answer (with ``payment_request_number``) is the result."""
    reference = args.get("bill_reference") or run.var("order.bill_reference")
    body = {key: args[key] for key in ("language", "mechanism") if args.get(key)}
    started = _post(run, "reference", f"/api/orders/{reference}/card-payments", body)
    if started.status != 201 or not isinstance(started.json, dict) or "initiation" not in started.json:
        return started
    if started.json.get("mechanism") == "Channel":
        return started
    initiation = started.json["initiation"]
    page = run.parties.session.post(initiation["url"], data=initiation["fields"], timeout=run.parties.timeout)
    request = {"method": "POST", "url": initiation["url"], "form": sorted(initiation["fields"])}
    if page.status_code != 200:
        return _observe(page, request)
    # The page's form: the card form (Card, Meeza, NotSet until the citizen picks) or the wallet form.
    page_form, action = "card", _form_action(page.text, "card-form", "/pay/")
    wallet = next((f.get("action") for f in _forms(page.text) if f.get("id") == "wallet-form"), None)
    if wallet is not None and (action is None or "/wallet" in action):
        page_form, action = "wallet", wallet
    found = re.search(r"/pay/([A-Za-z0-9]+)", action or "")
    if found is None:
        return Observation(status=page.status_code, text=page.text[:4000], request=request,
                           json={"error": "the gateway's page has no card or wallet form"})
    session_id = found.group(1)
    query = urlsplit(urljoin(initiation["url"], action)).query
    hosted = urljoin(initiation["url"], f"/pay/{session_id}") + (f"?{query}" if query else "")
    result = {
        "bill_reference": reference, "sender_request_number": started.json["sender_request_number"],
        "payment_request_number": page.headers.get("X-Payment-Request-Number"), "session_id": session_id,
        "payment_url": started.json["payment_url"], "hosted_page_url": hosted, "status": "OPEN",
        "mechanism": started.json.get("mechanism"), "page_form": page_form,
    }
    return Observation(status=page.status_code, json=result, text=page.text[:2000], request=request)


def pay_card(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    """Pay by card like a browser; ``opened: card`` continues a payment ``open_card`` left on the page."""
    opened = args.get("opened")
    if opened is not None:
        card = run.var(opened) if isinstance(opened, str) else opened
        if not isinstance(card, dict) or not card.get("hosted_page_url"):
            raise ScenarioError("pay_card.opened: name the result of an open_card step (e.g. opened: card)")
        card = dict(card)
    else:
        landed = open_card(run, {key: args[key] for key in ("bill_reference", "language", "mechanism") if key in args})
        if not isinstance(landed.json, dict) or not landed.json.get("hosted_page_url"):
            return landed
        card = dict(landed.json)
    url = card["hosted_page_url"]
    if card.get("page_form") == "wallet" or "mobile" in args:
        # a mobile wallet: the number, then the wallet's OTP (answered like a 3-D Secure challenge)
        base, _, query = url.partition("?")
        url = f"{base}/wallet" + (f"?{query}" if query else "")
        form = {"mobile": str(args.get("mobile", "01000000001"))}
        request: dict[str, Any] = {"method": "POST", "url": url, "form": form}
    else:
        form = {"card_number": args.get("card", "4111111111111111"), "expiry": args.get("expiry", "12/30"),
                "cvv": args.get("cvv", "123"), "cardholder": args.get("cardholder", "Citizen")}
        masked = dict(form, card_number=form["card_number"][:6] + "******" + form["card_number"][-4:], cvv="***")
        request = {"method": "POST", "url": url, "form": masked}
    submitted = _browser_post(run, url, form)
    if submitted is None:
        return _no_answer(card, request)
    challenge = re.search(r'name="challenge_id" value="([^"]+)"', submitted.text) \
        if submitted.status_code == 200 else None
    otp = args.get("otp", TEST_OTP)
    if challenge is not None and otp not in (None, False):
        action = _form_action(submitted.text, "challenge", "/challenge")
        challenge_url = urljoin(url, action) if action else card["hosted_page_url"].split("?", 1)[0] + "/challenge"
        request["challenge"] = {"url": challenge_url, "otp": "***"}
        submitted = _browser_post(run, challenge_url, {"otp": str(otp), "challenge_id": challenge.group(1)})
        if submitted is None:
            return _no_answer(card, request)
        challenge = None
    location = submitted.headers.get("Location", "")
    query = parse_qs(urlsplit(location).query)
    status = (query.get("status") or [None])[0]
    if challenge is not None:
        status = "CHALLENGE"
    confirmed = (query.get("IsConfirmed") or [None])[0]
    card.update(redirect_status=submitted.status_code, location=location, status=status,
                is_confirmed=None if confirmed is None else confirmed == "true",
                payment_request_number=card.get("payment_request_number")
                or (query.get("PaymentRequestNumber") or [None])[0])
    if args.get("follow_redirect") and location:
        # the browser comes back: the collection service's return page (it asks the gateway itself)
        back = run.parties.session.get(urljoin(url, location), timeout=run.parties.timeout)
        found = re.search(r'id="order-status"[^>]*>([^<]*)<', back.text)
        card.update(return_status=back.status_code, order_status=found.group(1).strip() if found else None)
    return Observation(status=submitted.status_code, json=card, text=submitted.text[:2000], request=request)


def _browser_post(run: ScenarioRun, url: str, form: dict[str, str]) -> Any:
    """A browser's form post; None when no answer came back (the connection was cut or timed out)."""
    try:
        return run.parties.session.post(url, data=form, allow_redirects=False, timeout=run.parties.timeout)
    except requests.RequestException:
        return None


def _no_answer(card: dict[str, Any], request: dict[str, Any]) -> Observation:
    """What the citizen saw when the page never answered: nothing. The step's status is null and
    ``json.status`` is ``NO_ANSWER``; whether the money was taken is for later steps to find out."""
    card.update(redirect_status=None, location="", status="NO_ANSWER", is_confirmed=None)
    return Observation(status=None, json=card, text="", request=request)


def pay_cash(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    """A Khales outlet inquires and pays; by default an outlet of the scenario's governorate.

    With ``bills: [{bill_reference, amount, transaction_id, biller}, …]`` the citizen pays several
    bills in one visit (``POST /api/outlet-visits``, one transaction per bill, one cash total)."""
    if "bills" in args:
        body: dict[str, Any] = {"bills": [dict(bill) for bill in args["bills"]]}
        if "visit_id" in args:
            body["visit_id"] = args["visit_id"]
        path = "/api/outlet-visits"
    else:
        body = {"bill_reference": args.get("bill_reference") or run.var("order.bill_reference")}
        for key in ("amount", "transaction_id", "biller"):
            if key in args:
                body[key] = args[key]
        path = "/api/outlet-payments"
    if "outlet_id" in args:
        body["outlet_id"] = args["outlet_id"]
    governorate = args.get("governorate") or run.given.get("governorate")
    if "outlet_id" not in body and governorate:
        outlets = _get(run, "khales", "/api/outlets", governorate_code=governorate)
        found = (outlets.json or {}).get("outlets") if isinstance(outlets.json, dict) else None
        if not found:
            raise ScenarioError(f"pay_cash: Khales has no outlet in governorate {governorate}")
        body["outlet_id"] = found[0]["outlet_id"]
    return _post(run, "khales", path, body)


def end_of_day_file(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    """Download Khales' end-of-day file of ``date`` (default: today, Cairo) as CSV, as a spreadsheet
    user would (``excel: true`` asks for the byte-order mark), and read it back.

    Result: ``{status, state, bom, size, sha256, signature_valid, columns, lines, line_count}`` where
    ``lines`` are the rows as dicts, plus ``byte_for_byte``: the rows written again with the same CSV
    rules give exactly the bytes received (BOM included), and, with ``excel``, ``same_as_plain``:
    the file without the mark is, byte for byte, the one served without ``excel``."""
    day = args.get("date") or run.clock.now().astimezone(CAIRO).date().isoformat()
    path = f"/api/end-of-day/{day}"
    excel = bool(args.get("excel"))
    response = run.parties.call("khales", "GET", path, params={"excel": "1"} if excel else None)
    request = {"party": "khales", "method": "GET", "path": path, "params": {"excel": "1"} if excel else {}}
    if response.status_code != 200:
        return _observe(response, request)
    raw = response.content
    secret = run.settings.get("secrets", {}).get("collections_feed", "")
    try:
        verify(secret, response.headers, raw, run.clock.now())
        signature_valid = True
    except BadSignature:
        signature_valid = False
    bom = raw.startswith(BOM)
    text = raw[len(BOM):].decode("utf-8") if bom else raw.decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = next(reader, [])
    lines = [dict(zip(columns, row, strict=False)) for row in reader]
    result: dict[str, Any] = {
        "status": response.status_code, "state": response.headers.get("X-Khales-File-State"), "bom": bom,
        "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest(), "signature_valid": signature_valid,
        "columns": columns, "lines": lines, "line_count": len(lines),
        "byte_for_byte": csv_bytes(columns, lines, bom=bom) == raw,
    }
    if excel:
        plain = run.parties.call("khales", "GET", path).content
        result["same_as_plain"] = raw[len(BOM):] == plain and bom
    return Observation(status=response.status_code, json=result, text=text[:2000], request=request)


def advance(run: ScenarioRun, args: Any) -> Observation:
    target = run.clock.target_for(args)
    run.clock.advance_to(target)
    return Observation(status=200, json={"now": run.clock.now().isoformat()})


def advance_to(run: ScenarioRun, args: Any) -> Observation:
    return advance(run, args)


def fault(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    spec = {k: v for k, v in args.items() if k != "party"}
    return _post(run, args["party"], "/_admin/faults", spec)


def clear_faults(run: ScenarioRun, args: str) -> Observation:
    parties = run.controlled if args == "all" else [args]
    for party in parties:
        run.parties.admin(party, "DELETE", "/faults")
    return Observation(status=200, json={"cleared": parties})


def journal(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    params = {k: args[k] for k in ("path", "direction", "method") if k in args}
    params["since"] = run.journal_marks.get(args["party"], 0)
    data = run.parties.admin(args["party"], "GET", "/journal?" + "&".join(f"{k}={v}" for k, v in params.items()))
    entries = data.get("entries", [])
    if "status" in args:
        entries = [e for e in entries if e.get("status") == args["status"]]
    return Observation(status=200, json=entries, request={"party": args["party"], "journal": params})


def report(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    params: dict[str, Any] = {"date": args.get("date") or run.clock.now().astimezone(CAIRO).date().isoformat()}
    if args.get("governorate"):
        params["governorate_code"] = args["governorate"]
    return _get(run, "reference", "/api/reports/daily", **params)


def http(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    method = args.get("method", "GET" if "json" not in args and "body" not in args else "POST")
    headers = dict(args.get("headers") or {})
    if "json" in args:
        body = encode_json(args["json"])
        headers.setdefault("Content-Type", "application/json")
    else:
        body = str(args.get("body", "")).encode("utf-8")
    if args.get("sign_with"):
        secret = run.settings.get("secrets", {}).get(args["sign_with"])
        if secret is None:
            raise ScenarioError(f"http.sign_with: no secret named {args['sign_with']!r} in the settings")
        signed = sign_headers(secret, body, run.clock.now())
        signed.update(headers)  # explicit headers win: a scenario may send a wrong signature on purpose
        headers = signed
    response = run.parties.call(args["party"], method, args["path"], data=body or None, headers=headers)
    shown = args.get("json", args.get("body"))
    return _observe(response, {"party": args["party"], "method": method, "path": args["path"], "body": shown})


ACTIONS: dict[str, Callable[[ScenarioRun, Any], Observation]] = {
    "service_request": service_request, "order": order, "get_order": get_order, "open_card": open_card,
    "pay_card": pay_card, "pay_cash": pay_cash, "end_of_day_file": end_of_day_file,
    "advance": advance, "advance_to": advance_to, "fault": fault,
    "clear_faults": clear_faults, "journal": journal, "report": report, "http": http,
}
DEFAULT_NAMES = {"service_request": "request", "order": "order", "get_order": "order",
                 "open_card": "card", "pay_card": "card_payment", "pay_cash": "cash_payment", "fault": "fault",
                 "end_of_day_file": "end_of_day",
                 "journal": "journal", "report": "report", "http": "response"}
MUST_SUCCEED = {"service_request", "order", "open_card", "pay_cash", "fault", "get_order", "report", "end_of_day_file"}
