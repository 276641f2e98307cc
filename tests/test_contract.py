from datetime import date, datetime, timezone

import pytest
from pyspark.sql import types as T

from jobs.seed import seed_day
from reconcilers.contract import DATASETS, ORDERS, TRADES, day_bounds_utc, quarter_hours
from reconcilers.schemas import store_schema


def test_dst_days_have_92_and_100_quarter_hours():
    assert quarter_hours(date(2026, 3, 29)) == 92
    assert quarter_hours(date(2026, 10, 25)) == 100
    assert quarter_hours(date(2026, 12, 2)) == 96
    start, end = day_bounds_utc(date(2026, 10, 25))
    assert start == datetime(2026, 10, 24, 22, 0, tzinfo=timezone.utc)
    assert end == datetime(2026, 10, 25, 23, 0, tzinfo=timezone.utc)


def test_contract_names_are_unique_and_keys_exist():
    for ds in DATASETS.values():
        assert len(set(ds.names)) == len(ds.names)
        assert len({f.json for f in ds.fields}) == len(ds.fields)
        assert set(ds.key) <= set(ds.names)
        assert all(not ds.by_name[k].nullable for k in ds.key)


def test_genuinely_nullable_fields_from_domain_are_nullable():
    for name in ("buy_order_id", "sell_order_id", "aggressor_side", "cancelled_at", "cancellation_deadline",
                 "trader_id", "client_order_id"):
        assert TRADES.by_name[name].nullable, name
    for name in ("remaining_quantity", "expire_time", "iceberg_clip_size", "iceberg_clip_price_change", "text"):
        assert ORDERS.by_name[name].nullable, name


@pytest.mark.parametrize("ds", [TRADES, ORDERS], ids=lambda d: d.name)
def test_contract_round_trips_through_parquet_into_spark(spark, tmp_path, ds):
    day = date(2026, 10, 25)
    seed_day(tmp_path, day, trades=300, orders=300, seed=3)
    df = spark.read.schema(store_schema(ds)).option("basePath", str(tmp_path / ds.name)).parquet(
        str(tmp_path / ds.name / f"delivery_day={day}")
    )
    inferred = spark.read.parquet(str(tmp_path / ds.name))
    # What Spark infers from the files equals what the contract says, field by field.
    for f in ds.fields:
        got = inferred.schema[f.name].dataType
        assert got == store_schema(ds)[f.name].dataType, (f.name, got)
    assert isinstance(df.schema["price"].dataType, T.DecimalType)
    assert (df.schema["price"].dataType.precision, df.schema["price"].dataType.scale) == (12, 2)
    assert isinstance(df.schema["delivery_start"].dataType, T.TimestampType)  # UTC instant, not NTZ
    row = df.orderBy(*ds.key).first()
    assert row["delivery_day"] == day
    assert df.count() == 300
