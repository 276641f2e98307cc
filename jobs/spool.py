"""One window's decoded pages, spooled by the task that read them into one Parquet file.

The file appears under its final name only when the whole window was read (written as a hidden
temporary, which Spark's reader skips, then renamed), so a failed or retried task never leaves
half a window behind. Pages are grouped into large row groups: a page of 2,000 rows per row
group would make the later Spark reads slow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 131_072
# Cheap to write and read; the spool lives only for the run.
COMPRESSION = "lz4"


class WindowFile:
    def __init__(self, spool: str | Path, window: int, schema: pa.Schema):
        self.path = Path(spool) / f"window-{window:05d}.parquet"
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._schema = schema
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._rows += batch.num_rows
        if self._rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, self._schema, compression=COMPRESSION)
        self._writer.write_table(pa.Table.from_batches(self._pending, self._schema), row_group_size=self._rows)
        self._pending, self._rows = [], 0

    def __enter__(self) -> WindowFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
        finally:
            if self._writer is not None:
                self._writer.close()
                if exc_type is None:
                    os.replace(self._tmp, self.path)
                else:
                    self._tmp.unlink(missing_ok=True)
