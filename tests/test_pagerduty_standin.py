"""The local Events API v2 stand-in, over real HTTP on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from jobs.pagerduty_standin import serve

KEY = "0123456789abcdef0123456789abcdef"
_open = urllib.request.build_opener(urllib.request.ProxyHandler({})).open


def post(base: str, body, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(base + "/v2/enqueue", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with _open(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def trigger(key="trade-recon/t/trades/2026-10-25", summary="5 findings", **extra) -> dict:
    return {"routing_key": KEY, "event_action": "trigger", "dedup_key": key,
            "payload": {"summary": summary, "source": "trade-recon", "severity": "critical"}, **extra}


def resolve(key="trade-recon/t/trades/2026-10-25") -> dict:
    return {"routing_key": KEY, "event_action": "resolve", "dedup_key": key}


@pytest.fixture
def pd():
    with serve() as s:
        yield s


def test_accepts_valid_events_like_the_real_service(pd):
    status, body = post(pd.base_url, trigger())
    assert status == 202
    assert body == {"status": "success", "message": "Event processed", "dedup_key": "trade-recon/t/trades/2026-10-25"}
    status, body = post(pd.base_url, {**trigger(), "dedup_key": None})
    assert status == 202 and re.fullmatch(r"[0-9a-f]{32}", body["dedup_key"])  # generated when absent
    [first, _] = pd.events()
    assert first["event"]["routing_key"] == "*" * 28 + "cdef"  # never kept in clear


@pytest.mark.parametrize("event, error", [
    ({**trigger(), "routing_key": "short"}, "'routing_key' must be a 32 character integration key"),
    ({k: v for k, v in trigger().items() if k != "routing_key"}, "'routing_key' must be a 32"),
    ({**trigger(), "event_action": "escalate"}, "'event_action' must be one of trigger, acknowledge, resolve"),
    ({k: v for k, v in resolve().items() if k != "dedup_key"}, "'dedup_key' is required for event_action resolve"),
    ({**trigger(), "payload": {"source": "x", "severity": "critical"}}, "'payload.summary' is missing or blank"),
    ({**trigger(), "payload": {"summary": "s", "severity": "critical"}}, "'payload.source' is missing or blank"),
    ({**trigger(), "payload": {"summary": "s", "source": "x", "severity": "fatal"}},
     "'payload.severity' must be one of critical, error, warning, info"),
    (trigger(summary="s" * 1025), "'payload.summary' is 1025 characters, the limit is 1024"),
    ({**trigger(), "links": [{"text": "no href"}]}, "'links' must be a list of objects with an 'href'"),
    ({**trigger(), "dedup_key": "k" * 256}, "'dedup_key' must be a non-empty string of at most 255 characters"),
])
def test_rejects_invalid_events_with_400(pd, event, error):
    status, body = post(pd.base_url, event)
    assert status == 400
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert any(e.startswith(error) for e in body["errors"]), body["errors"]
    assert pd.incidents() == []


def test_summary_of_exactly_1024_is_fine_and_body_over_512kb_is_not(pd):
    assert post(pd.base_url, trigger(summary="s" * 1024))[0] == 202
    big = trigger(payload={"summary": "s", "source": "x", "severity": "info", "custom_details": {"x": "y" * 524_288}})
    status, body = post(pd.base_url, big)
    assert status == 400 and body["errors"][0].startswith("Event object is too large")
    assert post(pd.base_url, None, raw=b"{broken")[1]["errors"] == ["Event object is not valid JSON"]


def test_incident_life_cycle_per_dedup_key(pd):
    a, b = "trade-recon/t/trades/2026-10-25", "trade-recon/t/trades/2026-10-26"
    for ev in (trigger(a), trigger(a, summary="7 findings"), trigger(b), resolve(a), resolve("never-opened")):
        assert post(pd.base_url, ev)[0] == 202
    inc = {i["dedup_key"]: i for i in pd.incidents()}
    assert set(inc) == {a, b}  # a resolve for an unknown key opens nothing
    assert (inc[a]["status"], inc[a]["open"], inc[a]["events"], inc[a]["triggers"], inc[a]["summary"]) == \
        ("resolved", False, 3, 2, "7 findings")
    assert (inc[b]["status"], inc[b]["open"], inc[b]["events"]) == ("triggered", True, 1)
    # A trigger after the resolve is a new incident, as in PagerDuty.
    post(pd.base_url, trigger(a))
    assert [(i["number"], i["status"]) for i in pd.incidents_for(a)] == [(1, "resolved"), (3, "triggered")]
    ack = {**resolve(b), "event_action": "acknowledge"}
    assert post(pd.base_url, ack)[0] == 202 and pd.incidents_for(b)[0]["status"] == "acknowledged"


def test_injected_failures_for_a_count_then_recovery(pd):
    pd.fail(429, count=2)
    assert post(pd.base_url, trigger())[0] == 429
    assert post(pd.base_url, trigger())[0] == 429
    assert post(pd.base_url, trigger())[0] == 202
    pd.fail(500, count=100)
    status, body = post(pd.base_url, trigger())
    assert status == 500 and body["status"] == "error"
    pd.recover()
    assert post(pd.base_url, resolve())[0] == 202
    assert [e["http_status"] for e in pd.events()] == [429, 429, 202, 500, 202]
    assert pd.events()[0]["event"]["dedup_key"] == "trade-recon/t/trades/2026-10-25"  # failed ones are kept too
    assert len(pd.accepted()) == 2 and pd.incidents()[0]["status"] == "resolved"


def test_injected_failure_for_a_duration_ends_by_itself(pd):
    pd.fail(503, seconds=0)
    assert post(pd.base_url, trigger())[0] == 202
    pd.fail(503, seconds=3600)
    assert post(pd.base_url, trigger())[0] == 503


def test_reset_forgets_everything(pd):
    post(pd.base_url, trigger())
    pd.fail(500, count=5)
    pd.reset()
    assert pd.events() == [] and pd.incidents() == []
    assert post(pd.base_url, trigger())[0] == 202


def test_state_file_survives_a_restart(tmp_path):
    state = tmp_path / "pd.json"
    with serve(state_file=state) as pd:
        post(pd.base_url, trigger())
    with serve(state_file=state) as pd:
        post(pd.base_url, resolve())
        assert [i["status"] for i in pd.incidents()] == ["resolved"] and len(pd.events()) == 2


def test_cli_command_serves_until_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "fake-pagerduty", "--port", "0",
                             "--state", str(tmp_path / "s.json")],
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        line = proc.stderr.readline()
        m = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
        assert m, line
        assert post(m.group(1), trigger())[0] == 202
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    assert json.loads((tmp_path / "s.json").read_text())["incidents"][0]["status"] == "triggered"


def test_cli_reports_a_busy_port(pd):
    port = pd.base_url.rsplit(":", 1)[1]
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "fake-pagerduty", "--port", port],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "cannot listen on 127.0.0.1:" in r.stderr and "Traceback" not in r.stderr
