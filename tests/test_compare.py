"""The comparison engine on tiny DataFrames built with the real schemas.

Each Spark run costs seconds, so the per-field rules share one comparison: every scenario is a
trade of its own (its own key), and the test checks per key which findings came out.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pyspark.sql import types as T

from reconcilers.compare import Comparison, compare
from reconcilers.contract import TRADES, Dataset, day_bounds_utc
from reconcilers.result import ABSENT
from reconcilers.schemas import BAD_TYPE, PRESENT, RAW, WINDOW, api_schema, store_schema

DAY = date(2026, 12, 2)
START, _ = day_bounds_utc(DAY)  # 2026-12-01T23:00Z


def tid(n: int, day: date = DAY) -> str:
    """A 34-digit trade id, as wide as real exchange ids."""
    return f"{day:%Y%m%d}4815162342" + f"{n:016d}"


def trade(n: int, day: date = DAY, **values) -> dict:
    start, _ = day_bounds_utc(day)
    ds = start + timedelta(hours=1)
    rec = {
        "trade_id": tid(n, day),
        "revision_no": 1,
        "exchange": "EPEX",
        "market_segment": "CONTINUOUS",
        "contract_id": "20261202004",
        "contract_name": "QH-20261202-005",
        "product_type": "QH",
        "delivery_start": ds,
        "delivery_end": ds + timedelta(minutes=15),
        "delivery_day": day,
        "execution_time": ds - timedelta(hours=2, microseconds=-123_000),
        "updated_at": ds - timedelta(hours=2, microseconds=-123_000),
        "price": Decimal("87.45"),
        "quantity": Decimal("12.5"),
        "buy_delivery_area": "10YNL----------L",
        "sell_delivery_area": "10YNL----------L",
        "buy_order_id": "1001",
        "sell_order_id": "1002",
        "cross_px": False,
        "aggressor_side": "BUY",
        "remote_trade_id": None,
        "member_id": "NLBRK01",
        "trader_id": "TRD001",
        "client_order_id": None,
        "self_trade": False,
        "state": "COMPLETED",
        "cancellation_deadline": None,
        "cancelled_at": None,
    }
    rec.update(values)
    return rec


def store_frame(spark, records: list[dict], ds: Dataset = TRADES, *, nullable_keys: bool = False):
    schema = store_schema(ds)
    if nullable_keys:
        schema = T.StructType([T.StructField(f.name, f.dataType, True) for f in schema.fields])
    return spark.createDataFrame([tuple(r[n] for n in ds.names) for r in records], schema)


def api_record(rec: dict, *, absent: tuple[str, ...] = (), bad: dict[str, str] | None = None, ds: Dataset = TRADES,
               **values) -> tuple:
    """One API row: `absent` keys were not in the JSON, `bad` maps field -> raw JSON text of a
    value whose JSON type did not fit (its column is null then)."""
    bad = bad or {}
    rec = {**rec, **values}
    present = bad_mask = 0
    cols = []
    for i, f in enumerate(ds.fields):
        if f.name not in absent:
            present |= 1 << i
        if f.name in bad:
            bad_mask |= 1 << i
        cols.append(None if f.name in absent or f.name in bad else rec[f.name])
    return (*cols, present, bad_mask, dict(bad) or None, 0)


def api_frame(spark, rows: list[tuple], ds: Dataset = TRADES):
    return spark.createDataFrame(rows, api_schema(ds))


def by_key(c: Comparison) -> dict[str, list[tuple[str, str | None]]]:
    found = defaultdict(list)
    for s in c.samples:
        found[s.key["trade_id"]].append((s.kind, s.field))
    return {k: sorted(v, key=str) for k, v in found.items()}


@dataclass
class Case:
    name: str
    store: dict = field(default_factory=dict)  # store values over the base trade
    api: dict = field(default_factory=dict)  # API values over the store record
    absent: tuple[str, ...] = ()
    bad: dict[str, str] = field(default_factory=dict)
    expect: list[tuple[str, str]] = field(default_factory=list)  # (kind, field)
    sample: tuple | None = None  # (field, store rendering, api rendering)


CASES = [
    Case("identical"),
    Case("null vs explicit null", store={"trader_id": None}, api={"trader_id": None}),
    Case("zero price omitted", store={"price": Decimal("0.00")}, absent=("price",),
         expect=[("value_dropped", "price")], sample=("price", "0.00", ABSENT)),
    Case("false omitted", store={"self_trade": False}, absent=("self_trade",), expect=[("value_dropped", "self_trade")]),
    Case("null omitted", store={"trader_id": None}, absent=("trader_id",), expect=[("null_dropped", "trader_id")],
         sample=("trader_id", None, ABSENT)),
    Case("empty string omitted", store={"client_order_id": ""}, absent=("client_order_id",),
         expect=[("value_dropped", "client_order_id")]),
    Case("empty string vs null", store={"client_order_id": ""}, api={"client_order_id": None},
         expect=[("value_nulled", "client_order_id")], sample=("client_order_id", "", None)),
    Case("null vs empty string", store={"client_order_id": None}, api={"client_order_id": ""},
         expect=[("value_mismatch", "client_order_id")], sample=("client_order_id", None, "")),
    Case("empty string both", store={"client_order_id": ""}, api={"client_order_id": ""}),
    Case("value nulled", api={"price": None}, expect=[("value_nulled", "price")], sample=("price", "87.45", None)),
    Case("negative price equal", store={"price": Decimal("-12.34")}, api={"price": Decimal("-12.3400000000")}),
    Case("negative price sign lost", store={"price": Decimal("-12.34")}, api={"price": Decimal("12.34")},
         expect=[("value_mismatch", "price")], sample=("price", "-12.34", "12.34")),
    Case("negative price off by a tick", store={"price": Decimal("-0.01")}, api={"price": Decimal("-0.02")},
         expect=[("value_mismatch", "price")]),
    Case("decimal widened equal", api={"price": Decimal("87.4500000000")}),
    Case("decimal off the tick", api={"price": Decimal("87.455")}, expect=[("value_mismatch", "price")],
         sample=("price", "87.45", "87.455")),
    Case("price sent as a string", bad={"price": '"87.45"'}, expect=[("type_mismatch", "price")],
         sample=("price", "87.45", '"87.45"')),
    Case("id sent as a number", bad={"buy_order_id": "1001"}, expect=[("type_mismatch", "buy_order_id")]),
    Case("ms timestamp truncated to seconds",
         store={"execution_time": datetime(2026, 12, 1, 22, 0, 0, 123_000, tzinfo=timezone.utc)},
         api={"execution_time": datetime(2026, 12, 1, 22, 0, 0, tzinfo=timezone.utc)},
         expect=[("value_mismatch", "execution_time")],
         sample=("execution_time", "2026-12-01T22:00:00.123Z", "2026-12-01T22:00:00.000Z")),
    Case("store sub-unit digits are not the API's to serve",
         store={"execution_time": datetime(2026, 12, 1, 22, 0, 0, 123_456, tzinfo=timezone.utc)},
         api={"execution_time": datetime(2026, 12, 1, 22, 0, 0, 123_000, tzinfo=timezone.utc)}),
    Case("API beyond the contract unit",
         store={"execution_time": datetime(2026, 12, 1, 22, 0, 0, 123_000, tzinfo=timezone.utc)},
         api={"execution_time": datetime(2026, 12, 1, 22, 0, 0, 123_456, tzinfo=timezone.utc)},
         expect=[("value_mismatch", "execution_time")],
         sample=("execution_time", "2026-12-01T22:00:00.123Z", "2026-12-01T22:00:00.123456Z")),
    Case("same instant, second-unit field", api={"delivery_start": START + timedelta(hours=1)}),
    Case("delivery start shifted an hour", api={"delivery_start": START + timedelta(hours=2)},
         expect=[("value_mismatch", "delivery_start")]),
    Case("several findings on one record", store={"trader_id": None}, absent=("trader_id", "state"),
         api={"quantity": Decimal("12.4")},
         expect=[("null_dropped", "trader_id"), ("value_dropped", "state"), ("value_mismatch", "quantity")]),
]


@pytest.fixture(scope="module")
def rules_result(spark):
    store, api = [], []
    for n, case in enumerate(CASES):
        rec = trade(n, **case.store)
        store.append(rec)
        api.append(api_record(rec, absent=case.absent, bad=case.bad, **case.api))
    return compare(store_frame(spark, store), api_frame(spark, api), TRADES, day=DAY)


@pytest.mark.parametrize("n,case", list(enumerate(CASES)), ids=[c.name for c in CASES])
def test_field_rules(rules_result, n, case):
    found = by_key(rules_result).get(tid(n), [])
    assert found == sorted(case.expect, key=str)
    if case.sample:
        fld, store_text, api_text = case.sample
        (s,) = [s for s in rules_result.samples if s.key["trade_id"] == tid(n) and s.field == fld]
        assert (s.store, s.api) == (store_text, api_text)
        assert s.key == {"trade_id": tid(n), "revision_no": 1}


def test_field_rules_totals(rules_result):
    expected = Counter(kf for case in CASES for kf in case.expect)
    got = Counter({(kind, fld): n for kind, by_field in rules_result.counts.items() for fld, n in by_field.items()})
    assert got == expected
    assert rules_result.store_rows == rules_result.api_rows == len(CASES)
    assert rules_result.findings == sum(expected.values())


def test_ids_differing_in_the_last_digit_never_match(spark):
    a, b = tid(10), tid(11)
    assert len(a) == 34 and a[:-1] == b[:-1]
    c = compare(store_frame(spark, [trade(10)]), api_frame(spark, [api_record(trade(11))]), TRADES, day=DAY)
    assert c.counts == {"missing_in_api": {"*": 1}, "unexpected_in_api": {"*": 1}}
    assert {(s.kind, s.key["trade_id"]) for s in c.samples} == {("missing_in_api", a), ("unexpected_in_api", b)}
    missing = next(s for s in c.samples if s.kind == "missing_in_api")
    assert missing.store["trade_id"] == a and missing.store["price"] == "87.45" and missing.api is None
    unexpected = next(s for s in c.samples if s.kind == "unexpected_in_api")
    assert unexpected.api["trade_id"] == b and unexpected.store is None


def _duplicates(spark, order_seed: int, screen_min_rows: int = 0) -> Comparison:
    one, two, three, four = (trade(n) for n in (20, 21, 22, 23))
    store = [one, one, two, three, four]
    api = [
        api_record(one),
        api_record(two), api_record(two),  # a repeated page: identical copies
        api_record(three), api_record(three, price=Decimal("99.99")), api_record(three),  # a stale copy
        api_record(four, price=Decimal("1.00")), api_record(four, price=Decimal("1.00")),  # twice, both wrong
        api_record(trade(24)), api_record(trade(24)),  # a phantom served twice
    ]
    rng = random.Random(order_seed)
    rng.shuffle(store)
    rng.shuffle(api)
    return compare(store_frame(spark, store), api_frame(spark, api), TRADES, day=DAY, screen_min_rows=screen_min_rows)


@pytest.mark.parametrize("screen_min_rows", [0, 1_000], ids=["screened", "exact-only"])
def test_duplicate_keys_on_either_side(spark, screen_min_rows):
    c = _duplicates(spark, 1, screen_min_rows)
    # one extra store copy; API extras: 1 (two) + 2 (three) + 1 (four) + 1 (phantom)
    assert c.by_side["duplicate_key"] == {"store": 1, "api": 5}
    assert c.counts["duplicate_key"] == {"*": 6}
    # each distinct API copy is compared once: the stale copy of `three`, and `four` once although served twice
    assert c.counts["value_mismatch"] == {"price": 2}
    assert c.counts["unexpected_in_api"] == {"*": 1}
    assert "missing_in_api" not in c.counts
    assert c.store_rows == 5 and c.api_rows == 10
    dups = [(s.side, s.key["trade_id"]) for s in c.samples if s.kind == "duplicate_key"]
    assert sorted(dups) == sorted([("store", tid(20)), ("api", tid(21)), ("api", tid(22)), ("api", tid(22)),
                                   ("api", tid(23)), ("api", tid(24))])
    mismatched = sorted((s.key["trade_id"], s.store, s.api) for s in c.samples if s.kind == "value_mismatch")
    assert mismatched == [(tid(22), "87.45", "99.99"), (tid(23), "87.45", "1.00")]


def test_duplicates_do_not_depend_on_input_order(spark):
    a, b = _duplicates(spark, 1), _duplicates(spark, 2)
    assert (a.counts, a.by_side) == (b.counts, b.by_side)
    assert a.samples == b.samples


@pytest.mark.parametrize("screen_min_rows", [0, 1_000], ids=["screened", "exact-only"])
def test_null_keys_are_reported_never_paired(spark, screen_min_rows):
    good = trade(30)
    store = [good, trade(31, trade_id=None)]
    api = [api_record(good), api_record(trade(32), absent=("trade_id",)), api_record(trade(33), bad={"revision_no": '"1"'})]
    c = compare(store_frame(spark, store, nullable_keys=True), api_frame(spark, api), TRADES, day=DAY,
                screen_min_rows=screen_min_rows)
    assert c.counts == {"null_key": {"*": 3}}
    assert c.by_side["null_key"] == {"store": 1, "api": 2}
    samples = {(s.side, s.key["trade_id"], s.key["revision_no"]) for s in c.samples}
    assert samples == {("api", None, 1), ("api", tid(33), None), ("store", None, 1)}
    absent_id = next(s for s in c.samples if s.side == "api" and s.key["trade_id"] is None)
    assert absent_id.api["trade_id"] == ABSENT
    bad_rev = next(s for s in c.samples if s.side == "api" and s.key["revision_no"] is None)
    assert bad_rev.api["revision_no"] == '"1"'


def test_repeated_local_hour_of_the_long_october_day(spark):
    day = date(2026, 10, 25)
    start, end = day_bounds_utc(day)
    assert start == datetime(2026, 10, 24, 22, tzinfo=timezone.utc)
    first = datetime(2026, 10, 25, 0, tzinfo=timezone.utc)  # 02:00 CEST
    second = datetime(2026, 10, 25, 1, tzinfo=timezone.utc)  # 02:00 CET, the same local label
    a = trade(40, day, delivery_start=first, delivery_end=first + timedelta(minutes=15), contract_name="QH-20261025-009")
    b = trade(41, day, delivery_start=second, delivery_end=second + timedelta(minutes=15), contract_name="QH-20261025-013")
    c = compare(store_frame(spark, [a, b]), api_frame(spark, [api_record(a), api_record(b)]), TRADES, day=day)
    assert c.counts == {}
    assert len(c.hourly) == 25
    assert [h.hour_utc for h in c.hourly[1:4]] == ["2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"]
    assert [(h.store, h.api) for h in c.hourly[2:4]] == [(1, 1), (1, 1)]
    # The API dropping the repeated hour shows in that hour only.
    c = compare(store_frame(spark, [a, b]), api_frame(spark, [api_record(a)]), TRADES, day=day)
    assert c.counts == {"missing_in_api": {"*": 1}}
    assert [(h.store, h.api) for h in c.hourly[2:4]] == [(1, 1), (1, 0)]
    assert c.samples[0].key["trade_id"] == tid(41, day)


@pytest.mark.parametrize("day,hours", [(date(2026, 3, 29), 23), (date(2026, 12, 2), 24), (date(2026, 10, 25), 25)])
def test_hourly_counts_cover_every_hour_of_the_day(spark, day, hours):
    start, end = day_bounds_utc(day)
    store, api = [], []
    for h in range(hours):
        t = start + timedelta(hours=h)
        for r in range(h % 3 + 1):  # 1, 2 or 3 trades an hour
            rec = trade(h * 10 + r, day, delivery_start=t, delivery_end=t + timedelta(minutes=15))
            store.append(rec)
            if h != 5:  # the API serves nothing for the sixth hour
                api.append(api_record(rec))
    outside = trade(999, day, delivery_start=end, delivery_end=end + timedelta(minutes=15))  # belongs to the next day
    store.append(outside)
    api.append(api_record(outside))
    c = compare(store_frame(spark, store), api_frame(spark, api), TRADES, day=day)
    assert len(c.hourly) == hours
    assert c.hourly[0].hour_utc == start.isoformat().replace("+00:00", "Z")
    assert c.hourly[-1].hour_utc == (end - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert [h.store for h in c.hourly] == [h % 3 + 1 for h in range(hours)]
    assert [h.api for h in c.hourly] == [0 if h == 5 else h % 3 + 1 for h in range(hours)]
    assert c.counts == {"missing_in_api": {"*": 3}}  # hour 5 holds 5 % 3 + 1 = 3 trades
    assert c.store_rows == len(store) and c.api_rows == len(api)


def test_samples_are_capped_per_kind_and_field_and_taken_in_key_order(spark):
    store = [trade(n) for n in range(100, 130)]
    api = [api_record(r, price=Decimal("1.23"), state="CANCELLED") for r in store[:25]] + [
        api_record(trade(n)) for n in range(200, 230)
    ]
    c = compare(store_frame(spark, store), api_frame(spark, api), TRADES, day=DAY, samples_per_kind_field=4)
    assert c.counts == {
        "missing_in_api": {"*": 5},
        "value_mismatch": {"price": 25, "state": 25},
        "unexpected_in_api": {"*": 30},
    }
    per = Counter((s.kind, s.field) for s in c.samples)
    assert per == {("missing_in_api", None): 4, ("value_mismatch", "price"): 4, ("value_mismatch", "state"): 4,
                   ("unexpected_in_api", None): 4}
    assert [s.key["trade_id"] for s in c.samples if s.field == "price"] == [tid(n) for n in range(100, 104)]
    assert [s.key["trade_id"] for s in c.samples if s.kind == "unexpected_in_api"] == [tid(n) for n in range(200, 204)]
    # report order: severity of the kind, then contract order of the field
    assert [s.kind for s in c.samples][:1] == ["missing_in_api"]
    none = compare(store_frame(spark, store), api_frame(spark, api), TRADES, day=DAY, samples_per_kind_field=0)
    assert none.samples == [] and none.counts == c.counts


def test_inputs_that_do_not_fit_the_contract_are_named(spark):
    store = store_frame(spark, [trade(1)])
    api = api_frame(spark, [api_record(trade(1))])
    with pytest.raises(ValueError, match=r"trades API DataFrame does not fit the contract: _present: missing"):
        compare(store, api.drop(PRESENT), TRADES, day=DAY)
    with pytest.raises(ValueError, match=r"store DataFrame .*revision_no: string, expected bigint"):
        compare(store.withColumn("revision_no", store.revision_no.cast("string")), api, TRADES, day=DAY)
    with pytest.raises(ValueError, match="samples_per_kind_field"):
        compare(store, api, TRADES, day=DAY, samples_per_kind_field=-1)
    assert {BAD_TYPE, RAW, WINDOW} <= set(api.columns)
