"""Step actions: each does one thing against the parties and returns an :class:`Observation`.

Actions know the parties' public interfaces (the contracts), never their code. The card payment
goes through the gateway's hosted page the way a browser would (GET the page, POST the form, read
the redirect), without a browser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from simulators.common.clock import CAIRO
from simulators.common.http import encode_json
from simulators.common.signing import sign_headers

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


def pay_card(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    reference = args.get("bill_reference") or run.var("order.bill_reference")
    started = _post(run, "reference", f"/api/orders/{reference}/card-payments", {})
    if started.status != 201 or not isinstance(started.json, dict) or "payment_url" not in started.json:
        return started
    url = started.json["payment_url"]
    page = run.parties.session.get(url, timeout=run.parties.timeout)
    if page.status_code != 200:
        return _observe(page, {"method": "GET", "url": url})
    form = {"card_number": args.get("card", "4111111111111111"), "expiry": args.get("expiry", "12/30"),
            "cvv": args.get("cvv", "123"), "cardholder": args.get("cardholder", "Citizen")}
    submitted = run.parties.session.post(url, data=form, allow_redirects=False, timeout=run.parties.timeout)
    location = submitted.headers.get("Location", "")
    query = parse_qs(urlsplit(location).query)
    result = {
        "bill_reference": reference,
        "session_id": started.json.get("session_id"),
        "payment_url": url,
        "redirect_status": submitted.status_code,
        "location": location,
        "status": (query.get("status") or [None])[0],
    }
    masked = dict(form, card_number=form["card_number"][:6] + "******" + form["card_number"][-4:], cvv="***")
    return Observation(status=submitted.status_code, json=result, text=submitted.text[:2000],
                       request={"method": "POST", "url": url, "form": masked})


def pay_cash(run: ScenarioRun, args: dict[str, Any]) -> Observation:
    """A Khales outlet inquires and pays; by default an outlet of the scenario's governorate."""
    body = {"bill_reference": args.get("bill_reference") or run.var("order.bill_reference")}
    for key in ("amount", "outlet_id", "transaction_id"):
        if key in args:
            body[key] = args[key]
    governorate = args.get("governorate") or run.given.get("governorate")
    if "outlet_id" not in body and governorate:
        outlets = _get(run, "khales", "/api/outlets", governorate_code=governorate)
        found = (outlets.json or {}).get("outlets") if isinstance(outlets.json, dict) else None
        if not found:
            raise ScenarioError(f"pay_cash: Khales has no outlet in governorate {governorate}")
        body["outlet_id"] = found[0]["outlet_id"]
    return _post(run, "khales", "/api/outlet-payments", body)


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
    "service_request": service_request, "order": order, "get_order": get_order, "pay_card": pay_card,
    "pay_cash": pay_cash, "advance": advance, "advance_to": advance_to, "fault": fault,
    "clear_faults": clear_faults, "journal": journal, "report": report, "http": http,
}
DEFAULT_NAMES = {"service_request": "request", "order": "order", "get_order": "order",
                 "pay_card": "card_payment", "pay_cash": "cash_payment", "fault": "fault",
                 "journal": "journal", "report": "report", "http": "response"}
MUST_SUCCEED = {"service_request", "order", "pay_cash", "fault", "get_order", "report"}
