"""A PostgreSQL data source for the bundled API: the same database the job reads over JDBC, so
the API and the store can be one system, as in production."""

from __future__ import annotations

from datetime import date
from typing import Hashable

import pyarrow as pa

from jobs.config import JdbcStore
from jobs.pg_store import PgTarget, load_version, read_day, target
from reconcilers.contract import Dataset


class PostgresSource:
    """Serves the tables `jobs.pg_store.load_day` fills (one per dataset, named after it)."""

    def __init__(self, tgt: PgTarget):
        self.target = tgt

    @classmethod
    def from_config(cls, jdbc: JdbcStore) -> "PostgresSource":
        return cls(target(jdbc))

    def read_day(self, dataset: Dataset, day: date) -> pa.Table:
        return read_day(self.target, dataset, day)

    def version(self, dataset: Dataset, day: date) -> Hashable:
        # One indexed row per loaded day, so asking costs nothing next to re-reading the day.
        return load_version(self.target, dataset, day)

    def __repr__(self) -> str:
        return f"PostgresSource({self.target!r})"
