"""The API replay in Spark: windows over DST days, parallel tasks, status rows, fetch-once."""

from __future__ import annotations

import logging
from datetime import date, timedelta, timezone

import pytest

from jobs.config import ConfigError, load_config
from jobs.replay import plan_windows, replay_api
from jobs.seed import orders_table, trades_table
from reconcilers.contract import ORDERS, TRADES, day_bounds_utc
from reconcilers.schemas import api_schema
from fake_api import serve, to_json

KEY = "replay-key-93ac"


def cfg_for(tmp_path, base_url: str, env: dict | None = None, **api):
    lines = [f"api: {{base_url: '{base_url}', api_key: {{env: RECON_TEST_KEY}}, page_size: 50, window_minutes: 60,"
             f" spool_dir: '{tmp_path / 'spool'}',"
             " retry: {max_attempts: 3, backoff_s: 0.01, backoff_max_s: 0.02, retry_after_cap_s: 2}"
             + "".join(f", {k}: {v}" for k, v in api.items()) + "}"]
    path = tmp_path / "recon.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(path, environ=env or {})


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("RECON_TEST_KEY", KEY)


@pytest.mark.parametrize("day, hours", [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 12, 2), 24)])
def test_windows_cover_the_day_exactly(day, hours):
    start, end = day_bounds_utc(day)
    for minutes in (60, 45, 240):
        ws = plan_windows(day, minutes)
        assert ws[0].start_us == int(start.timestamp()) * 10**6 and ws[-1].end_us == int(end.timestamp()) * 10**6
        assert all(a.end_us == b.start_us for a, b in zip(ws, ws[1:]))
        assert [w.index for w in ws] == list(range(len(ws)))
        assert len(ws) == -(-hours * 60 // minutes)
    assert len(plan_windows(day, 60)) == hours


def test_windows_on_the_long_day_include_the_repeated_hour():
    ws = plan_windows(date(2026, 10, 25), 60)
    # 02:00-03:00 local happens twice: 00:00Z (CEST) and 01:00Z (CET), both are windows.
    assert [w.start for w in ws[:4]] == ["2026-10-24T22:00:00Z", "2026-10-24T23:00:00Z",
                                         "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"]


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)])
def test_replay_reads_every_record_of_a_dst_day(spark, tmp_path, key_env, day):
    trades = to_json(trades_table(day, 600), TRADES, day)
    with serve({"trades": trades}, api_key=KEY) as api:
        cfg = cfg_for(tmp_path, api.base_url)
        replay = replay_api(spark, cfg, TRADES, day)
        try:
            assert replay.complete, replay.error
            df = replay.df
            # Read from the spool (Parquet), so every column reads back nullable; names and types match.
            assert [(f.name, f.dataType) for f in df.schema] == [(f.name, f.dataType) for f in api_schema(TRADES)]
            assert len(list(replay.spool.glob("window-*.parquet"))) == (23 if day.month == 3 else 25)
            got = sorted((r.trade_id, r.revision_no) for r in df.select("trade_id", "revision_no").collect())
            assert got == sorted((r["tradeId"], r["revisionNo"]) for r in trades)
            requests_after_replay = len(api.requests)
            # Persisted: more actions never fetch pages again.
            assert df.count() == 600 and df.where("_bad_type != 0").count() == 0
            assert len(api.requests) == requests_after_replay
            s = replay.stats
            hours = 23 if day.month == 3 else 25
            assert (s.windows, s.windows_failed, s.records, s.retries) == (hours, 0, 600, 0)
            assert s.pages >= hours and s.bytes > 0
            # Every record sits in the window it was asked for.
            bad = df.where("_window != cast((unix_micros(delivery_start) - "
                           f"{int(day_bounds_utc(day)[0].timestamp()) * 10**6}) div 3600000000 as int)").count()
            assert bad == 0
        finally:
            replay.release()
        assert list((tmp_path / "spool").iterdir()) == []  # the spool goes with the run


