"""B11 — how fast an alert reaches its webhook after its condition begins.

A Pulse server with a spike rule (current visitors ≥ N) and a webhook pointing at a local HTTP
receiver in this process. Each round tracks N - 1 visitors, then the Nth; the latency is from
sending the Nth visitor's tracking request (the condition begins when it is stored) to the
webhook's signed POST arriving. Rounds are separated by a new website (fresh window and rule).
The baseline, in the same run, is that tracking request's own round trip (202 once stored).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.server
import json
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    USER_AGENT,
    cpus,
    machine_facts,
    median,
    percentile,
    pulse_server,
    report,
)

SECRET = "bench-webhook-secret"


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records the arrival time of each signed alert."""

    arrivals: list[tuple[float, dict[str, Any], bool]] = []
    arrived = threading.Condition()

    def do_POST(self) -> None:  # noqa: N802
        """Keep the alert and answer 204."""
        at = time.perf_counter()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        good = hmac.compare_digest(
            self.headers.get("X-Pulse-Signature", ""),
            "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest())
        with Receiver.arrived:
            Receiver.arrivals.append((at, json.loads(body), good))
            Receiver.arrived.notify_all()
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet."""


def call(base: str, path: str, token: str | None = None, body: Any = None,
         method: str = "POST") -> Any:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                     headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
        return json.loads(text) if text else None


def one_round(pulse: Any, receiver_port: int, threshold: int, n: int) -> dict[str, Any]:
    """A new website with a spike rule; track until it fires; time the webhook."""
    site = call(pulse.base, "/api/v1/websites", pulse.token, {"domain": f"r{n}.bench.example"})
    hook = call(pulse.base, f"/api/v1/websites/{site['id']}/webhooks", pulse.token,
                {"url": f"http://127.0.0.1:{receiver_port}/hook", "secret": SECRET})
    call(pulse.base, f"/api/v1/websites/{site['id']}/alerts", pulse.token,
         {"kind": "spike", "threshold": threshold, "webhooks": [hook["id"]]})
    for v in range(threshold - 1):
        call(pulse.base, "/web/analytics/track", body={
            "website_id": site["id"], "event_type": "pageview", "pathname": "/",
            "visitor_id": f"v{v}", "session_id": f"s{v}"})
    with Receiver.arrived:
        before = len(Receiver.arrivals)
    sent = time.perf_counter()
    call(pulse.base, "/web/analytics/track", body={
        "website_id": site["id"], "event_type": "pageview", "pathname": "/",
        "visitor_id": "last", "session_id": "last"})
    stored = time.perf_counter()
    with Receiver.arrived:
        Receiver.arrived.wait_for(lambda: len(Receiver.arrivals) > before, timeout=30)
        at, body, good = Receiver.arrivals[before]
    assert body["website_id"] == site["id"] and body["state"] == "fired", body
    return {"track_ms": (stored - sent) * 1000, "alert_ms": (at - sent) * 1000,
            "signed": good, "value": body["value"]}


def main() -> int:
    """Run B11 and print/keep the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threshold", type=int, default=5)
    parser.add_argument("--name", default="b11_alert_latency")
    args = parser.parse_args()
    facts = machine_facts()
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    server_cpu, _ = cpus()
    rounds = []
    try:
        with pulse_server(server_cpu) as pulse:
            for n in range(args.rounds):
                rounds.append(one_round(pulse, receiver.server_address[1], args.threshold, n))
    finally:
        receiver.shutdown()
    alert = [r["alert_ms"] for r in rounds]
    track = [r["track_ms"] for r in rounds]
    summary = {"alert_ms_median": median(alert), "alert_ms_p95": percentile(alert, 95),
               "alert_ms_max": max(alert), "track_ms_median": median(track),
               "all_signed": all(r["signed"] for r in rounds), "rounds": len(rounds)}
    return report(args.name, args, facts, rounds, summary)


if __name__ == "__main__":
    sys.exit(main())
