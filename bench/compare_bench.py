"""Comparison speed: `compare()` on 1,000,000 trades against datacompy's SparkSQLCompare on the
same two DataFrames (target: ours >= 10x faster).

The store side is a seeded Parquet partition; the API side is its faithful mirror with a few
hundred faults injected by key hash (no rows on the driver). Both tools read the same lazy
DataFrames, run interleaved, after one untimed warm-up each on a small day. Each timed run
includes everything the tool needs for the same information: for datacompy, building the
comparison and counting the rows only on one side.

Where the semantics coincide the counts must be equal: rows only in the store (missing_in_api),
rows only in the API (unexpected_in_api), and unequal values per column, which to datacompy are
our value_mismatch + value_nulled + value_dropped + type_mismatch (an omitted key or a
wrong-typed value is a null column to it). null_dropped is invisible to datacompy (null vs null).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

from bench.table import Row
from jobs.seed import trades_table, write_day
from jobs.spark import spark_session
from reconcilers.compare import compare
from reconcilers.contract import TRADES
from reconcilers.mirror import faithful_api
from reconcilers.schemas import BAD_TYPE, PRESENT, RAW, api_schema

N = 1_000_000
WARM_N = 20_000
DAY = date(2026, 12, 2)
# Kinds that datacompy sees as an unequal value in the same column.
UNEQUAL_KINDS = ("value_mismatch", "value_nulled", "value_dropped", "type_mismatch")


def inject_faults(api, ds=TRADES):
    """About 100 of each fault per million rows, chosen by a hash of the key."""
    from pyspark.sql import functions as F

    h = F.pmod(F.xxhash64(*ds.key), F.lit(1_000_000))

    def band(i: int):
        return (h >= i * 100) & (h < (i + 1) * 100)

    bit = {f.name: 1 << ds.field_index(f.name) for f in ds.fields}
    schema = api_schema(ds)
    price_type, qty_type = schema["price"].dataType, schema["quantity"].dataType
    omitted, bad = band(3), band(5)
    api = (
        api.where(~band(0))  # missing_in_api
        .withColumn("price", F.when(band(1), (F.col("price") + F.lit(Decimal("0.01"))).cast(price_type))
                    .otherwise(F.col("price")))
        .withColumn("execution_time", F.when(band(2), F.date_trunc("second", "execution_time"))
                    .otherwise(F.col("execution_time")))
        .withColumn("trader_id", F.when(omitted, F.lit(None)).otherwise(F.col("trader_id")))
        .withColumn(PRESENT, F.when(omitted, F.col(PRESENT) - bit["trader_id"]).otherwise(F.col(PRESENT)))
        .withColumn("aggressor_side", F.when(band(4), F.lit(None)).otherwise(F.col("aggressor_side")))
        .withColumn("quantity", F.when(bad, F.lit(None).cast(qty_type)).otherwise(F.col("quantity")))
        .withColumn(BAD_TYPE, F.when(bad, F.lit(bit["quantity"]).cast("long")).otherwise(F.col(BAD_TYPE)))
        .withColumn(RAW, F.when(bad, F.create_map(F.lit("quantity"), F.lit('"1.0"'))).otherwise(F.col(RAW)))
    )
    phantoms = api.where(band(6)).withColumn("trade_id", F.concat(F.lit("9"), F.substring("trade_id", 2, 64)))
    return api.unionByName(phantoms)


def ours(store, api) -> dict:
    c = compare(store, api, TRADES, day=DAY)
    unequal = {f.name: sum(c.counts.get(k, {}).get(f.name, 0) for k in UNEQUAL_KINDS) for f in TRADES.value_fields}
    return {
        "only_store": c.total("missing_in_api"),
        "only_api": c.total("unexpected_in_api"),
        "unequal": unequal,
        "null_dropped": c.total("null_dropped"),
        "findings": c.findings,
    }


def for_datacompy(df):
    """datacompy computes a max difference per column by casting to double, which ANSI Spark
    refuses for dates and timestamps: hand it epoch numbers instead (same equality)."""
    from pyspark.sql import functions as F

    kinds = {f.name: f.kind for f in TRADES.fields}
    return df.select(*[
        F.unix_micros(n).alias(n) if kinds[n] == "timestamp" else F.unix_date(n).alias(n) if kinds[n] == "date" else n
        for n in TRADES.names
    ])


def theirs(spark, store, api) -> dict:
    from datacompy import SparkSQLCompare

    cmp = SparkSQLCompare(spark, for_datacompy(store), for_datacompy(api), join_columns=list(TRADES.key),
                          df1_name="store", df2_name="api")
    unequal = {s["column"]: int(s["unequal_cnt"]) for s in cmp.column_stats if s["column"] not in TRADES.key}
    return {"only_store": cmp.df1_unq_rows.count(), "only_api": cmp.df2_unq_rows.count(), "unequal": unequal}


def _sides(spark, store_dir: Path, n: int):
    from pyspark.sql import functions as F

    day_dir = store_dir / f"n{n}"
    write_day(day_dir, TRADES, DAY, trades_table(DAY, n))
    store = (
        spark.read.parquet(str(day_dir / TRADES.name))
        .where(F.col(TRADES.day_field) == F.lit(DAY))
        .select(*TRADES.names)
    )
    return store, inject_faults(faithful_api(store, TRADES))


def run(repeat: int = 3) -> list[Row]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = spark_session(app_name="bench-compare")
    with tempfile.TemporaryDirectory() as tmp:
        warm_store, warm_api = _sides(spark, Path(tmp), WARM_N)
        ours(warm_store, warm_api)
        theirs(spark, warm_store, warm_api)

        store, api = _sides(spark, Path(tmp), N)
        our_times, their_times = [], []
        for _ in range(repeat):  # interleaved, so both see the same machine load
            t0 = time.perf_counter()
            mine = ours(store, api)
            our_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            peer = theirs(spark, store, api)
            their_times.append(time.perf_counter() - t0)
            spark.catalog.clearCache()  # datacompy caches its intermediates and leaves them

    equal = all(mine[k] == peer[k] for k in ("only_store", "only_api", "unequal"))
    print(f"compare(): {mine}\ndatacompy: {peer}\ncoinciding counts equal: {equal}; "
          f"times ours {our_times}, datacompy {their_times}", file=sys.stderr)
    ours_s, theirs_s = statistics.median(our_times), statistics.median(their_times)
    ratio = theirs_s / ours_s
    faults = mine["findings"]
    return [
        Row("compare", f"compare() {N:,} trades, {faults} findings", ours_s, "s", repeat,
            ">= 10x faster than datacompy", "datacompy SparkSQLCompare", ratio, ratio >= 10 and equal),
        Row("compare", f"datacompy SparkSQLCompare {N:,} trades (same DataFrames)", theirs_s, "s", repeat),
        Row("compare", f"equal counts where semantics coincide: only-store {mine['only_store']}, "
            f"only-API {mine['only_api']}, unequal values {sum(mine['unequal'].values())}",
            float(equal), "bool", 1, "equal", ok=equal),
    ]
