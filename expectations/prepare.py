"""The DataFrame a side is validated on: the columns the suite reads plus one derived column
per SQL check, computed in a single pass and cached, so that GX's metric queries read memory."""

from __future__ import annotations

from contextlib import contextmanager

import great_expectations as gx
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reconcilers.contract import Dataset
from expectations.suite import reads

COMPRESSED = "spark.sql.inMemoryColumnarStorage.compressed"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def derived_checks(suite: gx.ExpectationSuite) -> dict[str, tuple[str, list[str]]]:
    """Derived column -> (SQL predicate, columns an example shows), from the suite's meta."""
    out = {}
    for e in suite.expectations:
        meta = e.meta or {}
        if "check" in meta:
            out[e.column] = (meta["check"], meta["show"])
    return out


def read_columns(ds: Dataset, suite: gx.ExpectationSuite) -> list[str]:
    """Contract columns the suite reads directly (derived checks read theirs before the cache),
    and always the key, which examples identify rows by."""
    wanted: set[str] = set(ds.key)
    for e in suite.expectations:
        if "check" in (e.meta or {}):
            continue
        cols = reads(e)
        if cols is None:
            return ds.names
        wanted |= cols
    return [n for n in ds.names if n in wanted]


def prepare(df: DataFrame, ds: Dataset, suite: gx.ExpectationSuite) -> DataFrame:
    """The suite's columns (the API's meta columns are not data) plus the derived checks.

    A derived column is null on a good row and a JSON object of the row's key and the values
    involved on an offending one, which is what the report shows as an example.
    """
    derived = []
    for column, (check, show) in derived_checks(suite).items():
        fields = ", ".join(f"'{c}', {_quoted(c)}" for c in show)
        derived.append(F.expr(f"CASE WHEN {check} THEN to_json(named_struct({fields})) END").alias(column))
    return df.select(*[F.col(_quoted(n)) for n in read_columns(ds, suite)], *derived)


@contextmanager
def _uncompressed(spark: SparkSession):
    # The cache lives for one validation and is scanned a handful of times: compressing it
    # costs more CPU than those scans save. The setting is read when the cache is built.
    before = spark.conf.get(COMPRESSED)
    spark.conf.set(COMPRESSED, "false")
    try:
        yield
    finally:
        spark.conf.set(COMPRESSED, before)


def cached(df: DataFrame) -> DataFrame:
    """`df` cached and materialised; the caller unpersists it."""
    with _uncompressed(df.sparkSession):
        df.cache()
        df.count()
    return df
