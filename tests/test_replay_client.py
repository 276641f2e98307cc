"""Paging one window against a real loopback HTTP server: checks, retries, and failure messages."""

from __future__ import annotations

import socket
import time
from datetime import date

import orjson
import pyarrow as pa
import pytest

from jobs.api_client import ClientSettings, WindowFailed, WindowStatus, new_session, preflight, read_window
from jobs.api_decode import PageDecoder
from jobs.replay import plan_windows
from jobs.seed import trades_table
from reconcilers.contract import TRADES
from fake_api import problem, serve, to_json

DAY = date(2026, 10, 25)
KEY = "sekret-key-5f2e"
RECORDS = to_json(trades_table(DAY, 400), TRADES, DAY)
WINDOWS = plan_windows(DAY, 60)
DECODER = PageDecoder(TRADES)


def busiest_window():
    counts = [sum(1 for r in RECORDS if w.start <= r["deliveryStart"] < w.end) for w in WINDOWS]
    return WINDOWS[counts.index(max(counts))], max(counts)


W, N = busiest_window()  # about 20 records: 5 pages of 5
RECORDS_IN_W = [r for r in RECORDS if W.start <= r["deliveryStart"] < W.end]


def settings(base_url: str, **kw) -> ClientSettings:
    base = dict(base_url=base_url, path="trades", key_header="X-API-Key", page_size=5, connect_timeout_s=2,
                read_timeout_s=5, max_attempts=4, backoff_s=0.01, backoff_max_s=0.05, retry_after_cap_s=2,
                budget_s=60, deadline=time.time() + 60)
    return ClientSettings(**{**base, **kw})


def read(api_or_url, **kw) -> tuple[pa.Table | None, WindowStatus, str | None]:
    url = api_or_url if isinstance(api_or_url, str) else api_or_url.base_url
    st = settings(url, **kw)
    status = WindowStatus(W.index, W.start, W.end)
    batches = []
    with new_session(st, KEY) as s:
        try:
            for b in read_window(s, st, DECODER, W, status, "trades"):
                batches.append(b)
        except WindowFailed as e:
            return None, status, str(e)
    return pa.Table.from_batches(batches, DECODER.schema), status, None


