"""The store side: the day's Parquet partition, typed and pruned; clear failures naming the path."""

from __future__ import annotations

from datetime import date

import pyarrow.parquet as pq
import pytest

from jobs.config import Config
from jobs.errors import IncompleteRun
from jobs.seed import partition_dir, trades_table, write_day
from jobs.store_reader import read_store
from reconcilers.contract import ORDERS, TRADES
from reconcilers.schemas import store_schema

DAY = date(2026, 10, 25)
OTHER = date(2026, 10, 26)


def cfg(store, **over) -> Config:
    return Config.model_validate({"env": "test", "store": {"path": str(store), **over}})


@pytest.fixture
def store(tmp_path):
    write_day(tmp_path, TRADES, DAY, trades_table(DAY, 120))
    write_day(tmp_path, TRADES, OTHER, trades_table(OTHER, 30))
    return tmp_path


def test_reads_only_the_day_typed_by_the_contract(spark, store):
    df = read_store(spark, cfg(store), TRADES, DAY)
    want = store_schema(TRADES)
    assert [(f.name, f.dataType) for f in df.schema.fields] == [(f.name, f.dataType) for f in want.fields]
    rows = df.collect()
    assert len(rows) == 120 and {r.delivery_day for r in rows} == {DAY}
    table = trades_table(DAY, 120)
    assert sorted((r.trade_id, r.revision_no, r.price) for r in rows) == sorted(
        zip(*(table.column(c).to_pylist() for c in ("trade_id", "revision_no", "price"))))
    # Only the one partition directory is read.
    files = df.inputFiles()
    assert files and all(f"delivery_day={DAY}" in f for f in files)


def test_missing_partition_names_the_path(spark, store):
    with pytest.raises(IncompleteRun) as e:
        read_store(spark, cfg(store), TRADES, date(2026, 10, 27))
    assert str(e.value) == f"trades: store partition {partition_dir(store, TRADES, date(2026, 10, 27))} does not exist"
    with pytest.raises(IncompleteRun, match="orders: store partition .*orders/delivery_day=2026-10-25 does not exist"):
        read_store(spark, cfg(store), ORDERS, DAY)


def test_corrupt_file_is_named(spark, store):
    bad = partition_dir(store, TRADES, DAY) / "part-00001.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(IncompleteRun) as e:
        read_store(spark, cfg(store), TRADES, DAY)
    assert f"store file {bad} is not readable Parquet" in str(e.value)


def test_truncated_file_is_named(spark, store):
    part = partition_dir(store, TRADES, DAY) / "part-00000.parquet"
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])
    with pytest.raises(IncompleteRun, match=f"store file {part} is not readable Parquet"):
        read_store(spark, cfg(store), TRADES, DAY)


def test_file_without_a_contract_column_is_named(spark, store):
    part = partition_dir(store, TRADES, DAY) / "part-00000.parquet"
    pq.write_table(trades_table(DAY, 5).drop_columns(["price", "state"]), part)
    with pytest.raises(IncompleteRun, match=f"store file {part} lacks contract column.s. price, state"):
        read_store(spark, cfg(store), TRADES, DAY)


def test_empty_day_is_clean_unless_forbidden(spark, tmp_path):
    write_day(tmp_path, TRADES, DAY, trades_table(DAY, 5).slice(0, 0))
    assert read_store(spark, cfg(tmp_path), TRADES, DAY).count() == 0
    with pytest.raises(IncompleteRun, match="0 rows for 2026-10-25 .* store.allow_empty_day is false"):
        read_store(spark, cfg(tmp_path, allow_empty_day=False), TRADES, DAY)


def test_marker_files_are_ignored(spark, store):
    part = partition_dir(store, TRADES, DAY)
    (part / "_SUCCESS").write_bytes(b"")
    (part / ".part-00000.parquet.crc").write_bytes(b"junk")
    assert read_store(spark, cfg(store), TRADES, DAY).count() == 120


PG_DB = "trade_recon_store_reader_test"
JAR = "/usr/share/java/postgresql.jar"


def pg_cfg(store, **over) -> Config:
    jdbc = {"url": f"jdbc:postgresql://127.0.0.1:5432/{PG_DB}", "user": "postgres", "num_partitions": 3}
    return Config.model_validate({"env": "test", "store": {"format": "jdbc", "path": str(store), "jdbc": jdbc, **over}})


@pytest.mark.postgres
def test_jdbc_reads_the_same_day_as_parquet(spark, store):
    import os

    from conftest import need

    from jobs import pg_store

    need(os.path.exists(JAR), f"PostgreSQL JDBC driver {JAR}")
    tgt = pg_store.target(pg_cfg(store).store.jdbc)
    try:
        pg_store.drop_database(tgt)
    except pg_store.PgStoreError as e:
        need(False, f"PostgreSQL on 127.0.0.1:5432: {e}")
    pg_store.ensure_database(tgt)
    try:
        for d in (DAY, OTHER):
            pg_store.load_day(tgt, store, TRADES, d)
        spark.sql(f"ADD JAR {JAR}")  # the shared test session was started without it
        df = read_store(spark, pg_cfg(store), TRADES, DAY)
        assert df.schema == read_store(spark, cfg(store), TRADES, DAY).schema
        assert df.rdd.getNumPartitions() == 3
        pq_df = read_store(spark, cfg(store), TRADES, DAY)
        assert df.count() == 120 and df.exceptAll(pq_df).count() == 0 and pq_df.exceptAll(df).count() == 0
        with pytest.raises(IncompleteRun, match="0 rows for 2026-10-27 at jdbc:.*store.allow_empty_day is false"):
            read_store(spark, pg_cfg(store, allow_empty_day=False), TRADES, date(2026, 10, 27))
    finally:
        pg_store.drop_database(tgt)


def test_jdbc_unreachable_database_is_incomplete_without_password(spark, store, monkeypatch):
    monkeypatch.setenv("RECON_PG_PW", "pg-secret-77")
    c = Config.model_validate({"env": "test", "store": {"format": "jdbc", "jdbc": {
        "url": "jdbc:postgresql://127.0.0.1:9/nowhere", "password": {"env": "RECON_PG_PW"}}}})
    with pytest.raises(IncompleteRun) as e:
        read_store(spark, c, TRADES, DAY)
    assert str(e.value).startswith("trades: cannot read the store at jdbc:postgresql://127.0.0.1:9/nowhere: ")
    assert "pg-secret-77" not in str(e.value)
