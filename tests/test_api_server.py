"""The bundled API on a real uvicorn server on loopback: paging, windows, limits, auth, errors,
the OpenAPI document, logs and the `serve-api` command."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import requests

import api_server_helpers as h
from api_server import openapi
from api_server.source import ParquetSource, with_day_column
from api_server.testing import serve
from jobs.seed import seed_day, trades_table, write_day
from reconcilers.contract import DATASETS, ORDERS, TRADES, day_bounds_utc

SPRING, AUTUMN = date(2026, 3, 29), date(2026, 10, 25)  # 23 and 25 hours
EMPTY_DAY = date(2026, 6, 1)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store")
    for day in (SPRING, AUTUMN):
        seed_day(path, day, 1_200, 2_500, seed=11)
    return path


@pytest.fixture(scope="module")
def api(store):
    with serve(store, api_keys=("k", "second-key")) as running:
        yield running


def table(store: Path, ds, day: date) -> pa.Table:
    return with_day_column(ParquetSource(store).read_day(ds, day), ds, day)


def keys_of(records, ds) -> list[tuple]:
    return [tuple(r[ds.by_name[k].json] for k in ds.key) for r in records]


def session(key: str = h.KEY) -> requests.Session:
    s = requests.Session()
    s.headers["X-API-Key"] = key
    return s


# ---------------------------------------------------------------- paging and windows


@pytest.mark.parametrize("page_size", [7, 500, 2000])
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_pages_add_up_to_the_store_exactly(api, store, name, page_size):
    ds = DATASETS[name]
    got = h.fetch(api.base_url, name, AUTUMN, page_size=page_size)
    expected = table(store, ds, AUTUMN)
    assert len(got.records) == expected.num_rows
    assert len(set(keys_of(got.records, ds))) == expected.num_rows  # no key twice
    assert got.pages == -(-expected.num_rows // page_size)  # every page full but the last
    assert keys_of(got.records, ds) == sorted(keys_of(got.records, ds))  # stable key order
    assert h.diff(got.records, expected, ds, AUTUMN) == set()  # every value as in the store


def test_page_size_one_walks_a_window_record_by_record(api, store):
    start, _ = day_bounds_utc(SPRING)
    win = {"deliveryStartFrom": h.iso(start + timedelta(hours=10)), "deliveryStartTo": h.iso(start + timedelta(hours=11))}
    t = table(store, TRADES, SPRING)
    in_win = pc.and_(pc.greater_equal(t["delivery_start"], start + timedelta(hours=10)),
                     pc.less(t["delivery_start"], start + timedelta(hours=11)))
    expected = pc.sum(in_win).as_py()
    seen, cursor = [], None
    with session() as s:
        for _ in range(expected + 1):
            body = s.get(f"{api.base_url}/v1/trades", params={**win, "pageSize": 1, **({"cursor": cursor} if cursor else {})}).json()
            seen += body["data"]
            cursor = body["pagination"]["nextCursor"]
            if cursor is None:
                break
    assert 0 < expected == len(seen) == len(set(keys_of(seen, TRADES)))


@pytest.mark.parametrize("day,hours", [(SPRING, 23), (AUTUMN, 25)])
@pytest.mark.parametrize("minutes", [60, 15])
def test_windows_split_a_dst_day_exactly(api, store, day, hours, minutes):
    for ds in (TRADES, ORDERS):
        wins = h.windows(day, minutes)
        assert len(wins) == hours * 60 // minutes
        got = h.fetch(api.base_url, ds.name, day, minutes=minutes, page_size=300)
        whole = h.fetch(api.base_url, ds.name, day, page_size=2000)
        assert sorted(keys_of(got.records, ds)) == keys_of(whole.records, ds)
        assert len(got.records) == table(store, ds, day).num_rows
        for rec, win in zip(got.records, got.window_of):  # each record in the window that served it
            assert win["deliveryStartFrom"] <= rec["deliveryStart"] < win["deliveryStartTo"]
            assert rec["deliveryDay"] == day.isoformat()


def test_the_repeated_autumn_hour_is_two_distinct_utc_windows(api):
    # Local 02:00-03:00 happens twice on 2026-10-25: 00:00Z (CEST) and 01:00Z (CET).
    with session() as s:
        first, second = (
            s.get(f"{api.base_url}/v1/trades", params={"deliveryStartFrom": a, "deliveryStartTo": b, "pageSize": 2000}).json()
            for a, b in (("2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"), ("2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"))
        )
    assert first["data"] and second["data"]
    assert not set(keys_of(first["data"], TRADES)) & set(keys_of(second["data"], TRADES))
    assert {r["deliveryStart"][:13] for r in first["data"]} <= {"2026-10-25T00"}


def test_window_with_an_offset_is_echoed_in_utc(api):
    with session() as s:
        r = s.get(f"{api.base_url}/v1/orders",
                  params={"deliveryStartFrom": "2026-03-29T10:00:00+02:00", "deliveryStartTo": "2026-03-29T11:30:00+02:00"})
    body = r.json()
    assert r.status_code == 200
    assert body["meta"]["deliveryStartFrom"] == "2026-03-29T08:00:00Z"
    assert body["meta"]["deliveryStartTo"] == "2026-03-29T09:30:00Z"
    assert body["meta"]["dataset"] == "orders"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["meta"]["asOf"])
    assert body["pagination"]["pageSize"] == 500  # the default


def test_day_meta_covers_the_long_day(api):
    with session() as s:
        meta = s.get(f"{api.base_url}/v1/trades", params={"deliveryDay": "2026-10-25", "pageSize": 1}).json()["meta"]
    assert (meta["deliveryStartFrom"], meta["deliveryStartTo"]) == ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")


def test_an_empty_day_is_200_with_no_data(api):
    with session() as s:
        r = s.get(f"{api.base_url}/v1/trades", params={"deliveryDay": EMPTY_DAY.isoformat()})
    assert r.status_code == 200
    assert r.json()["data"] == [] and r.json()["pagination"]["nextCursor"] is None


# ---------------------------------------------------------------- the JSON of records


def test_records_follow_the_contract_to_the_character(api, store):
    with session() as s:
        raw = s.get(f"{api.base_url}/v1/trades", params={"deliveryDay": "2026-10-25", "pageSize": 2000}).text
    data = json.loads(raw, parse_float=Decimal)["data"]
    n = len(data)
    # Decimals are JSON numbers with exactly `scale` digits, never strings or float renderings.
    assert len(re.findall(r'"price":-?\d+\.\d{2}[,}]', raw)) == n
    assert len(re.findall(r'"quantity":\d+\.\d[,}]', raw)) == n
    assert len(re.findall(r'"deliveryStart":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"', raw)) == n  # unit s
    assert len(re.findall(r'"executionTime":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"', raw)) == n  # unit ms
    assert len(re.findall(r'"deliveryDay":"2026-10-25"', raw)) == n
    # A price that ends in zero keeps its zero (87.40, not 87.4).
    t = table(store, TRADES, AUTUMN)
    tens = [p for p in t["price"].to_pylist() if p == p.quantize(Decimal("0.1"))]
    assert tens and all(f'"price":{p}' in raw for p in tens[:20])
    # Nulls are served as explicit nulls by default; the key is there.
    nulls = [r for r in data if r["buyOrderId"] is None]
    assert nulls and all("buyOrderId" in r for r in nulls)
    assert all(list(r) == [f.json for f in TRADES.fields] for r in data)  # every key, contract order


# ---------------------------------------------------------------- limits and errors


def _problem(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"].startswith("urn:")
    return body


def test_page_size_2000_is_served_and_2001_refused_naming_the_limit(api):
    with session() as s:
        ok = s.get(f"{api.base_url}/v1/orders", params={"deliveryDay": "2026-10-25", "pageSize": 2000})
        assert ok.status_code == 200 and len(ok.json()["data"]) == 2000
        body = _problem(s.get(f"{api.base_url}/v1/orders", params={"deliveryDay": "2026-10-25", "pageSize": 2001}), 400)
    assert "2000" in body["detail"] and body["maxPageSize"] == 2000


@pytest.mark.parametrize("params,needle", [
    ({"deliveryDay": "2026-10-25", "pageSize": 0}, "at least 1"),
    ({"deliveryDay": "2026-10-25", "pageSize": "many"}, "integer"),
    ({}, "deliveryDay"),
    ({"deliveryDay": "2026-10-25", "deliveryStartFrom": "2026-10-25T00:00:00Z"}, "not both"),
    ({"deliveryStartFrom": "2026-10-25T00:00:00Z"}, "both"),
    ({"deliveryDay": "25-10-2026"}, "YYYY-MM-DD"),
    ({"deliveryStartFrom": "2026-10-25T01:00:00", "deliveryStartTo": "2026-10-25T02:00:00"}, "offset"),
    ({"deliveryStartFrom": "2026-10-25T02:00:00Z", "deliveryStartTo": "2026-10-25T01:00:00Z"}, "before"),
    ({"deliveryStartFrom": "2026-10-25T20:00:00Z", "deliveryStartTo": "2026-10-26T02:00:00Z"}, "spans delivery days"),
    ({"deliveryDay": "2026-10-25", "pagesize": 10}, "unknown query parameter 'pagesize'"),
    ({"deliveryDay": "2026-10-25", "cursor": "bm90LWEtY3Vyc29y"}, "bad cursor"),
    ({"deliveryDay": "9999-12-31"}, "out of range"),
])
def test_bad_queries_are_400_problems(api, params, needle):
    with session() as s:
        assert needle in _problem(s.get(f"{api.base_url}/v1/trades", params=params), 400)["detail"]


def test_a_cursor_only_works_for_its_own_window(api):
    with session() as s:
        first = s.get(f"{api.base_url}/v1/trades", params={"deliveryDay": "2026-10-25", "pageSize": 10}).json()
        cursor = first["pagination"]["nextCursor"]
        other = s.get(f"{api.base_url}/v1/trades", params={"deliveryDay": "2026-03-29", "pageSize": 10, "cursor": cursor})
        wrong_dataset = s.get(f"{api.base_url}/v1/orders", params={"deliveryDay": "2026-10-25", "cursor": cursor})
        mangled = s.get(f"{api.base_url}/v1/trades", params={"deliveryDay": "2026-10-25", "cursor": cursor[:-2] + "AA"})
    assert "another dataset or window" in _problem(other, 400)["detail"]
    assert "another dataset or window" in _problem(wrong_dataset, 400)["detail"]
    assert "bad cursor" in _problem(mangled, 400)["detail"]


def test_missing_key_is_401_and_any_wrong_key_the_same_403(api):
    url = f"{api.base_url}/v1/trades?deliveryDay=2026-10-25"
    missing = requests.get(url)
    assert "X-API-Key" in _problem(missing, 401)["detail"]
    assert missing.headers["www-authenticate"]
    wrong = [requests.get(url, headers={"X-API-Key": k}) for k in ("nope", "second-ke", "second-keyX", "K")]
    bodies = {json.dumps(_problem(r, 403), sort_keys=True) for r in wrong}
    assert len(bodies) == 1  # no hint about which part was wrong
    assert requests.get(url, headers={"X-API-Key": "second-key"}).status_code == 200  # every server key works


def test_health_and_the_document_need_no_key(api):
    assert requests.get(f"{api.base_url}/healthz").json() == {"status": "ok"}
    assert requests.get(f"{api.base_url}/openapi.json").status_code == 200


def test_every_error_is_a_no_store_problem(api):
    _problem(requests.get(f"{api.base_url}/v1/nothing-here"), 404)
    r = requests.post(f"{api.base_url}/v1/trades", headers={"X-API-Key": h.KEY})
    _problem(r, 405)
    assert r.headers["allow"] == "GET"


def test_api_keys_never_reach_the_logs(api, caplog):
    caplog.set_level(logging.DEBUG)
    with session("second-key") as s:
        s.get(f"{api.base_url}/v1/trades", params={"deliveryDay": "2026-10-25", "pageSize": 3})
    requests.get(f"{api.base_url}/v1/trades", headers={"X-API-Key": "wrong-key-4711"})
    text = caplog.text
    assert '"GET /v1/trades?deliveryDay=2026-10-25&pageSize=3" 200' in text  # the access log is on
    assert "second-key" not in text and "wrong-key-4711" not in text and "X-API-Key" not in text.replace("X-API-Key header", "")


# ---------------------------------------------------------------- data changing under a reader


def test_keyset_pages_neither_repeat_nor_skip_while_the_day_changes(tmp_path):
    ds, day = TRADES, SPRING
    before = trades_table(day, 900, seed=3)
    write_day(tmp_path, ds, day, before)
    with serve(tmp_path) as api, session() as s:
        first = s.get(f"{api.base_url}/v1/trades", params={"deliveryDay": day.isoformat(), "pageSize": 300}).json()
        last_key = keys_of(first["data"], ds)[-1]
        # Rewrite the day: every 7th row gone, and new revisions that sort between existing keys.
        keep = pa.array([i % 7 != 3 for i in range(before.num_rows)])
        added = before.filter(pa.array([i % 5 == 0 for i in range(before.num_rows)]))
        added = added.set_column(1, added.schema.field("revision_no"), pc.add(added["revision_no"], 10))
        after = pa.concat_tables([before.filter(keep), added]).sort_by([("trade_id", "ascending"), ("revision_no", "ascending")])
        write_day(tmp_path, ds, day, after)
        rest, cursor = [], first["pagination"]["nextCursor"]
        while cursor:
            body = s.get(f"{api.base_url}/v1/trades", params={"deliveryDay": day.isoformat(), "pageSize": 300, "cursor": cursor}).json()
            rest += body["data"]
            cursor = body["pagination"]["nextCursor"]
    served = keys_of(first["data"], ds) + keys_of(rest, ds)
    assert len(served) == len(set(served))  # nothing twice
    now = sorted(tuple(r) for r in zip(after["trade_id"].to_pylist(), after["revision_no"].to_pylist()))
    assert keys_of(rest, ds) == [k for k in now if k > last_key]  # nothing after the cursor skipped


# ---------------------------------------------------------------- the OpenAPI document


def test_committed_document_is_generated_and_served(api):
    committed = openapi.PATH.read_bytes()
    assert committed == openapi.render(), "api_server/openapi.json is stale: run `python -m api_server.openapi`"
    assert requests.get(f"{api.base_url}/openapi.json").content == committed


def test_document_derives_records_from_the_contract():
    doc = openapi.build()
    assert re.fullmatch(r"\d+\.\d+", doc["info"]["version"])
    ops = [op for item in doc["paths"].values() for op in item.values()]
    assert ops and all(op["x-regulatory"] is True and op["x-data-retention"] == "P5Y" for op in ops)
    trade = doc["components"]["schemas"]["Trade"]
    assert list(trade["properties"]) == [f.json for f in TRADES.fields]
    assert trade["properties"]["price"]["type"] == "number" and trade["properties"]["price"]["multipleOf"] == 0.01
    assert trade["properties"]["quantity"]["multipleOf"] == 0.1
    assert trade["properties"]["buyOrderId"]["type"] == ["string", "null"]
    assert trade["properties"]["aggressorSide"]["enum"] == ["BUY", "SELL", None]
    assert trade["properties"]["executionTime"]["format"] == "date-time"
    assert trade["properties"]["revisionNo"]["type"] == "integer"
    assert doc["components"]["parameters"]["PageSize"]["schema"]["maximum"] == 2000


def test_served_pages_validate_against_the_document(api):
    import jsonschema_rs

    doc = openapi.build()
    with session() as s:
        for ds, title in ((TRADES, "TradePage"), (ORDERS, "OrderPage")):
            validator = jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{title}", "components": doc["components"]})
            body = s.get(f"{api.base_url}/v1/{ds.path}", params={"deliveryDay": "2026-03-29", "pageSize": 2000}).json()
            assert len(body["data"]) > 1000
            validator.validate(body)
            body["data"][0]["price"] = 12.345  # off the tick: the document must catch it
            assert not validator.is_valid(body)


# ---------------------------------------------------------------- the command


def _recon(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd or ROOT)


def test_serve_api_command_serves_and_writes_its_manifest(store, tmp_path):
    manifest = tmp_path / "m.json"
    env = {**os.environ, "TRADE_RECON_SERVER_API_KEYS": "cli-key", "TRADE_RECON__STORE__PATH": str(store)}
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "serve-api", "--port", "0", "--fault", "drop-records:rate=0.5",
                             "--fault-seed", "9", "--manifest", str(manifest)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        assert "drop-records:rate=0.5" in line
        r = requests.get(f"{url}/v1/orders", params={"deliveryDay": "2026-03-29", "pageSize": 2000}, headers={"X-API-Key": "cli-key"})
        assert r.status_code == 200 and 0 < len(r.json()["data"]) < 2000
    finally:
        proc.send_signal(signal.SIGTERM)  # how a service manager stops it
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    written = json.loads(manifest.read_text())
    assert written["seed"] == 9 and written["profiles"] == ["drop-records:rate=0.5"]
    assert written["expected"]["orders"]["2026-03-29"]["missing_in_api"]["*"] > 0
    assert "cli-key" not in err


def test_serve_api_refuses_bad_faults_and_missing_keys(tmp_path):
    env = {"TRADE_RECON_SERVER_API_KEYS": "k"}
    bad = _recon("serve-api", "--port", "0", "--fault", "drop-nullz", env=env)
    assert bad.returncode == 3 and "unknown fault profile 'drop-nullz'" in bad.stderr and "Traceback" not in bad.stderr
    bad = _recon("serve-api", "--port", "0", "--fault", "429-burst:retry_after=soon", env=env)
    assert bad.returncode == 3 and "retry_after" in bad.stderr
    nokeys = _recon("serve-api", "--port", "0", env={"TRADE_RECON_SERVER_API_KEYS": ""})
    assert nokeys.returncode == 3 and "TRADE_RECON_SERVER_API_KEYS" in nokeys.stderr
    empty = tmp_path / "keys"
    empty.write_text("# no keys yet\n")
    nokeys = _recon("serve-api", "--port", "0", "--api-keys-file", str(empty))
    assert nokeys.returncode == 3 and str(empty) in nokeys.stderr


def test_write_openapi_regenerates_the_document(tmp_path, monkeypatch, capsys):
    from jobs.cli import main

    target = tmp_path / "openapi.json"
    monkeypatch.setattr(openapi, "PATH", target)
    assert main(["serve-api", "--write-openapi"]) == 0
    assert target.read_bytes() == openapi.render()


# ---------------------------------------------------------------- the encoder on its own


def test_encoder_escapes_strings_and_keeps_decimals_exact():
    from api_server.encode import encode_rows

    n = 4
    base = trades_table(SPRING, n, seed=1)
    cols = {f.name: base.column(f.name).combine_chunks() for f in TRADES.fields if f.name != "delivery_day"}
    cols["delivery_day"] = pa.array([SPRING] * n, pa.date32())
    cols["contract_name"] = pa.array(['say "hi"', "back\\slash", "line\nbreak", "Zürich ☀"])
    cols["price"] = pa.array([Decimal("-12.30"), Decimal("0.00"), Decimal("-0.05"), Decimal("9999.99")], pa.decimal128(12, 2))
    cols["execution_time"] = pa.array([datetime(2026, 3, 29, 6, 12, 3, 417999, tzinfo=timezone.utc)] * n,
                                      pa.timestamp("us", tz="UTC"))
    rows = encode_rows(cols, TRADES, omit={"trader_id": pa.array([True, False, True, False])})
    text = "[" + "".join(rows.to_pylist())[:-1] + "]"
    data = json.loads(text, parse_float=Decimal)
    assert [r["contractName"] for r in data] == ['say "hi"', "back\\slash", "line\nbreak", "Zürich ☀"]
    assert re.findall(r'"price":([^,]+),', text) == ["-12.30", "0.00", "-0.05", "9999.99"]
    assert {r["executionTime"] for r in data} == {"2026-03-29T06:12:03.417Z"}  # truncated to ms, never rounded
    assert ["traderId" in r for r in data] == [False, True, False, True]
