"""PostgreSQL as the internal store: tables derived from the contract, COPY-loading a seeded
Parquet day, reading a day back as Arrow (for the bundled API), and the options Spark's JDBC
reader needs to read a day in parallel slices (`jobs/store_reader.py` reads these tables).

One table per dataset, named after it, with the contract's columns in contract order. No
primary key: a store that holds a duplicate key is a finding to report, not a load error.
A small `trade_recon_loads` table records each loaded day, so a reader can tell cheaply
whether a day changed since it last read it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads

from jobs.config import ConfigError, JdbcStore
from jobs.seed import partition_dir
from reconcilers.contract import Dataset, Field, day_bounds_utc

SQL_TYPES = {
    "string": "TEXT",
    "int": "BIGINT",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
}
# Rows per COPY chunk: bounds the loader's memory whatever the size of the day.
BATCH_ROWS = 65_536

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PgStoreError(Exception):
    """PostgreSQL cannot be reached or loaded; the message names the database, never a password."""


def ident(name: str) -> str:
    """A quoted SQL identifier; contract names are plain snake_case, anything else is refused."""
    if not _IDENT.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


def sql_type(f: Field) -> str:
    if f.kind == "decimal":
        return f"NUMERIC({f.precision},{f.scale})"
    return SQL_TYPES[f.kind]


def table_ddl(ds: Dataset) -> list[str]:
    """CREATE TABLE and its indexes: one on the day (every read filters on it) and one on the
    column Spark splits the day on, so each partition's range scan is an index scan."""
    cols = ",\n  ".join(f"{ident(f.name)} {sql_type(f)}{'' if f.nullable else ' NOT NULL'}" for f in ds.fields)
    t = ident(ds.name)
    return [
        f"CREATE TABLE IF NOT EXISTS {t} (\n  {cols}\n)",
        f"CREATE INDEX IF NOT EXISTS {ident(ds.name + '_day_idx')} ON {t} ({ident(ds.day_field)})",
        f"CREATE INDEX IF NOT EXISTS {ident(ds.name + '_' + ds.window_field + '_idx')} "
        f"ON {t} ({ident(ds.window_field)})",
    ]


LOADS_TABLE = "trade_recon_loads"
LOADS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (dataset TEXT NOT NULL, delivery_day DATE NOT NULL, "
    "rows BIGINT NOT NULL, loaded_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), "
    "PRIMARY KEY (dataset, delivery_day))"
)


# ---------------------------------------------------------------- connecting


