"""PostgreSQL as the internal store, against the real server on 127.0.0.1:5432 (trust auth), in a
database `trade_recon_test` created for this test session and dropped after it."""

from __future__ import annotations

import os
from datetime import date

import pyarrow as pa
import pytest

from conftest import need
from jobs.config import Config
from jobs.seed import seed_day
from reconcilers.contract import DATASETS, ORDERS, TRADES

pytestmark = pytest.mark.postgres

DAY = date(2026, 10, 25)  # 25 hours: the repeated hour must survive the round trip
OTHER_DAY = date(2026, 10, 24)
TEST_DB = "trade_recon_test"
JAR = "/usr/share/java/postgresql.jar"


def _cfg(store, **jdbc) -> Config:
    return Config.model_validate(
        {
            "env": "test",
            "store": {
                "format": "jdbc",
                "path": str(store),
                "jdbc": {"url": f"jdbc:postgresql://127.0.0.1:5432/{TEST_DB}", "user": "postgres", **jdbc},
            },
        }
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("pgstore")
    seed_day(root, DAY, 300, 900, seed=11)
    seed_day(root, OTHER_DAY, 50, 120, seed=11)
    return root


@pytest.fixture(scope="module")
def pg(store):
    from jobs import pg_store

    tgt = pg_store.target(_cfg(store).store.jdbc)
    try:
        pg_store.drop_database(tgt)
    except pg_store.PgStoreError as e:
        need(False, f"PostgreSQL on 127.0.0.1:5432: {e}")
    assert pg_store.ensure_database(tgt) is True
    yield tgt
    pg_store.drop_database(tgt)


@pytest.fixture(scope="module")
def loaded(pg, store):
    from jobs import pg_store

    counts = {ds.name: pg_store.load_day(pg, store, ds, DAY) for ds in (TRADES, ORDERS)}
    for ds in (TRADES, ORDERS):
        pg_store.load_day(pg, store, ds, OTHER_DAY)
    return counts


def _parquet_day(store, ds, day) -> pa.Table:
    from api_server.source import ParquetSource, with_day_column

    table = with_day_column(ParquetSource(store).read_day(ds, day), ds, day)
    return table.cast(ds.arrow_schema()).sort_by([(k, "ascending") for k in ds.key])


INFO_TYPES = {
    "string": "text",
    "int": "bigint",
    "decimal": "numeric",
    "bool": "boolean",
    "timestamp": "timestamp with time zone",
    "date": "date",
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_table_columns_follow_the_contract(pg, loaded, name):
    from jobs.pg_store import connect

    ds = DATASETS[name]
    with connect(pg) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type, is_nullable, numeric_precision, numeric_scale "
            "FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (name,),
        ).fetchall()
    assert [r[0] for r in rows] == ds.names
    for (col, data_type, nullable, precision, scale), f in zip(rows, ds.fields):
        assert data_type == INFO_TYPES[f.kind], col
        assert (nullable == "YES") == f.nullable, col
        if f.kind == "decimal":
            assert (precision, scale) == (f.precision, f.scale), col


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_copy_load_round_trips_exactly(pg, store, loaded, name):
    from jobs.pg_store import read_day

    ds = DATASETS[name]
    expected = _parquet_day(store, ds, DAY)
    assert loaded[name] == expected.num_rows > 0
    back = read_day(pg, ds, DAY)
    assert back.schema.equals(ds.arrow_schema())
    assert back.equals(expected)
    if name == "orders":
        # The seed holds both "" and null free text; COPY must keep them apart.
        texts = back.column("text").to_pylist()
        assert "" in texts and None in texts


def test_reload_replaces_only_its_day(pg, store, loaded):
    from jobs.pg_store import connect, load_day, load_version

    before = load_version(pg, TRADES, DAY)
    assert before is not None and before[1] == loaded["trades"]
    assert load_day(pg, store, TRADES, DAY) == loaded["trades"]
    after = load_version(pg, TRADES, DAY)
    assert after[0] > before[0]
    with connect(pg) as conn:
        per_day = dict(conn.execute("SELECT delivery_day, count(*) FROM trades GROUP BY 1").fetchall())
    assert per_day == {DAY: loaded["trades"], OTHER_DAY: _parquet_day(store, TRADES, OTHER_DAY).num_rows}
    assert load_version(pg, TRADES, date(2026, 1, 1)) is None


def test_load_of_a_missing_partition_names_it(pg, store):
    from jobs.pg_store import PgStoreError, load_day

    with pytest.raises(PgStoreError, match="no trades partition for 2026-01-01"):
        load_day(pg, store, TRADES, date(2026, 1, 1))


def test_spark_reads_the_day_over_jdbc_in_parallel_slices(spark, pg, store, loaded):
    need(os.path.exists(JAR), f"PostgreSQL JDBC driver {JAR} (libpostgresql-jdbc-java)")
    from pyspark.sql import functions as F

    from jobs.pg_store import jdbc_read_options
    from jobs.store_reader import read_store
    from reconcilers.schemas import store_schema

    spark.sql(f"ADD JAR {JAR}")  # the shared test session was started without it
    cfg = _cfg(store, num_partitions=4)
    raw = spark.read.format("jdbc").options(**jdbc_read_options(cfg.store.jdbc, ORDERS, DAY)).load()
    assert raw.rdd.getNumPartitions() == 4
    per_slice = raw.rdd.mapPartitions(lambda rows: [sum(1 for _ in rows)]).collect()
    assert sum(per_slice) == loaded["orders"]
    assert sum(1 for n in per_slice if n > 0) >= 3  # the day is really split, not read as one slice
    df = raw.select(*[F.col(f.name).cast(f.dataType) for f in store_schema(ORDERS).fields])
    pq_df = read_store(spark, Config.model_validate({"env": "test", "store": {"path": str(store)}}), ORDERS, DAY)
    assert df.exceptAll(pq_df).count() == 0 and pq_df.exceptAll(df).count() == 0


def test_api_postgres_source_serves_the_loaded_day(pg, store, loaded):
    from api_server.source import DataSource
    from api_server.sources_pg import PostgresSource

    src = PostgresSource(pg)
    assert isinstance(src, DataSource)
    assert src.read_day(TRADES, DAY).equals(_parquet_day(store, TRADES, DAY))
    assert src.read_day(TRADES, date(2026, 1, 1)).num_rows == 0
    assert src.version(TRADES, DAY) is not None
    assert "password" not in repr(src)


def test_config_mistakes_are_config_errors_that_hide_the_password(tmp_path, monkeypatch):
    from jobs.config import ConfigError
    from jobs.pg_store import jdbc_read_options, target

    with pytest.raises(ConfigError, match="store.jdbc.url"):
        target(_cfg(tmp_path, url="postgresql://127.0.0.1/x").store.jdbc)
    with pytest.raises(ConfigError, match="partition_column: 'price'"):
        jdbc_read_options(_cfg(tmp_path, partition_column="price").store.jdbc, TRADES, DAY)
    monkeypatch.setenv("PG_TEST_PW", "s3cret-value")
    tgt = target(_cfg(tmp_path, password={"env": "PG_TEST_PW"}).store.jdbc)
    assert tgt.connect_kwargs()["password"] == "s3cret-value"
    assert "s3cret" not in repr(tgt)


FAULTS = ("drop-nulls:rate=0.3", "change-values:rate=0.05", "drop-records:rate=0.03", "null-values:rate=0.03")


def test_reconciling_from_postgres_finds_exactly_what_parquet_finds(spark, pg, store, loaded, monkeypatch):
    """Same seeded day, same fault profile and seed: the job reading the store over JDBC (and the
    API serving from PostgreSQL) finds the same counts as with Parquet on both sides."""
    need(os.path.exists(JAR), f"PostgreSQL JDBC driver {JAR} (libpostgresql-jdbc-java)")
    from api_server.sources_pg import PostgresSource
    from api_server.testing import serve
    from jobs.run import new_run_id, run_day
    from reconcilers.result import Outcome

    spark.sql(f"ADD JAR {JAR}")
    monkeypatch.setenv("PG_RECON_KEY", "k")
    api = {"api_key": {"env": "PG_RECON_KEY"}, "page_size": 100, "window_minutes": 240}
    found = {}
    for kind, source in (("parquet", store), ("jdbc", PostgresSource(pg))):
        with serve(source, faults=FAULTS, fault_seed=17) as srv:
            cfg = Config.model_validate({
                "env": "test",
                "store": {"format": kind, "path": str(store),
                          "jdbc": {"url": f"jdbc:postgresql://127.0.0.1:5432/{TEST_DB}", "num_partitions": 3}},
                "api": {"base_url": srv.base_url, **api},
                "expectations": {"enabled": False},
            })
            for ds in (TRADES, ORDERS):
                r = run_day(spark, cfg, ds, DAY, new_run_id())
                assert r.outcome == Outcome.FINDINGS and r.error is None, (kind, ds.name, r.error)
                assert r.store_rows == loaded[ds.name]
                assert r.counts == srv.manifest_data()["expected"][ds.name][DAY.isoformat()], (kind, ds.name)
                found[kind, ds.name] = (r.counts, r.store_rows, r.api_rows, [(h.store, h.api) for h in r.hourly])
    for ds in (TRADES, ORDERS):
        assert found["jdbc", ds.name] == found["parquet", ds.name]
        assert len(found["jdbc", ds.name][3]) == 25  # the 25-hour day, hour by hour


def test_pg_load_command_loads_a_seeded_day(pg, store, loaded, tmp_path, capsys):
    import yaml

    from jobs.cli import main
    from jobs.pg_store import read_day

    cfg_file = tmp_path / "pg.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "store": {"format": "jdbc", "path": str(store),
                  "jdbc": {"url": f"jdbc:postgresql://127.0.0.1:5432/{TEST_DB}"}},
    }))
    assert main(["pg-load", "--day", OTHER_DAY.isoformat(), "--dataset", "orders", "-c", str(cfg_file)]) == 0
    out = capsys.readouterr().out
    assert f"loaded       120 orders for {OTHER_DAY}" in out
    assert read_day(pg, ORDERS, OTHER_DAY).equals(_parquet_day(store, ORDERS, OTHER_DAY))
    # A day that was never seeded: one line naming it, exit 2, no stack trace.
    assert main(["pg-load", "--day", "2026-01-01", "-c", str(cfg_file)]) == 2
    err = capsys.readouterr().err
    assert "no trades partition for 2026-01-01" in err and "Traceback" not in err
