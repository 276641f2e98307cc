"""A seeded day through the Parquet store: a faithful API gives zero findings, and a handful of
known faults give exact counts."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pyarrow.compute as pc
import pytest
from pyspark.sql import functions as F

from jobs.seed import orders_table, trades_table, write_day
from reconcilers.compare import compare
from reconcilers.contract import ORDERS, TRADES, day_bounds_utc
from reconcilers.mirror import faithful_api
from reconcilers.result import ABSENT
from reconcilers.schemas import BAD_TYPE, PRESENT, RAW, api_schema

DAY = date(2026, 10, 25)  # the long day: 25 hours
N = 3_000


@pytest.fixture(scope="module")
def seeded(spark, tmp_path_factory):
    store_dir = tmp_path_factory.mktemp("store")
    table = trades_table(DAY, N, seed=3)
    write_day(store_dir, TRADES, DAY, table)
    store = (
        spark.read.parquet(str(store_dir / TRADES.name))
        .where(F.col(TRADES.day_field) == F.lit(DAY))
        .select(*TRADES.names)
    )
    return table, store


# screen_min_rows=0 forces the screening stage on these small days; the default skips it.
SCREEN = pytest.mark.parametrize("screen", [0, None], ids=["screened", "exact-only"])


def _screen(screen):
    return {} if screen is None else {"screen_min_rows": screen}


@SCREEN
def test_faithful_api_gives_zero_findings(seeded, screen):
    _, store = seeded
    c = compare(store, faithful_api(store, TRADES), TRADES, day=DAY, **_screen(screen))
    assert c.counts == {} and c.samples == []
    assert c.store_rows == c.api_rows == N
    assert len(c.hourly) == 25
    assert sum(h.store for h in c.hourly) == sum(h.api for h in c.hourly) == N
    assert all(h.store == h.api for h in c.hourly)


@SCREEN
def test_known_faults_give_exact_counts(seeded, screen):
    table, store = seeded

    def keys(a, b, mask=None, n=None):
        """Keys of rows a..b of the seeded table (rows are unique by key, so ranges are disjoint)."""
        t = table.slice(a, b - a)
        t = t if mask is None else t.filter(mask(t))
        t = t if n is None else t.slice(0, n)
        return [f"{i}/{r}" for i, r in zip(t["trade_id"].to_pylist(), t["revision_no"].to_pylist())]

    dropped = keys(0, 2)
    repriced = keys(10, 13)
    no_trader = keys(20, 200, lambda t: pc.is_null(t["trader_id"]), 4)  # omitted where null -> null_dropped
    omitted_false = keys(200, 400, lambda t: pc.invert(t["self_trade"]), 2)  # omitempty drops false -> value_dropped
    cancelled = keys(400, 1400, lambda t: pc.is_valid(t["cancelled_at"]), 2)  # explicit null -> value_nulled
    truncated = keys(1600, 1603)  # execution time cut to whole seconds
    bad_qty = keys(1700, 1701)
    doubled = keys(1800, 1801)
    assert (len(no_trader), len(omitted_false), len(cancelled)) == (4, 2, 2)
    sub_second = sum(1 for t in table.slice(1600, 3)["execution_time"].cast("int64").to_pylist() if t % 1_000_000)
    assert sub_second >= 2  # seeded execution times carry milliseconds

    api = faithful_api(store, TRADES)
    key = F.concat_ws("/", "trade_id", F.col("revision_no").cast("string"))
    bit = {f.name: 1 << TRADES.field_index(f.name) for f in TRADES.fields}
    schema = api_schema(TRADES)
    tick_up = (F.col("price") + F.lit(Decimal("0.01"))).cast(schema["price"].dataType)
    api = (
        api.where(~key.isin(dropped))
        .withColumn("price", F.when(key.isin(repriced), tick_up).otherwise(F.col("price")))
        .withColumn(PRESENT, F.when(key.isin(no_trader), F.col(PRESENT) - bit["trader_id"]).otherwise(F.col(PRESENT)))
        .withColumn(PRESENT, F.when(key.isin(omitted_false), F.col(PRESENT) - bit["self_trade"]).otherwise(F.col(PRESENT)))
        .withColumn("self_trade", F.when(key.isin(omitted_false), F.lit(None)).otherwise(F.col("self_trade")))
        .withColumn("cancelled_at", F.when(key.isin(cancelled), F.lit(None)).otherwise(F.col("cancelled_at")))
        .withColumn("execution_time", F.when(key.isin(truncated), F.date_trunc("second", "execution_time"))
                    .otherwise(F.col("execution_time")))
        .withColumn("quantity", F.when(key.isin(bad_qty), F.lit(None).cast(schema["quantity"].dataType))
                    .otherwise(F.col("quantity")))
        .withColumn(BAD_TYPE, F.when(key.isin(bad_qty), F.lit(bit["quantity"])).otherwise(F.col(BAD_TYPE)).cast("long"))
        .withColumn(RAW, F.when(key.isin(bad_qty), F.create_map(F.lit("quantity"), F.lit('"12.5"'))).otherwise(F.col(RAW)))
    )
    phantom = api.where(key.isin(repriced[:1])).withColumn("trade_id", F.concat(F.lit("9"), F.substring("trade_id", 2, 33)))
    api = api.unionByName(api.where(key.isin(doubled))).unionByName(phantom)

    c = compare(store, api, TRADES, day=DAY, samples_per_kind_field=3, **_screen(screen))
    assert c.counts == {
        "missing_in_api": {"*": 2},
        "unexpected_in_api": {"*": 1},
        "duplicate_key": {"*": 1},
        "value_mismatch": {"price": 3, "execution_time": sub_second},
        "type_mismatch": {"quantity": 1},
        "null_dropped": {"trader_id": 4},
        "value_dropped": {"self_trade": 2},
        "value_nulled": {"cancelled_at": 2},
    }
    assert c.store_rows == N and c.api_rows == N - 2 + 1 + 1
    assert sum(h.api for h in c.hourly) == N - 2 + 1 + 1
    dropped_self = [s for s in c.samples if s.kind == "value_dropped"]
    assert {(s.store, s.api) for s in dropped_self} == {(False, ABSENT)}
    (bad,) = [s for s in c.samples if s.kind == "type_mismatch"]
    assert bad.api == '"12.5"' and f"{bad.key['trade_id']}/{bad.key['revision_no']}" == bad_qty[0]


def test_orders_faithful_api_gives_zero_findings(spark):
    day = date(2026, 3, 29)  # the short day: 23 hours
    store = spark.createDataFrame(orders_table(day, 2_000, seed=4)).withColumn(ORDERS.day_field, F.lit(day))
    store = store.select(*ORDERS.names)
    c = compare(store, faithful_api(store, ORDERS), ORDERS, day=day)
    assert c.counts == {} and c.store_rows == c.api_rows == 2_000
    start, end = day_bounds_utc(day)
    assert len(c.hourly) == 23 == (end - start) // timedelta(hours=1)