@dataclass(frozen=True)
class PgTarget:
    """Where the store lives, parsed from the JDBC URL so psycopg and Spark read one setting."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    def connect_kwargs(self, dbname: str | None = None) -> dict[str, Any]:
        kw: dict[str, Any] = {"host": self.host, "port": self.port, "dbname": dbname or self.dbname, "user": self.user}
        if self.password is not None:
            kw["password"] = self.password
        # pgJDBC spells TLS as sslmode too; the other JDBC-only options mean nothing to libpq.
        kw.update({k: v for k, v in self.options if k == "sslmode"})
        return kw

    def __repr__(self) -> str:  # never show the password
        return f"PgTarget({self.user}@{self.host}:{self.port}/{self.dbname})"


def target(jdbc: JdbcStore) -> PgTarget:
    url = jdbc.url
    if not url.startswith("jdbc:postgresql://"):
        raise ConfigError(f"store.jdbc.url: expected jdbc:postgresql://host[:port]/database, got {url!r}")
    parts = urlsplit(url[len("jdbc:") :])
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname:
        raise ConfigError(f"store.jdbc.url: expected jdbc:postgresql://host[:port]/database, got {url!r}")
    password = jdbc.password.read("store.jdbc.password") if jdbc.password.configured else None
    return PgTarget(
        host=parts.hostname,
        port=parts.port or 5432,
        dbname=dbname,
        user=jdbc.user,
        password=password,
        options=tuple(parse_qsl(parts.query)),
    )


def connect(tgt: PgTarget, dbname: str | None = None, autocommit: bool = False):
    import psycopg

    try:
        return psycopg.connect(**tgt.connect_kwargs(dbname), autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PgStoreError(f"cannot connect to PostgreSQL {tgt!r}: {first}") from None


def ensure_database(tgt: PgTarget, maintenance_db: str = "postgres") -> bool:
    """Create the target database when it does not exist. True when it was created."""
    with connect(tgt, dbname=maintenance_db, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (tgt.dbname,)).fetchone():
            return False
        conn.execute(f"CREATE DATABASE {ident(tgt.dbname)}")
        return True


def drop_database(tgt: PgTarget, maintenance_db: str = "postgres") -> None:
    with connect(tgt, dbname=maintenance_db, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {ident(tgt.dbname)} WITH (FORCE)")


# ---------------------------------------------------------------- loading


def _batches(store: Path, ds: Dataset, day: date) -> Iterator[pa.RecordBatch]:
    """The day's Parquet partition as record batches in contract column order, day column added."""
    part = partition_dir(store, ds, day)
    if not part.is_dir():
        raise PgStoreError(f"no {ds.name} partition for {day} under {store} (seed it first: recon seed --day {day})")
    files = sorted(str(p) for p in part.glob("*.parquet"))
    if not files:
        return
    schema = ds.arrow_schema(with_day=False)
    day_type = ds.by_name[ds.day_field].arrow_type
    for batch in pads.dataset(files, schema=schema, format="parquet").to_batches(batch_size=BATCH_ROWS):
        cols = []
        for f in ds.fields:
            if f.name == ds.day_field:
                cols.append(pa.repeat(pa.scalar(day, day_type), batch.num_rows))
            else:
                cols.append(batch.column(f.name))
        yield pa.RecordBatch.from_arrays(cols, names=ds.names)


def _csv(batch: pa.RecordBatch) -> bytes:
    # Every non-null value quoted, nulls left bare: PostgreSQL's CSV COPY reads a bare empty
    # field as NULL and "" as the empty string, which the contract says are different.
    buf = io.BytesIO()
    pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=False, quoting_style="all_valid"))
    return buf.getvalue()


def load_day(tgt: PgTarget, store: Path, ds: Dataset, day: date) -> int:
    """Replace the day's rows of `ds` with the Parquet partition, in one transaction, so a reader
    sees the old day or the new one and never half of it. Returns the rows loaded."""
    import psycopg

    try:
        return _load_day(tgt, store, ds, day)
    except psycopg.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PgStoreError(f"loading {ds.name} {day} into {tgt!r} failed: {first}") from None


