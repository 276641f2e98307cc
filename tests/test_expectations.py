"""GX suites on both sides, end to end on real Spark: seeded days pass, and each broken rule
fails alone, on the side where it was broken."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from expectations import build_suite, run_suites
from jobs.config import ConfigError, ExpectationOverride, Expectations
from jobs.seed import orders_table, trades_table
from reconcilers.contract import ORDERS, TRADES, Dataset
from reconcilers.mirror import faithful_api

DAY = date(2026, 12, 2)
SHORT_DAY, LONG_DAY = date(2026, 3, 29), date(2026, 10, 25)
ROWS = 2_000
CFG = Expectations()
TABLES = {"trades": trades_table, "orders": orders_table}


def seeded(spark, ds: Dataset, day: date, n: int = ROWS) -> DataFrame:
    df = spark.createDataFrame(TABLES[ds.name](day, n, seed=3))
    return df.withColumn(ds.day_field, F.lit(day)).select(*ds.names)


def failures(results) -> set[tuple[str, str]]:
    return {(r.side, r.expectation) for r in results if not r.success}


def only(results, side: str, name: str):
    (r,) = [r for r in results if r.side == side and r.expectation == name]
    return r


def set_where(df: DataFrame, cond, column: str, value) -> DataFrame:
    return df.withColumn(column, F.when(cond, F.lit(value).cast(df.schema[column].dataType)).otherwise(F.col(column)))


def first_key(df: DataFrame, ds: Dataset, cond=None) -> dict:
    rows = (df.filter(cond) if cond is not None else df).orderBy(*ds.key).select(*ds.key).limit(1).collect()
    return rows[0].asDict()


def is_key(ds: Dataset, key: dict):
    cond = F.lit(True)
    for k in ds.key:
        cond = cond & (F.col(k) == F.lit(key[k]))
    return cond


@pytest.mark.parametrize("day", [DAY, SHORT_DAY, LONG_DAY], ids=str)
@pytest.mark.parametrize("ds", [TRADES, ORDERS], ids=lambda d: d.name)
def test_seeded_day_passes_every_expectation_on_both_sides(spark, ds, day, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an ephemeral GX context must not write gx/ or uncommitted/
    store = seeded(spark, ds, day)
    results = run_suites(store, faithful_api(store, ds), ds, day, CFG)

    assert failures(results) == set()
    names = [e.meta["name"] for e in build_suite(ds, day, CFG).expectations]
    assert [r.expectation for r in results] == names + names
    assert [r.side for r in results] == ["store"] * len(names) + ["api"] * len(names)
    assert all(r.unexpected_count == 0 and r.examples == [] for r in results)
    json.dumps([asdict(r) for r in results])  # the report stores them as they are
    assert list(tmp_path.iterdir()) == []


def test_an_empty_day_passes(spark):
    store = seeded(spark, ORDERS, DAY, 0)
    results = run_suites(store, faithful_api(store, ORDERS), ORDERS, DAY, CFG)
    assert results and failures(results) == set()


def test_price_above_the_limit_fails_on_the_store_side_only(spark):
    store = seeded(spark, TRADES, DAY)
    key = first_key(store, TRADES, F.col("market_segment") == "CONTINUOUS")
    store = set_where(store, is_key(TRADES, key), "price", Decimal("10000.00"))
    results = run_suites(store, faithful_api(seeded(spark, TRADES, DAY), TRADES), TRADES, DAY, CFG)

    assert failures(results) == {("store", "price_within_limits.CONTINUOUS")}
    r = only(results, "store", "price_within_limits.CONTINUOUS")
    assert r.unexpected_count == 1 and r.column == "price"
    assert r.examples == [{**key, "price": "10000.00"}]
    assert r.kwargs["max_value"] == 9999 and r.kwargs["type"] == "expect_column_values_to_be_between"


def test_off_tick_price_fails_on_the_api_side_only(spark):
    store = seeded(spark, TRADES, DAY)
    key = first_key(store, TRADES)
    api = set_where(faithful_api(store, TRADES), is_key(TRADES, key), "price", Decimal("87.455"))
    results = run_suites(store, api, TRADES, DAY, CFG)

    assert failures(results) == {("api", "on_tick.price")}
    r = only(results, "api", "on_tick.price")
    assert r.unexpected_count == 1
    assert r.examples == [{**key, "price": "87.4550000000"}]
    assert r.kwargs["check"] == "round(price, 2) <> price"


def test_delivery_day_labelled_with_the_winter_offset_on_the_long_day_fails(spark):
    # 2026-10-25 starts at 22:00Z (00:00 CEST). A fixed +01:00 labels its first hour as the 24th.
    store = seeded(spark, TRADES, LONG_DAY)
    first_hour = F.col("delivery_start") < F.lit(datetime(2026, 10, 24, 23, tzinfo=timezone.utc))
    wrong = store.filter(first_hour).count()
    store = set_where(store, first_hour, "delivery_day", date(2026, 10, 24))
    api = faithful_api(seeded(spark, TRADES, LONG_DAY), TRADES)
    results = run_suites(store, api, TRADES, LONG_DAY, CFG)

    assert wrong > 0
    assert failures(results) == {("store", "delivery_day_local")}
    r = only(results, "store", "delivery_day_local")
    assert r.unexpected_count == wrong
    assert r.examples[0]["delivery_day"] == "2026-10-24"
    assert r.examples[0]["delivery_start"].startswith("2026-10-24T22:")


def test_duplicate_key_fails_on_the_api_side_only(spark):
    store = seeded(spark, ORDERS, DAY)
    api = faithful_api(store, ORDERS)
    key = first_key(store, ORDERS)
    api = api.unionByName(api.filter(is_key(ORDERS, key)))  # a page served twice
    results = run_suites(store, api, ORDERS, DAY, CFG)

    assert failures(results) == {("api", "key_unique")}
    r = only(results, "api", "key_unique")
    assert r.unexpected_count == 2 and r.column is None
    assert r.examples == [key, key]


def test_a_key_with_a_null_part_is_not_nulls_finding_not_a_duplicate(spark):
    store = seeded(spark, ORDERS, DAY)
    # Two orders of one revision each (no gap left behind) lose their id: (null, 1) twice.
    single = store.groupBy("order_id").count().where("count = 1").orderBy("order_id").limit(2)
    ids = [r.order_id for r in single.collect()]
    broken = set_where(store, F.col("order_id").isin(ids), "order_id", None)
    results = run_suites(broken, faithful_api(store, ORDERS), ORDERS, DAY, CFG)

    assert len(ids) == 2
    assert failures(results) == {("store", "not_null.order_id")}
    assert only(results, "store", "not_null.order_id").unexpected_count == 2


def test_enum_value_out_of_set_fails_on_the_store_side_only(spark):
    store = seeded(spark, ORDERS, DAY)
    key = first_key(store, ORDERS)
    bad = set_where(store, is_key(ORDERS, key), "time_in_force", "GTC")
    results = run_suites(bad, faithful_api(store, ORDERS), ORDERS, DAY, CFG)

    assert failures(results) == {("store", "in_set.time_in_force")}
    r = only(results, "store", "in_set.time_in_force")
    assert r.unexpected_count == 1 and r.examples == [{**key, "time_in_force": "GTC"}]


def test_null_required_field_fails_on_the_api_side_only(spark):
    store = seeded(spark, TRADES, DAY)
    key = first_key(store, TRADES)
    api = set_where(faithful_api(store, TRADES), is_key(TRADES, key), "member_id", None)
    results = run_suites(store, api, TRADES, DAY, CFG)

    assert failures(results) == {("api", "not_null.member_id")}
    r = only(results, "api", "not_null.member_id")
    assert r.unexpected_count == 1 and r.examples == [{**key, "member_id": None}]


def test_revision_gap_fails_on_the_store_side_only(spark):
    store = seeded(spark, ORDERS, DAY)
    key = first_key(store, ORDERS, F.col("revision_no") == 3)  # an order with revisions 1, 2, 3
    gap = store.filter(~((F.col("order_id") == key["order_id"]) & (F.col("revision_no") == 2)))
    results = run_suites(gap, faithful_api(store, ORDERS), ORDERS, DAY, CFG)

    assert failures(results) == {("store", "revisions_contiguous")}
    r = only(results, "store", "revisions_contiguous")
    assert r.unexpected_count == 1 and len(r.examples) == 1
    assert r.examples[0]["order_id"] == key["order_id"] and r.examples[0]["revision_no"] == 3


def test_revision_updated_earlier_than_the_one_before_fails(spark):
    store = seeded(spark, ORDERS, DAY)
    key = first_key(store, ORDERS, F.col("revision_no") == 2)
    api = faithful_api(store, ORDERS)
    api = api.withColumn(
        "updated_at",
        F.when(is_key(ORDERS, key), F.col("updated_at") - F.expr("INTERVAL 1 DAY")).otherwise(F.col("updated_at")),
    )
    results = run_suites(store, api, ORDERS, DAY, CFG)

    assert failures(results) == {("api", "revisions_ordered")}
    assert only(results, "api", "revisions_ordered").examples[0]["revision_no"] == 2


def test_product_period_and_gate_closure_fail_separately(spark):
    store = seeded(spark, TRADES, DAY)
    k1 = first_key(store, TRADES, F.col("market_segment") == "CONTINUOUS")
    k2 = first_key(store, TRADES, (F.col("market_segment") == "CONTINUOUS") & (F.col("trade_id") > k1["trade_id"]))
    bad = store.withColumn(
        "delivery_end",
        F.when(is_key(TRADES, k1), F.col("delivery_start") + F.expr("INTERVAL 45 MINUTES")).otherwise(F.col("delivery_end")),
    ).withColumn(
        "execution_time",
        F.when(is_key(TRADES, k2), F.col("delivery_start") + F.expr("INTERVAL 1 SECOND")).otherwise(F.col("execution_time")),
    )
    results = run_suites(store, faithful_api(bad, TRADES), TRADES, DAY, CFG)

    assert failures(results) == {("api", "delivery_period"), ("api", "executed_before_delivery")}
    assert only(results, "api", "delivery_period").examples[0]["trade_id"] == k1["trade_id"]
    assert only(results, "api", "executed_before_delivery").examples[0]["trade_id"] == k2["trade_id"]


def test_config_override_relaxes_the_price_limit(spark):
    store = seeded(spark, TRADES, DAY)
    key = first_key(store, TRADES, F.col("market_segment") == "CONTINUOUS")
    store = set_where(store, is_key(TRADES, key), "price", Decimal("10000.00"))
    cfg = Expectations(
        overrides=[ExpectationOverride(dataset="trades", expectation="price_within_limits", kwargs={"max_value": 20000})]
    )
    results = run_suites(store, faithful_api(store, TRADES), TRADES, DAY, cfg)

    assert failures(results) == set()
    assert only(results, "store", "price_within_limits.CONTINUOUS").kwargs["max_value"] == 20000


def test_expectations_added_in_config_run_with_examples(spark):
    store = seeded(spark, ORDERS, DAY)
    cfg = Expectations(
        overrides=[
            ExpectationOverride(
                dataset="orders",
                expectation="small_orders",
                kwargs={"type": "expect_column_values_to_be_between", "column": "quantity", "max_value": 40},
            ),
            ExpectationOverride(
                dataset="orders",
                expectation="broken_query",
                kwargs={"type": "unexpected_rows_expectation", "unexpected_rows_query": "SELECT nope FROM {batch}"},
            ),
            ExpectationOverride(
                dataset="orders",
                expectation="iceberg_has_parent",
                kwargs={
                    "type": "unexpected_rows_expectation",
                    "unexpected_rows_query": "SELECT order_id, revision_no FROM {batch} "
                    "WHERE order_type = 'ICEBERG' AND parent_order_id IS NULL",
                },
            ),
        ]
    )
    bad = set_where(store, F.col("order_type") == "ICEBERG", "parent_order_id", None)
    icebergs = bad.filter(F.col("order_type") == "ICEBERG").count()
    big = store.filter(F.col("quantity") > 40).count()
    results = run_suites(store, faithful_api(bad, ORDERS), ORDERS, DAY, cfg)

    assert icebergs > 0 and big > 0
    assert failures(results) == {
        ("store", "small_orders"), ("api", "small_orders"), ("api", "iceberg_has_parent"),
        ("store", "broken_query"), ("api", "broken_query"),
    }
    broken = only(results, "api", "broken_query")
    assert broken.observed.startswith("error: [UNRESOLVED_COLUMN") and broken.unexpected_count is None
    r = only(results, "api", "iceberg_has_parent")
    assert r.unexpected_count == icebergs
    assert len(r.examples) == min(5, icebergs) and set(r.examples[0]) == {"order_id", "revision_no"}
    r = only(results, "store", "small_orders")
    assert r.unexpected_count == big and all(Decimal(e["quantity"]) > 40 for e in r.examples)


def test_a_non_utc_session_is_refused(spark):
    store = seeded(spark, TRADES, DAY, 10)
    spark.conf.set("spark.sql.session.timeZone", "Europe/Amsterdam")
    try:
        with pytest.raises(ConfigError, match="timeZone=UTC"):
            run_suites(store, faithful_api(store, TRADES), TRADES, DAY, CFG)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_disabled_expectations_run_nothing():
    assert run_suites(None, None, TRADES, DAY, Expectations(enabled=False)) == []