def test_clean_window_reads_every_record_once():
    with serve({"trades": RECORDS}, api_key=KEY) as api:
        table, st, err = read(api)
    assert err is None
    ids = sorted(zip(table.column("trade_id").to_pylist(), table.column("revision_no").to_pylist()))
    expected = sorted((r["tradeId"], r["revisionNo"]) for r in RECORDS if W.start <= r["deliveryStart"] < W.end)
    assert ids == expected and len(ids) == N
    assert st.pages == -(-N // 5) and st.records == N and st.retries == 0 and st.bytes > 0
    assert set(table.column("_window").to_pylist()) == {W.index}
    # One keep-alive session: every request of the window went over the same server.
    assert len(api.requests) == st.pages


def test_429_with_retry_after_then_success():
    def fault(req):
        return problem(429, "slow down", {"Retry-After": "1"}) if req.n == 2 else None

    with serve({"trades": RECORDS}, api_key=KEY, fault=fault) as api:
        table, st, err = read(api)
    assert err is None and table.num_rows == N and st.retries == 1


def test_503_twice_then_success():
    def fault(req):
        return problem(503, "maintenance") if req.n in (1, 2) else None

    with serve({"trades": RECORDS}, api_key=KEY, fault=fault) as api:
        table, st, err = read(api)
    assert err is None and table.num_rows == N and st.retries == 2


def test_retry_after_above_cap_gives_up_at_once():
    def fault(req):
        return problem(429, "come back later", {"Retry-After": "3600"}) if req.n == 3 else None

    t0 = time.monotonic()
    with serve({"trades": RECORDS}, api_key=KEY, fault=fault) as api:
        _, st, err = read(api)
    assert time.monotonic() - t0 < 30  # gave up, did not wait an hour
    assert "Retry-After 3600 s, above the cap of 2 s" in err and "page 3" in err and "last good cursor 'o10'" in err


def test_retries_exhausted():
    with serve({"trades": RECORDS}, api_key=KEY, fault=lambda r: problem(500, "boom")) as api:
        _, st, err = read(api)
    assert "HTTP 500 (boom), still failing after 4 attempts" in err and st.retries == 3


def test_budget_exhausted():
    with serve({"trades": RECORDS}, api_key=KEY) as api:
        _, _, err = read(api, deadline=time.time() - 1)
    assert "run budget of 60 s is used up" in err


def test_truncated_body_is_retried_then_read():
    def edit(req, env):
        body = orjson.dumps(env)
        return body[: len(body) // 2] if req.offset == 10 and req.n == 3 else body

    with serve({"trades": RECORDS}, api_key=KEY, edit=edit) as api:
        table, st, err = read(api)
    assert err is None and table.num_rows == N and st.retries == 1


def test_truncated_body_names_window_page_cursor_and_url_without_key():
    def edit(req, env):
        body = orjson.dumps(env)
        return body[: len(body) // 2] if req.offset == 10 else body

    with serve({"trades": RECORDS}, api_key=KEY, edit=edit) as api:
        _, st, err = read(api)
    assert err.startswith(f"trades window {W.index} [{W.start}, {W.end}) page 3: the body is not valid JSON")
    assert "still failing after 4 attempts" in err and "last good cursor 'o10'" in err
    assert f"url {api.base_url}/v1/trades?deliveryStartFrom=" in err and "cursor=o10" in err
    assert KEY not in err
    assert st.pages == 2


def test_stuck_cursor():
    def edit(req, env):
        env["pagination"]["nextCursor"] = "o5"
        return env

    with serve({"trades": RECORDS}, api_key=KEY, edit=edit) as api:
        _, _, err = read(api)
    assert "page 2: the cursor did not advance" in err


def test_page_past_the_end_repeating_the_last_page():
    last = (N - 1) // 5 * 5

    def edit(req, env):
        if req.offset == last and "-" not in req.params["cursor"]:
            env["pagination"]["nextCursor"] = f"o{last}-again"  # same offset: the same records again
        return env

    with serve({"trades": RECORDS}, api_key=KEY, edit=edit) as api:
        _, st, err = read(api)
    assert f"page {last // 5 + 2} repeats page {last // 5 + 1} record for record" in err


def test_records_repeated_across_pages_are_data_not_a_paging_fault():
    def edit(req, env):
        if req.offset == 5:
            env["data"] = env["data"][:4] + [RECORDS_IN_W[0]]
        return env

    with serve({"trades": RECORDS}, api_key=KEY, edit=edit) as api:
        table, st, err = read(api)
    assert err is None
    keys = list(zip(table.column("trade_id").to_pylist(), table.column("revision_no").to_pylist()))
    first = (RECORDS_IN_W[0]["tradeId"], RECORDS_IN_W[0]["revisionNo"])
    assert keys.count(first) == 2


def test_page_larger_than_requested():
    def edit(req, env):
        if req.offset == 5:
            env["data"] = RECORDS_IN_W[5:11]
        return env

    with serve({"trades": RECORDS}, api_key=KEY, edit=edit) as api:
        _, _, err = read(api)
    assert "page 2: 6 records on a page of at most 5 requested" in err


def test_record_outside_the_window():
    outsider = dict(RECORDS_IN_W[0], deliveryStart=W.end)

    def edit(req, env):
        if req.offset == 0:
            env["data"][1] = outsider
        return env

    with serve({"trades": RECORDS}, api_key=KEY, edit=edit) as api:
        _, _, err = read(api)
    assert f"page 1: 1 record(s) outside the window, the first with deliveryStart {W.end}" in err


def test_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, st, err = read(f"http://127.0.0.1:{port}")
    assert "page 1: connection failed" in err and "still failing after 4 attempts" in err
    assert "last good cursor none (first page)" in err and st.retries == 3


def test_https_against_a_plain_http_api_keeps_the_whole_tls_reason():
    with serve({"trades": RECORDS}, api_key=KEY) as api:
        _, _, err = read(api.base_url.replace("http://", "https://"), verify=False)
    assert "TLS failed: SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number" in err


def test_wrong_content_type_and_bad_envelope():
    def fault(req):
        if req.n == 1:
            return 200, {"Content-Type": "text/html"}, b"<html>maintenance</html>"
        return None

    with serve({"trades": RECORDS}, api_key=KEY, fault=fault) as api:
        _, _, err = read(api)
    assert "content type 'text/html' where application/json was expected" in err

    with serve({"trades": RECORDS}, api_key=KEY, edit=lambda req, env: {"items": env["data"]}) as api:
        _, _, err = read(api)
    assert "the envelope has no 'data' array" in err


def test_204_is_an_empty_window():
    with serve({"trades": RECORDS}, api_key=KEY, fault=lambda r: (204, {}, b"")) as api:
        table, st, err = read(api)
    assert err is None and table.num_rows == 0 and st.pages == 1


def test_rejected_key_is_not_retried_and_not_shown():
    with serve({"trades": RECORDS}, api_key="another") as api:
        _, st, err = read(api)
    assert "HTTP 401 (missing or wrong API key)" in err and st.retries == 0 and KEY not in err


def test_preflight_fails_fast_with_one_message():
    with serve({"trades": RECORDS}, api_key="another") as api:
        with pytest.raises(WindowFailed) as e:
            preflight(settings(api.base_url), KEY, W, "trades", WindowStatus(W.index, W.start, W.end))
    assert str(e.value).startswith("trades: the API preflight request failed: HTTP 401")
    assert "pageSize=1" in str(e.value) and KEY not in str(e.value)