def _load_day(tgt: PgTarget, store: Path, ds: Dataset, day: date) -> int:
    cols = ", ".join(ident(n) for n in ds.names)
    rows = 0
    with connect(tgt) as conn:
        with conn.transaction():
            for stmt in table_ddl(ds):
                conn.execute(stmt)
            conn.execute(f"DELETE FROM {ident(ds.name)} WHERE {ident(ds.day_field)} = %s", (day,))
            with conn.cursor() as cur:
                with cur.copy(f"COPY {ident(ds.name)} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
                    for batch in _batches(store, ds, day):
                        copy.write(_csv(batch))
                        rows += batch.num_rows
            conn.execute(LOADS_DDL)
            conn.execute(
                f"INSERT INTO {LOADS_TABLE} (dataset, delivery_day, rows) VALUES (%s, %s, %s) "
                "ON CONFLICT (dataset, delivery_day) DO UPDATE SET rows = EXCLUDED.rows, loaded_at = clock_timestamp()",
                (ds.name, day, rows),
            )
        conn.execute(f"ANALYZE {ident(ds.name)}")
        conn.commit()
    return rows


# ---------------------------------------------------------------- reading a day back


def _select_expr(f: Field) -> str:
    # Timestamps travel as integer microseconds since the epoch: exact, and free of the
    # session time zone and of text formats the CSV reader would have to guess.
    if f.kind == "timestamp":
        return f"(EXTRACT(EPOCH FROM {ident(f.name)}) * 1000000)::bigint"
    return ident(f.name)


def read_day(tgt: PgTarget, ds: Dataset, day: date) -> pa.Table:
    """The day's rows as an Arrow table with the contract's store schema (day column included),
    in key order."""
    exprs = ", ".join(_select_expr(f) for f in ds.fields)
    # Byte order, like Arrow's sort, whatever the database's collation.
    order = ", ".join(ident(k) + (' COLLATE "C"' if ds.by_name[k].kind == "string" else "") for k in ds.key)
    sql = (
        f"COPY (SELECT {exprs} FROM {ident(ds.name)} WHERE {ident(ds.day_field)} = "
        f"DATE '{day.isoformat()}' ORDER BY {order}) TO STDOUT WITH (FORMAT csv)"
    )
    buf = io.BytesIO()
    with connect(tgt) as conn:
        if not conn.execute("SELECT to_regclass(%s)", (ds.name,)).fetchone()[0]:
            return ds.arrow_schema().empty_table()
        with conn.cursor() as cur:
            with cur.copy(sql) as copy:
                for chunk in copy:
                    buf.write(chunk)
    schema = ds.arrow_schema()
    if buf.tell() == 0:
        return schema.empty_table()
    wire = {f.name: (pa.int64() if f.kind == "timestamp" else f.arrow_type) for f in ds.fields}
    table = pacsv.read_csv(
        io.BytesIO(buf.getvalue()),
        read_options=pacsv.ReadOptions(column_names=ds.names),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=wire,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )
    return pa.table([table.column(f.name).cast(f.arrow_type) for f in ds.fields], schema=schema)


def load_version(tgt: PgTarget, ds: Dataset, day: date) -> tuple | None:
    """When and how many rows `load_day` last loaded for this day; None if it never did."""
    with connect(tgt) as conn:
        if not conn.execute("SELECT to_regclass(%s)", (LOADS_TABLE,)).fetchone()[0]:
            return None
        row = conn.execute(
            f"SELECT loaded_at, rows FROM {LOADS_TABLE} WHERE dataset = %s AND delivery_day = %s", (ds.name, day)
        ).fetchone()
    return tuple(row) if row else None


# ---------------------------------------------------------------- Spark's JDBC reader


def jdbc_read_options(jdbc: JdbcStore, ds: Dataset, day: date) -> dict[str, str]:
    """Options for `spark.read.format("jdbc").options(**o).load()` that read one delivery day
    in `num_partitions` ranges of `partition_column` between the day's UTC bounds, so executors
    read in parallel and no row passes through the driver. Rows outside the bounds still land in
    the first or last range (Spark leaves the outer ranges open).

    The generic reader is used because `DataFrameReader.jdbc(column=...)` in PySpark casts the
    bounds to int, which a timestamp column cannot take."""
    col = jdbc.partition_column
    if col not in ds.by_name or ds.by_name[col].kind != "timestamp":
        # The bounds are the day's UTC instants, so only a timestamp column splits a day.
        raise ConfigError(f"store.jdbc.partition_column: {col!r} must be a timestamp column of {ds.name}")
    start, end = day_bounds_utc(day)
    fmt = "%Y-%m-%d %H:%M:%S"
    cols = ", ".join(ident(n) for n in ds.names)
    opts = {
        "url": jdbc.url,
        "driver": jdbc.driver,
        "user": jdbc.user,
        "dbtable": (
            f"(SELECT {cols} FROM {ident(ds.name)} "
            f"WHERE {ident(ds.day_field)} = DATE '{day.isoformat()}') AS {ident(ds.name + '_day')}"
        ),
        "partitionColumn": col,
        "lowerBound": start.strftime(fmt),
        "upperBound": end.strftime(fmt),
        "numPartitions": str(jdbc.num_partitions),
        "fetchsize": "10000",
        # Spark writes the range bounds as zone-less literals in its session zone (UTC, set by
        # jobs/spark.py); the same zone in the database session makes each range one slice of
        # the day instead of one shifted by the server's zone.
        "sessionInitStatement": "SET TIME ZONE 'UTC'",
    }
    if jdbc.password.configured:
        opts["password"] = jdbc.password.read("store.jdbc.password")
    return opts
