"""Fault suite, the API side: the API goes away, rate limits, broken bodies.

Each case runs the job (`jobs.run.run`, what `recon run` calls) against the bundled API or, where a
case needs one exact misbehaviour, the small loopback API of `fake_api.py`, and ends in outcome
(a) exactly the right findings or (b) incomplete, alerted on the run-failure key only.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from api_server.testing import serve
from fake_api import problem, to_json
from fake_api import serve as serve_fake
from fault_helpers import (API_KEY, DAY, ROWS, case, expect_incomplete, expect_verdict, latest_doc, pagerduty, pd,  # noqa: F401
                           secrets_env, store, store_rows)
from jobs.replay import plan_windows
from reconcilers.contract import TRADES

pytestmark = pytest.mark.slow

WINDOWS = plan_windows(DAY, 360)


def fake_records(store) -> dict[str, list[dict]]:
    import pyarrow as pa

    return {"trades": to_json(pa.Table.from_pylist(store_rows(store, "trades")), TRADES, DAY)}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_preflight(req) -> bool:
    return req.page_size == 1


# ---------------------------------------------------------------- the API goes away


def test_connection_refused(case):
    url = f"http://127.0.0.1:{closed_port()}"
    cfg = case.config(url)
    code = case.run(cfg)
    expect_incomplete(case, code, cfg, "trades", "Connection refused", "still failing after 3 attempts",
                      f"url {url}/v1/trades?deliveryStartFrom=")


def test_dns_failure_names_the_host(case):
    # `.invalid` never resolves (RFC 6761): no API is ever contacted, whatever the resolver does.
    cfg = case.config("http://no-such-host.invalid:8765")
    code = case.run(cfg)
    expect_incomplete(case, code, cfg, "trades", "connection failed", "url http://no-such-host.invalid:8765/v1/trades")


def test_one_window_that_stalls_past_the_read_timeout(case):
    stalled, released = WINDOWS[2], threading.Event()

    def stall(req):
        if req.params.get("deliveryStartFrom") == stalled.start and not is_preflight(req):
            released.wait(30)  # far longer than read_timeout_s; the answer comes too late
        return None

    with serve_fake(fake_records(case.store), api_key=API_KEY, fault=stall) as api:
        cfg = case.config(api.base_url, api={"read_timeout_s": 2, "retry": {"max_attempts": 2}})
        code = case.run(cfg)
        released.set()
        time.sleep(0.5)  # the stalled handlers answer into closed sockets now, inside this test
    error = expect_incomplete(case, code, cfg, "trades", f"trades {stalled.label()} page 1: timed out",
                              "still failing after 2 attempts", "last good cursor none (first page)")
    assert "more window" not in error  # only that one window failed
    assert latest_doc(cfg, "trades")["api_stats"]["windows_failed"] == 1


def test_503_storm_longer_than_the_retry_budget(case):
    # The API answers the preflight and two more pages, then only 503 for good.
    def storm(req):
        return problem(503, "Service Unavailable") if req.n > 3 else None

    with serve_fake(fake_records(case.store), api_key=API_KEY, fault=storm) as api:
        cfg = case.config(api.base_url)
        code = case.run(cfg)
    error = expect_incomplete(case, code, cfg, "trades", "HTTP 503 (Service Unavailable)", "still failing after 3 attempts",
                              "; url http://127.0.0.1:")
    assert error.startswith("trades window ")
    assert latest_doc(cfg, "trades")["api_stats"]["windows_failed"] >= 2


# ---------------------------------------------------------------- rate limiting


def test_429_with_a_short_retry_after_is_waited_out(case):
    with serve(case.store, faults=["429-burst:retry_after=2,count=1"], api_keys=(API_KEY,)) as api:
        cfg = case.config(api.base_url, api={"window_minutes": 720})  # two windows: fewer 2 s waits
        code = case.run(cfg)
        served = {t["fault"]: t["served"] for t in api.manifest_data()["transport"]}
    doc = expect_verdict(case, code, cfg, "trades", {})
    # Both windows' first pages and the preflight got one 429; each was waited out and retried.
    assert served["429-burst"] == len(plan_windows(DAY, 720)) + 1 == 3
    assert doc["api_stats"]["retries"] == served["429-burst"]
    assert doc["rows"] == {"store": ROWS["trades"], "api": ROWS["trades"]}


def test_429_with_retry_after_3600_fails_fast_within_the_budget(case):
    with serve(case.store, faults=["429-burst:retry_after=3600,count=1"], api_keys=(API_KEY,)) as api:
        cfg = case.config(api.base_url, api={"run_budget_s": 60})
        t0 = time.monotonic()
        code = case.run(cfg)
        took = time.monotonic() - t0
    expect_incomplete(case, code, cfg, "trades", "HTTP 429", "Retry-After 3600 s, above the cap of 5 s")
    assert took < 120  # not an hour: the cap and the budget hold


# ---------------------------------------------------------------- broken bodies


def second_page_of(window):
    """A fault hook matcher: the second page of `window` (a request with a cursor)."""
    return lambda req: req.params.get("deliveryStartFrom") == window.start and "cursor" in req.params


BROKEN = {
    "cut-off JSON": (lambda env: orjson_dumps(env)[:-40], "the body is not valid JSON (truncated or corrupt"),
    "empty 200": (lambda env: b"", "the body is not valid JSON (truncated or corrupt, 0 bytes)"),
    "wrong envelope": (lambda env: {"items": env["data"], "next": env["pagination"]["nextCursor"]},
                       "the envelope has no 'data' array"),
}


def orjson_dumps(obj) -> bytes:
    import orjson

    return orjson.dumps(obj)


@pytest.mark.parametrize("what", list(BROKEN))
def test_broken_body_on_a_middle_page(case, what):
    change, says = BROKEN[what]
    target = second_page_of(WINDOWS[1])
    with serve_fake(fake_records(case.store), api_key=API_KEY,
                    edit=lambda req, env: change(env) if target(req) else env) as api:
        cfg = case.config(api.base_url)
        code = case.run(cfg)
    expect_incomplete(case, code, cfg, "trades", f"trades {WINDOWS[1].label()} page 2: {says}",
                      "last good cursor 'o25'", "cursor=o25")


def test_html_instead_of_json(case):
    target = second_page_of(WINDOWS[3])

    def html(req):
        if target(req):
            return 200, {"Content-Type": "text/html; charset=utf-8"}, b"<html><body>502 Bad Gateway</body></html>"
        return None

    with serve_fake(fake_records(case.store), api_key=API_KEY, fault=html) as api:
        cfg = case.config(api.base_url)
        code = case.run(cfg)
    expect_incomplete(case, code, cfg, "trades", f"{WINDOWS[3].label()} page 2",
                      "content type 'text/html' where application/json was expected")


def test_a_number_where_the_contract_says_string_is_a_type_mismatch_finding(case):
    # contract_id holds digits only, so the server can send it as a JSON number.
    with serve(case.store, faults=["wrong-type:fields=contract_id,rate=0.1"], fault_seed=5, api_keys=(API_KEY,)) as api:
        cfg = case.config(api.base_url)
        code = case.run(cfg)
        manifest = api.manifest_data()
    want = manifest["expected"]["trades"][DAY.isoformat()]
    assert set(want) == {"type_mismatch"} and want["type_mismatch"]["contract_id"] > 0
    doc = expect_verdict(case, code, cfg, "trades", want)
    # The very records the server altered (fewer than the samples cap).
    sampled = {(s["field"], s["key"]["trade_id"], s["key"]["revision_no"]) for s in doc["samples"]}
    assert sampled == {(i["field"], i["key"]["trade_id"], i["key"]["revision_no"]) for i in manifest["injected"]}
