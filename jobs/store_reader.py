"""The store side of a run: the day's rows as a Spark DataFrame typed by `store_schema(ds)`.

Parquet (default): the `delivery_day=D` Hive partition is read with `basePath` set to the
dataset directory, so Spark prunes to that one directory and types the partition column from the
schema. Before Spark reads anything, every file's footer is opened on the driver (footers only,
no data pages), so a truncated or corrupt file stops the run naming that file instead of failing
deep inside a Spark task later.

JDBC (`store.format: jdbc`): one table per dataset, a query pruned to the day, read in parallel
slices of `store.jdbc.partition_column` between the day's UTC bounds (`pg_store.jdbc_read_options`).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import Config
from jobs.errors import IncompleteRun
from jobs.seed import partition_dir
from reconcilers.contract import Dataset
from reconcilers.schemas import store_schema


def read_store(spark: SparkSession, cfg: Config, ds: Dataset, day: date) -> DataFrame:
    if cfg.store.format == "jdbc":
        return _read_jdbc(spark, cfg, ds, day)
    return _read_parquet(spark, cfg, ds, day)


def _data_files(part: Path) -> list[Path]:
    # Spark skips names starting with "_" or "." (markers, checksums, temp files); so do we.
    return sorted(p for p in part.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))


def check_partition(part: Path, ds: Dataset) -> int:
    """Row count of the partition, after opening every file's footer and checking its columns."""
    if not part.is_dir():
        raise IncompleteRun(f"{ds.name}: store partition {part} does not exist")
    wanted = {f.name for f in ds.fields if f.name != ds.day_field}
    rows = 0
    for path in _data_files(part):
        try:
            meta = pq.read_metadata(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise IncompleteRun(f"{ds.name}: store file {path} is not readable Parquet: {str(e).splitlines()[0][:200]}") from None
        missing = wanted - set(meta.schema.names)
        if missing:
            raise IncompleteRun(f"{ds.name}: store file {path} lacks contract column(s) {', '.join(sorted(missing))}")
        rows += meta.num_rows
    return rows


def check_store(cfg: Config, ds: Dataset, day: date) -> Path | None:
    """What can be checked without Spark: a Parquet store's partition, every file's footer and
    the empty-day rule, so that a missing partition or a broken file ends the run before Spark
    is started for it. Returns the partition (None for JDBC, which needs Spark to connect)."""
    if cfg.store.format != "parquet":
        return None
    part = partition_dir(cfg.resolve(cfg.store.path), ds, day)
    _check_empty(cfg, ds, day, check_partition(part, ds), str(part))
    return part


def _read_parquet(spark: SparkSession, cfg: Config, ds: Dataset, day: date) -> DataFrame:
    # Checked again here, whoever calls: the files may have changed since.
    part = check_store(cfg, ds, day)
    root = cfg.resolve(cfg.store.path)
    return (
        spark.read.schema(store_schema(ds))
        .option("basePath", str(root / ds.name))
        .parquet(str(part))
        .select(*ds.names)
    )


def _check_empty(cfg: Config, ds: Dataset, day: date, rows: int, where: str) -> None:
    if rows == 0 and not cfg.store.allow_empty_day:
        raise IncompleteRun(f"{ds.name}: the store holds 0 rows for {day} at {where} and store.allow_empty_day is false")


def _safe_jdbc_url(url: str) -> str:
    # A JDBC URL can carry ?password=...; messages show only scheme, host and database.
    inner = urlsplit(url.removeprefix("jdbc:"))
    return f"jdbc:{inner.scheme}://{inner.hostname or ''}{f':{inner.port}' if inner.port else ''}{inner.path}"


def _read_jdbc(spark: SparkSession, cfg: Config, ds: Dataset, day: date) -> DataFrame:
    from jobs.pg_store import jdbc_read_options

    opts = jdbc_read_options(cfg.store.jdbc, ds, day)
    where = _safe_jdbc_url(cfg.store.jdbc.url)
    try:
        # Resolving the schema opens a connection, so an unreachable database fails here.
        df = spark.read.format("jdbc").options(**opts).load()
    except Exception as e:  # noqa: BLE001 - py4j wraps every driver error the same way
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        if opts.get("password"):
            first = first.replace(opts["password"], "***")
        raise IncompleteRun(f"{ds.name}: cannot read the store at {where}: {first[:300]}") from None
    df = df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in store_schema(ds).fields])
    if not cfg.store.allow_empty_day:
        _check_empty(cfg, ds, day, df.limit(1).count(), where)
    return df
