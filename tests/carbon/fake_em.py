"""A local stand-in for the Electricity Maps API v3, answering in its documented response shapes.

Runs an HTTP server on 127.0.0.1 (ephemeral port) in a thread. Tests script it: `queue` holds one-shot
behaviours consumed in order ("429", "500", "slow", "malformed", "badshape"), after which it answers normally;
`mode` sets a lasting behaviour. Every request is recorded with its path, query and auth-token header.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def hour_floor(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def value_for(zone: str, t: datetime) -> int:
    """A deterministic hourly value, so tests can predict every answer."""
    return 200 + (len(zone) * 7 + t.hour * 5) % 100


@dataclass
class Recorded:
    path: str
    query: dict[str, list[str]]
    token: str | None


@dataclass
class FakeElectricityMaps:
    token: str = "test-token"
    retry_after: str = "0"
    slow_seconds: float = 2.0
    # When set, "now" for the fake; else the real time.
    now: datetime | None = None
    latest_age: timedelta = timedelta(0)
    mode: str = "ok"
    queue: list[str] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> FakeElectricityMaps:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                fake._handle(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v3"

    def calls(self, suffix: str) -> int:
        return sum(1 for r in self.requests if r.path.endswith(suffix))

    # -- answers ------------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.now or datetime.now(UTC)

    def _entry(self, zone: str, t: datetime, estimated: bool = False) -> dict:
        return {
            "zone": zone,
            "carbonIntensity": value_for(zone, t),
            "datetime": iso(t),
            "updatedAt": iso(self._now()),
            "createdAt": iso(t - timedelta(days=3)),
            "emissionFactorType": "direct",
            "isEstimated": estimated,
            "estimationMethod": "TIME_SLICER_AVERAGE" if estimated else None,
        }

    def body_for(self, path: str, query: dict[str, list[str]]) -> dict:
        zone = query.get("zone", ["DE"])[0]
        now_hour = hour_floor(self._now())
        if path.endswith("/carbon-intensity/latest"):
            return self._entry(zone, hour_floor(self._now() - self.latest_age), estimated=True)
        if path.endswith("/carbon-intensity/history"):
            hours = [now_hour - timedelta(hours=23 - i) for i in range(24)]
            return {"zone": zone, "history": [self._entry(zone, t, estimated=t == now_hour) for t in hours]}
        if path.endswith("/carbon-intensity/forecast"):
            hours = [now_hour + timedelta(hours=i) for i in range(24)]
            return {
                "zone": zone,
                "forecast": [{"carbonIntensity": value_for(zone, t), "datetime": iso(t)} for t in hours],
                "updatedAt": iso(now_hour + timedelta(minutes=25)) if self.now is None else iso(self._now()),
            }
        if path.endswith("/carbon-intensity/past-range"):
            start = datetime.fromisoformat(query["start"][0].replace("Z", "+00:00"))
            end = datetime.fromisoformat(query["end"][0].replace("Z", "+00:00"))
            hours = []
            t = start
            while t < end:
                hours.append(self._entry(zone, t))
                t += timedelta(hours=1)
            return {"zone": zone, "data": hours}
        raise KeyError(path)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlparse(handler.path)
        query = parse_qs(url.query)
        with self._lock:
            self.requests.append(Recorded(url.path, query, handler.headers.get("auth-token")))
            behaviour = self.queue.pop(0) if self.queue else self.mode
        if handler.headers.get("auth-token") != self.token:
            return self._send(handler, 401, {"error": "Token is invalid"})
        if behaviour == "429":
            return self._send(handler, 429, {"error": "rate limited"}, {"Retry-After": self.retry_after})
        if behaviour == "500":
            return self._send(handler, 500, {"error": "internal"})
        if behaviour == "503":
            return self._send(handler, 503, {"error": "unavailable"})
        if behaviour == "slow":
            time.sleep(self.slow_seconds)
        if behaviour == "malformed":
            return self._send_raw(handler, 200, b'{"zone": "DE", "carbonIntensity": 1')
        if behaviour == "badshape":
            return self._send(handler, 200, {"zone": "DE", "carbonIntensity": "high"})
        try:
            body = self.body_for(url.path, query)
        except KeyError:
            return self._send(handler, 404, {"error": "not found"})
        self._send(handler, 200, body)

    def _send(self, handler, status: int, body: dict, headers: dict | None = None) -> None:
        self._send_raw(handler, status, json.dumps(body).encode(), headers)

    def _send_raw(self, handler, status: int, raw: bytes, headers: dict | None = None) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(raw)))
            for key, value in (headers or {}).items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)
