"""A local stand-in for the few Stripe endpoints the site uses, for tests and `make run` (Stripe cannot be reached
here). The site talks to it with the real `stripe` SDK (STRIPE_API_BASE), browsers pay on its hosted page, and
it posts events signed with Stripe's scheme to the site's real webhook endpoint.

    with run_stripe_standin(webhook_url=f"{live_server.url}/payments/stripe/webhook/", secret="whsec_test") as s:
        settings.STRIPE_API_BASE = s.base_url
        ...
        s.pay(session_id)            # as if the buyer paid: checkout.session.completed is delivered
        s.pay(session_id, delayed=True)   # a bank debit: checkout.session.completed with payment_status "unpaid"
        s.settle(session_id)         # ... then checkout.session.async_payment_succeeded (or succeeded=False: _failed)
        s.refund(charge_id)          # charge.refunded (amount=N: a partial refund of N more, as Stripe's Refund API)
        s.dispute(charge_id)         # charge.dispute.created

Stripe's API (what the SDK calls):  POST /v1/checkout/sessions, GET /v1/checkout/sessions/<id>.
The hosted page:                    GET /pay/<id> (Pay, Bank debit and Cancel), POST /pay/<id> (method=debit:
                                    confirmed later), POST /standin/settle/<id>?outcome=succeeded|failed.
Ours, for tests:                    `pay`, `settle`, `refund`, `dispute`, `event_payload`, `deliver` on the object;
                                    `python -m devservices.stripe_standin --port N --webhook-url U --secret S`.

The signature is Stripe's: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>">` keyed with the
endpoint secret; `stripe_signature()` makes one (tests sign their own payloads with it).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devservices.net import free_port


def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe sends with `payload` for an endpoint with this signing secret."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def _new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def parse_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding (`line_items[0][price_data][unit_amount]=499`) as nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    parsed: dict[str, Any] = _lists(root)
    return parsed


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


@dataclass
class Delivery:
    event_id: str
    type: str
    status: int | None  # the endpoint's HTTP status, None when it could not be reached


@dataclass
class StripeStandin:
    webhook_url: str
    secret: str
    api_key_prefix: str = "sk_test_"
    # Seconds between the buyer paying and the event being posted (the success page shows "on the way" meanwhile).
    webhook_delay: float = 0.0
    port: int = 0
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    idempotent: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    base_url = root_url  # what STRIPE_API_BASE takes (the SDK adds /v1/...)

    # ------------------------------------------------------------------ what Stripe does

    def create_session(self, params: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
        with self.lock:
            if idempotency_key and idempotency_key in self.idempotent:
                return self.sessions[self.idempotent[idempotency_key]]
            items = params.get("line_items") or []
            total = sum(int(i["price_data"]["unit_amount"]) * int(i.get("quantity", 1)) for i in items)
            currency = items[0]["price_data"]["currency"] if items else "eur"
            session_id = _new_id("cs")
            session = {
                "id": session_id, "object": "checkout.session", "mode": params.get("mode", "payment"),
                "url": f"{self.root_url}/pay/{session_id}", "status": "open", "payment_status": "unpaid",
                "amount_total": total, "currency": currency, "payment_intent": None,
                "client_reference_id": params.get("client_reference_id"), "metadata": params.get("metadata", {}),
                "success_url": params.get("success_url", ""), "cancel_url": params.get("cancel_url", ""),
                "line_items_names": [i["price_data"].get("product_data", {}).get("name", "") for i in items],
                "livemode": False, "created": int(time.time()),
            }
            self.sessions[session_id] = session
            if idempotency_key:
                self.idempotent[idempotency_key] = session_id
            return session

    def _event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": _new_id("evt"), "object": "event", "api_version": "2025-01-27.acacia", "created": int(time.time()),
            "type": kind, "livemode": False, "pending_webhooks": 1, "data": {"object": dict(obj)},
        }
        self.events[event["id"]] = event
        return event

    def complete(self, session_id: str, *, delayed: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """The buyer paid: the session completes, a payment intent and a charge exist. Returns (event, charge);
        the event is not delivered yet. `delayed` is a method the bank confirms later (SEPA debit, ACH): the
        session completes with payment_status "unpaid" and a pending charge; `settle` decides it."""
        with self.lock:
            session = self.sessions[session_id]
            if session["status"] == "complete":
                charge = next(c for c in self.charges.values() if c["payment_intent"] == session["payment_intent"])
                return self._event("checkout.session.completed", session), charge
            intent = _new_id("pi")
            charge = {
                "id": _new_id("ch"), "object": "charge", "amount": session["amount_total"],
                "amount_refunded": 0, "currency": session["currency"], "payment_intent": intent,
                "paid": not delayed, "status": "pending" if delayed else "succeeded",
                "refunded": False, "disputed": False, "metadata": session["metadata"],
            }
            self.charges[charge["id"]] = charge
            session.update(status="complete", payment_status="unpaid" if delayed else "paid", payment_intent=intent)
            return self._event("checkout.session.completed", session), charge

    def settle(self, session_id: str, *, succeeded: bool = True, deliver: bool = True) -> str:
        """The bank's answer for a delayed payment: checkout.session.async_payment_succeeded (the session is then
        "paid") or checkout.session.async_payment_failed (it stays "unpaid"). Returns the event id."""
        with self.lock:
            session = self.sessions[session_id]
            charge = next(c for c in self.charges.values() if c["payment_intent"] == session["payment_intent"])
            if charge["status"] != "pending":
                raise ValueError(f"{session_id} is not waiting for its bank (charge {charge['status']})")
            charge.update(status="succeeded" if succeeded else "failed", paid=succeeded)
            if succeeded:
                session["payment_status"] = "paid"
            kind = "succeeded" if succeeded else "failed"
            event = self._event(f"checkout.session.async_payment_{kind}", session)
        if deliver:
            self.deliver(event["id"])
        return str(event["id"])

    def deliver(self, event_id: str, *, payload: bytes | None = None, signature: str | None = None) -> int | None:
        """POST the event to the webhook endpoint, signed; returns the HTTP status (None: not reachable)."""
        event = self.events[event_id]
        body = payload if payload is not None else json.dumps(event).encode()
        request = urllib.request.Request(  # noqa: S310 - the site under test, http on loopback
            self.webhook_url, data=body, method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (stand-in)",
                     "Stripe-Signature": stripe_signature(body, self.secret) if signature is None else signature},
        )
        status: int | None
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the site under test
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError):
            status = None
        with self.lock:
            self.deliveries.append(Delivery(event_id=event_id, type=event["type"], status=status))
        return status

    def event_payload(self, event_id: str) -> bytes:
        return json.dumps(self.events[event_id]).encode()

    # ------------------------------------------------------------------ test controls

    def pay(self, session_id: str, *, deliver: bool = True, delayed: bool = False) -> dict[str, Any]:
        """As if the buyer paid (`delayed`: by bank debit, see `complete`). Returns {"event": id, "charge": id,
        "payment_intent": id}."""
        event, charge = self.complete(session_id, delayed=delayed)
        if deliver:
            self.deliver(event["id"])
        return {"event": event["id"], "charge": charge["id"], "payment_intent": charge["payment_intent"]}

    def refund(self, charge_id: str, *, amount: int | None = None, deliver: bool = True) -> str:
        """A refund of `amount` more (Stripe's Refund API; None: whatever is left). The event carries the charge
        as Stripe does: `amount_refunded` is the running total, `refunded` true once it is all refunded."""
        with self.lock:
            charge = self.charges[charge_id]
            left = charge["amount"] - charge["amount_refunded"]
            amount = left if amount is None else amount
            if not 0 < amount <= left:
                raise ValueError(f"cannot refund {amount} of charge {charge_id}: {left} is left to refund")
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            event = self._event("charge.refunded", charge)
        if deliver:
            self.deliver(event["id"])
        return str(event["id"])

    def dispute(self, charge_id: str, *, deliver: bool = True) -> str:
        with self.lock:
            charge = self.charges[charge_id]
            charge["disputed"] = True
            dispute = {"id": _new_id("dp"), "object": "dispute", "amount": charge["amount"], "charge": charge_id,
                       "payment_intent": charge["payment_intent"], "currency": charge["currency"],
                       "reason": "fraudulent", "status": "needs_response"}
            event = self._event("charge.dispute.created", dispute)
        if deliver:
            self.deliver(event["id"])
        return str(event["id"])

    # ------------------------------------------------------------------ serving

    def start(self) -> StripeStandin:
        self.port = self.port or free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="stripe-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _handler_for(standin: StripeStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return

        def _send(self, status: int, body: bytes, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value).encode())

        def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
            self._json(status, {"error": {"type": kind, "message": message}})

        def _authorised(self) -> bool:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith(f"Bearer {standin.api_key_prefix}"):
                self._error(401, "Invalid API Key provided", "authentication_error")
                return False
            return True

        def _body(self) -> str:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length).decode() if length else ""

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = urlsplit(self.path).path
            if match := re.fullmatch(r"/v1/checkout/sessions/([\w]+)", path):
                if not self._authorised():
                    return
                session = standin.sessions.get(match[1])
                if session is None:
                    self._error(404, f"No such checkout.session: '{match[1]}'")
                else:
                    self._json(200, session)
            elif match := re.fullmatch(r"/pay/([\w]+)", path):
                session = standin.sessions.get(match[1])
                if session is None:
                    self._send(404, b"no such session", "text/plain")
                    return
                name = html.escape(", ".join(session["line_items_names"]))
                amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
                page = (
                    "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Test checkout</title></head>"
                    f"<body><h1>Test checkout (Stripe stand-in)</h1><p data-testid=standin-item>{name}</p>"
                    f"<p data-testid=standin-amount>{html.escape(amount)}</p>"
                    f"<form method=post action=/pay/{session['id']}><button type=submit>Pay {html.escape(amount)}"
                    f"</button></form><form method=post action=/pay/{session['id']}><input type=hidden name=method "
                    "value=debit><button type=submit>Bank debit (confirmed later)</button></form>"
                    f"<p><a href=\"{html.escape(session['cancel_url'])}\">Cancel</a></p></body></html>"
                )
                self._send(200, page.encode(), "text/html; charset=utf-8")
            elif path == "/health":
                self._json(200, {"ok": True})
            else:
                self._error(404, "Unrecognized request URL")

        def do_POST(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            if path == "/v1/checkout/sessions":
                if not self._authorised():
                    return
                params = parse_form(self._body())
                if not params.get("line_items") or not params.get("success_url"):
                    self._error(400, "Missing required param: line_items or success_url.")
                    return
                self._json(200, standin.create_session(params, self.headers.get("Idempotency-Key")))
            elif match := re.fullmatch(r"/pay/([\w]+)", path):
                form = parse_form(self._body())
                session = standin.sessions.get(match[1])
                if session is None:
                    self._send(404, b"no such session", "text/plain")
                    return
                event, _charge = standin.complete(session["id"], delayed=form.get("method") == "debit")
                # Stripe's own order: the buyer is sent back at once, the event comes on its own schedule.
                timer = threading.Timer(standin.webhook_delay, standin.deliver, args=(event["id"],))
                timer.daemon = True
                timer.start()
                target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
                self._send(303, b"", "text/plain", {"Location": target})
            elif match := re.fullmatch(r"/standin/settle/([\w]+)", path):
                # The bank's answer to a debit, for `make run` (tests call `settle`): ?outcome=succeeded|failed.
                self._body()
                outcome = dict(parse_qsl(urlsplit(self.path).query)).get("outcome", "succeeded")
                if match[1] not in standin.sessions or outcome not in ("succeeded", "failed"):
                    self._error(404, "no such session, or outcome is not succeeded or failed")
                    return
                try:
                    event_id = standin.settle(match[1], succeeded=outcome == "succeeded", deliver=False)
                except ValueError as exc:
                    self._error(400, str(exc))
                    return
                threading.Thread(target=standin.deliver, args=(event_id,), daemon=True).start()
                self._json(200, {"event": event_id})
            else:
                self._error(404, "Unrecognized request URL")

    return Handler


@contextlib.contextmanager
def run_stripe_standin(*, webhook_url: str, secret: str, webhook_delay: float = 0.0) -> Iterator[StripeStandin]:
    standin = StripeStandin(webhook_url=webhook_url, secret=secret, webhook_delay=webhook_delay).start()
    try:
        yield standin
    finally:
        standin.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--webhook-url", default="http://127.0.0.1:8000/payments/stripe/webhook/")
    parser.add_argument("--secret", required=True, help="the webhook signing secret (STRIPE_WEBHOOK_SECRET)")
    parser.add_argument("--webhook-delay", type=float, default=2.0)
    args = parser.parse_args()
    standin = StripeStandin(webhook_url=args.webhook_url, secret=args.secret, webhook_delay=args.webhook_delay,
                            port=args.port).start()
    print(f"Stripe stand-in on {standin.root_url} posting to {args.webhook_url}", flush=True)  # noqa: T201
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