def test_orders_decode_exactly_through_spark(spark, tmp_path, key_env):
    day = date(2026, 12, 2)
    table = orders_table(day, 300)
    with serve({"orders": to_json(table, ORDERS, day)}, api_key=KEY) as api:
        replay = replay_api(spark, cfg_for(tmp_path, api.base_url), ORDERS, day)
    try:
        assert replay.complete
        api_rows = {(r.order_id, r.revision_no): r for r in replay.df.collect()}
        for store in table.to_pylist()[:100]:
            got = api_rows[(store["order_id"], store["revision_no"])]
            for f in ORDERS.fields:
                if f.name == "delivery_day":
                    assert got[f.name] == day
                elif f.kind == "timestamp":
                    want = store[f.name]
                    have = got[f.name]
                    assert (have is None and want is None) or have.replace(tzinfo=timezone.utc) == want, f.name
                else:
                    assert got[f.name] == store[f.name], f.name
            assert got["_present"] == (1 << len(ORDERS.fields)) - 1 and got["_bad_type"] == 0
    finally:
        replay.release()


def test_a_failed_window_makes_the_replay_incomplete_with_one_message(spark, tmp_path, key_env):
    day = date(2026, 12, 2)
    trades = to_json(trades_table(day, 400), TRADES, day)
    target = (day_bounds_utc(day)[0] + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def edit(req, env):
        import orjson

        body = orjson.dumps(env)
        return body[:-7] if req.params["deliveryStartFrom"] == target and req.offset == 0 else body

    with serve({"trades": trades}, api_key=KEY, edit=edit) as api:
        replay = replay_api(spark, cfg_for(tmp_path, api.base_url), TRADES, day)
    try:
        assert not replay.complete
        assert replay.stats.windows_failed == 1 and replay.stats.windows == 24
        assert replay.error.startswith(f"trades window 5 [{target}, ")
        assert "page 1: the body is not valid JSON" in replay.error and "last good cursor none (first page)" in replay.error
        assert KEY not in replay.error and "Traceback" not in replay.error
        assert replay.df is None and list((tmp_path / "spool").iterdir()) == []
    finally:
        replay.release()


def test_api_down_fails_in_the_preflight_without_tasks(spark, tmp_path, key_env):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    replay = replay_api(spark, cfg_for(tmp_path, f"http://127.0.0.1:{port}"), TRADES, date(2026, 12, 2))
    assert replay.df is None and not replay.complete
    assert replay.error.startswith("trades: the API preflight request failed: connection failed")
    assert replay.stats.windows_failed == 24


def test_missing_key_is_a_config_error(spark, tmp_path, monkeypatch):
    monkeypatch.delenv("RECON_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="RECON_TEST_KEY is not set"):
        replay_api(spark, cfg_for(tmp_path, "http://127.0.0.1:9"), TRADES, date(2026, 12, 2))


def test_tls_verification_off_is_warned_every_run(spark, tmp_path, key_env, caplog):
    day = date(2026, 12, 2)
    with serve({"trades": []}, api_key=KEY) as api:
        cfg = cfg_for(tmp_path, api.base_url, tls="{verify: false}")
        with caplog.at_level(logging.WARNING, logger="trade_recon.replay"):
            replay = replay_api(spark, cfg, TRADES, day)
    assert replay.complete and replay.stats.records == 0
    assert replay.df.count() == 0  # an empty spool reads as an empty, typed DataFrame
    replay.release()
    assert any("TLS certificate verification is OFF" in r.getMessage() for r in caplog.records)


def test_missing_ca_bundle_is_a_config_error(spark, tmp_path, key_env):
    cfg = cfg_for(tmp_path, "https://127.0.0.1:9", tls="{ca_bundle: /nonexistent/ca.pem}")
    with pytest.raises(ConfigError, match="api.tls.ca_bundle"):
        replay_api(spark, cfg, TRADES, date(2026, 12, 2))
