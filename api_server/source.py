"""Where the API reads a delivery day from.

The server needs one thing from a data source: a day's rows of a dataset as an Arrow table with
the contract's columns. The Parquet store is the built-in source; others (PostgreSQL) plug in by
implementing `DataSource`. A source may also offer `version(dataset, day)`: any hashable that
changes when the day's data changes, so the server re-reads a re-seeded day. Without it a day is
read once per server process.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Hashable, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.seed import partition_dir
from reconcilers.contract import Dataset


@runtime_checkable
class DataSource(Protocol):
    def read_day(self, dataset: Dataset, day: date) -> pa.Table:
        """The day's rows, with the contract's columns; the day column may be left out.
        A day with no data is an empty table, not an error."""
        ...


class ParquetSource:
    """The Hive-partitioned Parquet store `jobs.seed` writes: `<store>/<dataset>/delivery_day=D/`."""

    def __init__(self, store: Path | str):
        self.store = Path(store)

    def _files(self, ds: Dataset, day: date) -> list[Path]:
        folder = partition_dir(self.store, ds, day)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))

    def read_day(self, dataset: Dataset, day: date) -> pa.Table:
        schema = dataset.arrow_schema(with_day=False)
        files = self._files(dataset, day)
        if not files:
            return schema.empty_table()
        return pa.concat_tables(pq.read_table(f, columns=schema.names).cast(schema) for f in files)

    def version(self, dataset: Dataset, day: date) -> Hashable:
        # The seeder swaps the partition directory atomically, so its inode and mtime change.
        folder = partition_dir(self.store, dataset, day)
        try:
            st = folder.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)


def with_day_column(table: pa.Table, ds: Dataset, day: date) -> pa.Table:
    """Add the partition column when the source left it out, and put columns in contract order."""
    if ds.day_field not in table.column_names:
        day_field = ds.by_name[ds.day_field]
        table = table.append_column(day_field.name, pa.repeat(pa.scalar(day, day_field.arrow_type), table.num_rows))
    return table.select(ds.names)


def source_from_config(cfg) -> DataSource:
    """The configured store as an API data source: Parquet under `store.path`, or PostgreSQL."""
    if cfg.store.format == "jdbc":
        from api_server.sources_pg import PostgresSource

        return PostgresSource.from_config(cfg.store.jdbc)
    return ParquetSource(cfg.resolve(cfg.store.path))
