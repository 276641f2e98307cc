"""Fault profiles against their ground-truth manifest, on a real server on loopback.

Every data fault is checked the strong way: fetch everything, diff it against the store with the
test's own contract rendering, and require the difference to be exactly what the manifest says,
whatever windows and page sizes the client used."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import requests

import api_server_helpers as h
from api_server.faults import FaultError, parse_fault, parse_faults
from api_server.source import ParquetSource, with_day_column
from api_server.testing import serve
from jobs.seed import seed_day
from reconcilers.contract import ORDERS, TRADES
from reconcilers.result import FINDING_KINDS

SPRING, AUTUMN = date(2026, 3, 29), date(2026, 10, 25)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store")
    seed_day(path, SPRING, 800, 1_500, seed=5)
    seed_day(path, AUTUMN, 800, 1_500, seed=6)
    return path


def store_table(store, ds, day):
    return with_day_column(ParquetSource(store).read_day(ds, day), ds, day)


DATA_PROFILES = {
    "drop-nulls": ("drop-nulls",),
    "drop-nulls-named": ("drop-nulls:fields=trader_id,text",),
    "omitempty": ("omitempty",),
    "drop-records": ("drop-records:rate=0.03",),
    "duplicate-records": ("duplicate-records:rate=0.03",),
    "change-values": ("change-values:rate=0.05",),
    "null-values": ("null-values:rate=0.05",),
    "wrong-type": ("wrong-type:rate=0.05",),
    "all-combined": ("drop-records:rate=0.02", "duplicate-records:rate=0.02", "change-values:rate=0.03",
                     "null-values:rate=0.03", "wrong-type:rate=0.03", "drop-nulls:rate=0.5", "omitempty:rate=0.2"),
}
EXPECTED_KINDS = {
    "drop-nulls": {"null_dropped"},
    "drop-nulls-named": {"null_dropped"},
    "omitempty": {"null_dropped", "value_dropped"},
    "drop-records": {"missing_in_api"},
    "duplicate-records": {"duplicate_key"},
    "change-values": {"value_mismatch"},
    "null-values": {"value_nulled"},
    "wrong-type": {"type_mismatch"},
    "all-combined": {"missing_in_api", "duplicate_key", "value_mismatch", "value_nulled", "type_mismatch",
                     "null_dropped", "value_dropped"},
}


@pytest.mark.parametrize("profile", list(DATA_PROFILES))
def test_served_differences_are_exactly_the_manifest(store, profile):
    with serve(store, faults=DATA_PROFILES[profile], fault_seed=17) as api:
        for ds in (TRADES, ORDERS):
            truth = store_table(store, ds, AUTUMN)
            # Two clients slicing and paging differently must see the same differences.
            by_hour = h.fetch(api.base_url, ds.name, AUTUMN, minutes=60, page_size=37)
            whole = h.fetch(api.base_url, ds.name, AUTUMN, page_size=2000)
            found = h.diff(by_hour.records, truth, ds, AUTUMN)
            assert found == h.diff(whole.records, truth, ds, AUTUMN)
            manifest = api.manifest_data()
            assert found == h.manifest_set(manifest, ds, AUTUMN)
            counts = manifest["expected"][ds.name][AUTUMN.isoformat()]
            assert sum(n for per_field in counts.values() for n in per_field.values()) == len(found)
        kinds = {i["kind"] for i in manifest["injected"]}
        assert kinds == EXPECTED_KINDS[profile]
        assert kinds <= set(FINDING_KINDS)
        assert api.read_manifest()["injected"] == manifest["injected"]  # the file says the same


def test_named_fields_limit_the_fault(store):
    with serve(store, faults=("drop-nulls:fields=trader_id,text",)) as api:
        api.load_day("orders", SPRING)
        api.load_day("trades", SPRING)
        m = api.manifest_data()
    assert set(m["expected"]["orders"]["2026-03-29"]["null_dropped"]) == {"trader_id", "text"}
    assert set(m["expected"]["trades"]["2026-03-29"]["null_dropped"]) == {"trader_id"}


def test_drop_nulls_is_every_null_of_the_day(store):
    with serve(store, faults=("drop-nulls",)) as api:
        api.load_day("trades", SPRING)
        expected = api.manifest_data()["expected"]["trades"]["2026-03-29"]["null_dropped"]
    t = store_table(store, TRADES, SPRING)
    nulls = {f.name: t[f.name].null_count for f in TRADES.nullable_fields if t[f.name].null_count}
    assert expected == nulls


def test_omitempty_drops_zero_false_and_empty_string_as_value_dropped(store):
    with serve(store, faults=("omitempty",)) as api:
        api.load_day("orders", AUTUMN)
        dropped = api.manifest_data()["expected"]["orders"]["2026-10-25"]["value_dropped"]
    t = store_table(store, ORDERS, AUTUMN)
    assert dropped["text"] == sum(1 for v in t["text"].to_pylist() if v == "")
    assert dropped["remaining_quantity"] == sum(1 for v in t["remaining_quantity"].to_pylist() if v == 0)
    assert dropped.get("price", 0) == sum(1 for v in t["price"].to_pylist() if v == 0)


def test_the_manifest_depends_on_data_profile_and_seed_only(store):
    def run(seed, page_size):
        with serve(store, faults=DATA_PROFILES["all-combined"], fault_seed=seed) as api:
            for ds in ("trades", "orders"):
                h.fetch(api.base_url, ds, SPRING, minutes=30, page_size=page_size)
            return api.manifest_data()

    a, b, c = run(1, 50), run(1, 2000), run(2, 50)
    assert a == b
    assert a["injected"] != c["injected"]
    assert a["seed"] == 1 and a["profiles"][0] == "drop-records:rate=0.02"


def test_faults_never_touch_keys_or_window_fields(store):
    with serve(store, faults=DATA_PROFILES["all-combined"], fault_seed=3) as api:
        got = h.fetch(api.base_url, "trades", AUTUMN, minutes=60, page_size=100)
    for rec, win in zip(got.records, got.window_of):
        assert isinstance(rec["tradeId"], str) and isinstance(rec["revisionNo"], int)
        assert win["deliveryStartFrom"] <= rec["deliveryStart"] < win["deliveryStartTo"]
        assert rec["deliveryDay"] == "2026-10-25"


def test_change_values_moves_one_tick_one_hour_or_to_whole_seconds(store):
    with serve(store, faults=("change-values:rate=0.2",), fault_seed=4) as api:
        got = h.fetch(api.base_url, "orders", SPRING, page_size=2000)
        injected = [i for i in api.manifest_data()["injected"] if i["dataset"] == "orders"]
    truth = {(r["order_id"], r["revision_no"]): r for r in store_table(store, ORDERS, SPRING).to_pylist()}
    served = {(r["orderId"], r["revisionNo"]): r for r in got.records}
    seen = set()
    for i in injected:
        key = (i["key"]["order_id"], i["key"]["revision_no"])
        f = ORDERS.by_name[i["field"]]
        store_v, api_v = h.render(truth[key][f.name], f), served[key][f.json]
        if f.kind == "decimal":
            assert abs(float(api_v) - float(store_v)) == pytest.approx(10.0 ** -f.scale)
        elif f.unit == "ms" and store_v[-5:-1] != "000":
            assert api_v == store_v[:-5] + ".000Z"  # truncated to whole seconds
        else:
            assert api_v[11:13] != store_v[11:13] or api_v[:10] != store_v[:10]  # an hour later
        seen.add(f.kind)
    assert seen == {"decimal", "timestamp"}


def test_wrong_type_sends_numbers_as_strings_and_ids_as_numbers(store):
    with serve(store, faults=("wrong-type:rate=0.3,fields=price,contract_id,cross_px",), fault_seed=8) as api:
        got = h.fetch(api.base_url, "trades", AUTUMN, page_size=2000)
        injected = api.manifest_data()["injected"]
    by_key = {(r["tradeId"], r["revisionNo"]): r for r in got.records}
    kinds = {}
    for i in injected:
        rec = by_key[(i["key"]["trade_id"], i["key"]["revision_no"])]
        kinds.setdefault(i["field"], set()).add(type(rec[TRADES.by_name[i["field"]].json]).__name__)
    assert kinds == {"price": {"str"}, "contract_id": {"int"}, "cross_px": {"str"}}


# ---------------------------------------------------------------- transport faults


def _page(api, params, key=h.KEY, dataset="trades"):
    return requests.get(f"{api.base_url}/v1/{dataset}", params=params, headers={"X-API-Key": key})


DAY = {"deliveryDay": "2026-10-25", "pageSize": 300}


def test_503_then_429_bursts_then_the_page(store):
    with serve(store, faults=("503-burst:count=2", "429-burst:retry_after=2,count=3")) as api:
        answers = [_page(api, DAY) for _ in range(6)]
        assert [r.status_code for r in answers] == [503, 503, 429, 429, 429, 200]
        for r in answers[:5]:
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["cache-control"] == "no-store"
        assert "retry-after" not in answers[0].headers
        assert {r.headers["retry-after"] for r in answers[2:5]} == {"2"}
        # pages=first: the next page of the window is not hit; another window's first page is.
        cursor = answers[5].json()["pagination"]["nextCursor"]
        assert _page(api, {**DAY, "cursor": cursor}).status_code == 200
        assert _page(api, {"deliveryDay": "2026-03-29"}).status_code == 503
        transport = {t["fault"]: t for t in api.manifest_data()["transport"]}
    assert transport["503-burst"]["served"] == 3 and transport["429-burst"]["served"] == 3
    assert transport["429-burst"]["retry_after"] == 2 and transport["429-burst"]["count"] == 3


def test_bursts_on_all_pages_still_deliver_everything(store):
    with serve(store, faults=("503-burst:count=1,pages=all", "slow-pages:delay=0.01")) as api:
        got = h.fetch(api.base_url, "trades", AUTUMN, page_size=300)
        transport = {t["fault"]: t["served"] for t in api.manifest_data()["transport"]}
        assert api.manifest_data()["injected"] == []  # transport faults change no data
    assert len(got.records) == store_table(store, TRADES, AUTUMN).num_rows
    assert transport["503-burst"] == got.pages  # one 503 before every page
    assert transport["slow-pages"] == 2 * got.pages


def test_truncate_body_cuts_a_200_mid_json(store):
    with serve(store, faults=("truncate-body",)) as api:
        cut, full = _page(api, DAY), _page(api, DAY)
    assert cut.status_code == 200 and cut.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(cut.content)
    assert 0 < len(cut.content) < len(full.content) and full.content.startswith(cut.content)
    assert len(full.json()["data"]) == 300


def test_stuck_cursor_never_advances(store):
    with serve(store, faults=("stuck-cursor",)) as api:
        first = _page(api, DAY).json()
        cursor = first["pagination"]["nextCursor"]
        second = _page(api, {**DAY, "cursor": cursor}).json()
        third = _page(api, {**DAY, "cursor": second["pagination"]["nextCursor"]}).json()
    assert cursor and second["pagination"]["nextCursor"] == cursor
    assert second["data"] == third["data"]


def test_repeat_last_page_serves_the_last_page_again_with_a_cursor(store):
    with serve(store, faults=("repeat-last-page:times=1",)) as api:
        pages, cursor = [], None
        for _ in range(20):
            body = _page(api, {**DAY, **({"cursor": cursor} if cursor else {})}).json()
            pages.append(body)
            cursor = body["pagination"]["nextCursor"]
            if cursor is None:
                break
    rows = store_table(store, TRADES, AUTUMN).num_rows
    real = -(-rows // 300)
    assert len(pages) == real + 1
    assert pages[real - 1]["pagination"]["nextCursor"] is not None  # the true last page has a cursor
    assert pages[real]["data"] == pages[real - 1]["data"]


# ---------------------------------------------------------------- profile parsing


def test_profiles_parse_with_list_and_scalar_parameters():
    spec = parse_fault("drop-nulls:fields=traderId,text,rate=0.5")
    assert spec.params["fields"] == ("trader_id", "text") and spec.params["rate"] == 0.5
    assert parse_fault("429-burst:retry_after=2,count=3").params == {"count": 3, "pages": "first", "retry_after": 2}
    assert parse_fault("omitempty").text() == "omitempty"
    assert [s.name for s in parse_faults(["drop-records", "503-burst"])] == ["drop-records", "503-burst"]


@pytest.mark.parametrize("text,needle", [
    ("drop-nullz", "unknown fault profile"),
    ("drop-records:rate=2", "between 0 and 1"),
    ("429-burst:wait=2", "unknown parameter 'wait'"),
    ("drop-nulls:fields=trade_id", "key field"),
    ("drop-nulls:fields=no_such", "no dataset has a field"),
    ("slow-pages:delay=fast", "delay"),
    ("drop-records:datasets=fills", "unknown dataset"),
])
def test_bad_profiles_are_named(text, needle):
    with pytest.raises(FaultError, match=needle):
        parse_fault(text)
    with pytest.raises(FaultError, match="given twice"):
        parse_faults(["drop-records", "drop-records:rate=0.1"])
