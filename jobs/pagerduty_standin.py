"""A local stand-in for the PagerDuty Events API v2, for tests and `make demo`.

`POST /v2/enqueue` validates an event the way the real service documents it (32-character
routing key, event_action, payload.summary/source/severity for a trigger, dedup_key for
acknowledge/resolve, summary <= 1024 characters, body <= 512 KB) and answers 202 or 400 with the
same JSON shapes. It keeps every request it received and derives the incidents: a trigger opens
an incident for its dedup_key or updates the open one, a resolve closes it, a trigger after the
resolve opens a new one.

Control endpoints (not part of PagerDuty):
  GET  /_control/events      every request received (routing key masked), in order
  GET  /_control/incidents   incidents in creation order
  POST /_control/fail        {"status": 429|500|..., "count": N} or {"status": ..., "seconds": S};
                             {"status": 0} stops failing
  POST /_control/reset       forget everything
  GET  /healthz

Stdlib only (http.server): it starts in milliseconds in a test thread and needs no event loop.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

SUMMARY_LIMIT = 1024
EVENT_LIMIT = 512 * 1024
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _masked(key: Any) -> Any:
    return "*" * (len(key) - 4) + key[-4:] if isinstance(key, str) and len(key) > 8 else key


def validate(body: bytes) -> tuple[dict | None, list[str]]:
    """The parsed event and what is wrong with it (empty when valid)."""
    if len(body) > EVENT_LIMIT:
        return None, [f"Event object is too large: {len(body)} bytes, the limit is {EVENT_LIMIT}"]
    try:
        event = json.loads(body)
    except ValueError:
        return None, ["Event object is not valid JSON"]
    if not isinstance(event, dict):
        return None, ["Event object must be a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("'routing_key' must be a 32 character integration key")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(ACTIONS)}")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
        errors.append("'dedup_key' must be a non-empty string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append(f"'dedup_key' is required for event_action {action}")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors.append("'payload.summary' is missing or blank")
            elif len(summary) > SUMMARY_LIMIT:
                errors.append(f"'payload.summary' is {len(summary)} characters, the limit is {SUMMARY_LIMIT}")
            source = payload.get("source")
            if not isinstance(source, str) or not source.strip():
                errors.append("'payload.source' is missing or blank")
            if payload.get("severity") not in SEVERITIES:
                errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
        links = event.get("links", [])
        if not isinstance(links, list) or not all(isinstance(x, dict) and isinstance(x.get("href"), str) for x in links):
            errors.append("'links' must be a list of objects with an 'href'")
    return event, errors


class State:
    """What the stand-in received and the incidents it derived. Thread-safe; optionally persisted."""

    def __init__(self, path: Path | None = None):
        self.lock = threading.Lock()
        self.path = path
        self.events: list[dict] = []
        self.incidents: list[dict] = []
        self.fail_status = 0
        self.fail_count: int | None = None
        self.fail_until: float | None = None
        if path and path.exists():
            saved = json.loads(path.read_text())
            self.events, self.incidents = saved.get("events", []), saved.get("incidents", [])

    def _save(self) -> None:
        if self.path:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps({"events": self.events, "incidents": self.incidents}, indent=1))
            tmp.replace(self.path)

    def _failing(self) -> int:
        if not self.fail_status:
            return 0
        if self.fail_until is not None and time.monotonic() >= self.fail_until:
            self.fail_status = 0
            return 0
        if self.fail_count is not None:
            if self.fail_count <= 0:
                self.fail_status = 0
                return 0
            self.fail_count -= 1
        return self.fail_status

    def set_failure(self, status: int, count: int | None, seconds: float | None) -> None:
        with self.lock:
            self.fail_status = status
            self.fail_count = count
            self.fail_until = time.monotonic() + seconds if seconds is not None else None

    def reset(self) -> None:
        with self.lock:
            self.events, self.incidents = [], []
            self.fail_status, self.fail_count, self.fail_until = 0, None, None
            self._save()

    def _open_incident(self, key: str) -> dict | None:
        for inc in reversed(self.incidents):
            if inc["dedup_key"] == key:
                return inc if inc["status"] != "resolved" else None
        return None

    def _apply(self, event: dict) -> str:
        action = event["event_action"]
        key = event.get("dedup_key") or uuid.uuid4().hex
        inc = self._open_incident(key)
        now = _now()
        if action == "trigger":
            payload = event["payload"]
            if inc is None:
                inc = {"number": len(self.incidents) + 1, "dedup_key": key, "status": "triggered",
                       "created_at": now, "resolved_at": None, "events": 0, "triggers": 0}
                self.incidents.append(inc)
            inc.update(severity=payload["severity"], summary=payload["summary"], updated_at=now)
            inc["triggers"] += 1
        elif inc is not None:
            inc["status"] = "resolved" if action == "resolve" else "acknowledged"
            inc["updated_at"] = now
            if action == "resolve":
                inc["resolved_at"] = now
        if inc is not None:
            inc["events"] += 1
            inc["open"] = inc["status"] != "resolved"
        return key

    def enqueue(self, body: bytes) -> tuple[int, dict]:
        with self.lock:
            failing = self._failing()
            event, errors = (None, []) if failing else validate(body)
            record: dict[str, Any] = {"seq": len(self.events) + 1, "received_at": _now(), "bytes": len(body)}
            if failing:
                status = failing
                reply = ({"status": "throttle event", "message": "Requests for this service are arriving too "
                          "quickly. Please retry later."} if failing == 429 else
                         {"status": "error", "message": "Internal error (injected by the stand-in)"})
            elif errors:
                status = 400
                reply = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            else:
                status = 202
                key = self._apply(event)
                reply = {"status": "success", "message": "Event processed", "dedup_key": key}
            if failing:
                try:
                    event = json.loads(body)
                except ValueError:
                    event = None
            if isinstance(event, dict):
                record["event"] = {**event, "routing_key": _masked(event.get("routing_key"))}
            record.update(http_status=status, reply=reply)
            self.events.append(record)
            self._save()
            return status, reply

    def snapshot(self, what: str) -> list[dict]:
        with self.lock:
            return json.loads(json.dumps(getattr(self, what)))


def _handler(state: State, quiet: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real service
        # Headers and body go out in two writes; with Nagle on, keep-alive clients wait 40 ms for each reply.
        disable_nagle_algorithm = True

        def log_message(self, fmt: str, *args: Any) -> None:
            if not quiet:
                super().log_message(fmt, *args)

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            if self.path == "/_control/events":
                self._reply(200, {"events": state.snapshot("events")})
            elif self.path == "/_control/incidents":
                self._reply(200, {"incidents": state.snapshot("incidents")})
            elif self.path == "/healthz":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"status": "not found", "message": self.path})

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/v2/enqueue":
                self._reply(*state.enqueue(body))
            elif self.path == "/_control/fail":
                try:
                    spec = json.loads(body or b"{}")
                    state.set_failure(int(spec.get("status", 0)), spec.get("count"), spec.get("seconds"))
                except (ValueError, TypeError, AttributeError) as e:
                    self._reply(400, {"status": "invalid", "message": str(e)})
                    return
                self._reply(200, {"status": "ok"})
            elif self.path == "/_control/reset":
                state.reset()
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"status": "not found", "message": self.path})

    return Handler


def make_server(host: str = "127.0.0.1", port: int = 0, state_file: Path | None = None,
                quiet: bool = True) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler(State(state_file), quiet))
    server.daemon_threads = True
    return server


class StandIn:
    """A running stand-in: its base URL for the alerts config, and its control endpoints."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        # Loopback only: never through a proxy from the environment.
        self._open = urllib.request.build_opener(urllib.request.ProxyHandler({})).open

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with self._open(req, timeout=10) as r:
            return json.loads(r.read())

    def events(self) -> list[dict]:
        return self._call("GET", "/_control/events")["events"]

    def accepted(self) -> list[dict]:
        """The events answered 202, in arrival order."""
        return [e["event"] for e in self.events() if e["http_status"] == 202]

    def incidents(self) -> list[dict]:
        return self._call("GET", "/_control/incidents")["incidents"]

    def incidents_for(self, dedup_key: str) -> list[dict]:
        return [i for i in self.incidents() if i["dedup_key"] == dedup_key]

    def fail(self, status: int, *, count: int | None = None, seconds: float | None = None) -> None:
        self._call("POST", "/_control/fail", {"status": status, "count": count, "seconds": seconds})

    def recover(self) -> None:
        self.fail(0)

    def reset(self) -> None:
        self._call("POST", "/_control/reset", {})


@contextmanager
def serve(*, port: int = 0, host: str = "127.0.0.1", state_file: Path | None = None) -> Iterator[StandIn]:
    """Run the stand-in in a background thread for the duration of the block."""
    server = make_server(host, port, state_file)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="pagerduty-standin", daemon=True)
    thread.start()
    try:
        yield StandIn(f"http://{host}:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
