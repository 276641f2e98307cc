"""One window's decoded pages, spooled by the task that read them into one Parquet file.

The file appears under its final name only when the whole window was read (written as a hidden
temporary, which Spark's reader skips, then renamed), so a failed or retried task never leaves
half a window behind. Pages are grouped into large row groups: a page of 2,000 rows per row
group would make the later Spark reads slow.

Beside it, each window has a hidden progress file (`.progress-NNNNN.json`: pages, records, bytes,
retries, done) that the task rewrites after every page, so the driver can show a live display
while the tasks run (it hears of the status rows only when they all end). Hidden, so Spark's
Parquet reader of the spool skips it; replaced atomically, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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


PROGRESS_FIELDS = ("pages", "records", "bytes", "retries")


def write_progress(spool: str | Path, window: int, status, done: bool = False) -> None:
    """Record how far window `window` got; `status` has the `PROGRESS_FIELDS` as attributes
    (the task's `WindowStatus`). Best effort: the display must never fail a window."""
    path = Path(spool) / f".progress-{window:05d}.json"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    doc = {k: getattr(status, k) for k in PROGRESS_FIELDS}
    doc["done"] = done
    try:
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


@dataclass
class SpoolProgress:
    windows_done: int = 0
    pages: int = 0
    records: int = 0
    bytes: int = 0
    retries: int = 0


def read_progress(spool: str | Path) -> SpoolProgress:
    """The sum of the spool's progress files; windows whose file says done count as done."""
    total = SpoolProgress()
    try:
        entries = [e for e in os.scandir(spool) if e.name.startswith(".progress-") and e.name.endswith(".json")]
    except FileNotFoundError:
        return total
    for e in entries:
        try:
            with open(e.path) as f:
                doc = json.load(f)
        except OSError:
            continue  # removed since the listing
        for k in PROGRESS_FIELDS:
            setattr(total, k, getattr(total, k) + doc[k])
        total.windows_done += bool(doc["done"])
    return total
