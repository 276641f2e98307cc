"""One loaded delivery day of one dataset: rows in key order, keyset search, served windows.

Records are encoded to JSON lazily, per window and per chunk of the window's rows, and kept: a
page is then a byte slice of already encoded records. A window is a delivery-time slice
[start, end) of the day; its rows are the served records (not dropped by a fault) in key order.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from datetime import date, datetime, timezone
from typing import Hashable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from api_server.cursor import Position
from api_server.encode import encode_rows
from api_server.faults import FaultSpec
from api_server.plan import DayPlan, make_plan
from api_server.source import with_day_column
from reconcilers.contract import Dataset

CHUNK_ROWS = 4096  # encoded together: big enough to amortise Arrow's per-call cost, small enough for a fast first page
MAX_WINDOWS = 256


def _sort_key(values) -> tuple:
    # Arrow sorts nulls last and strings by UTF-8 bytes, which is Python's str order.
    return tuple((v is None, "" if v is None else v) for v in values)


class Window:
    def __init__(self, day: "Day", rows: np.ndarray):
        self.day = day
        self.rows = rows  # record indices of the day, ascending = key order
        self._chunks: dict[int, tuple[np.ndarray, bytes]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.rows)

    def _chunk(self, c: int) -> tuple[np.ndarray, bytes]:
        got = self._chunks.get(c)
        if got is None:
            with self._lock:
                got = self._chunks.get(c)
                if got is None:
                    got = self._chunks[c] = self.day.encode(self.rows[c * CHUNK_ROWS : (c + 1) * CHUNK_ROWS])
        return got

    def records(self, positions: np.ndarray | range) -> bytes:
        """The JSON of the records at these window positions, comma-separated."""
        pieces = []
        if isinstance(positions, range) and positions.step == 1:
            i, end = positions.start, positions.stop
            while i < end:
                c = i // CHUNK_ROWS
                offsets, data = self._chunk(c)
                a, b = i - c * CHUNK_ROWS, min(end, (c + 1) * CHUNK_ROWS) - c * CHUNK_ROWS
                pieces.append(memoryview(data)[offsets[a] : offsets[b]])
                i = (c + 1) * CHUNK_ROWS
        else:
            for p in positions:
                c, a = divmod(int(p), CHUNK_ROWS)
                offsets, data = self._chunk(c)
                pieces.append(memoryview(data)[offsets[a] : offsets[a + 1]])
        return b"".join(pieces)[:-1]  # every encoded record ends with a comma


class Day:
    def __init__(self, ds: Dataset, day: date, table: pa.Table, faults: tuple[FaultSpec, ...], seed: int,
                 version: Hashable = None):
        self.ds, self.day, self.version = ds, day, version
        table = with_day_column(table, ds, day)
        table = table.take(pc.sort_indices(table, [(k, "ascending", "at_end") for k in ds.key]))
        self.table = table.combine_chunks()
        self.n = self.table.num_rows
        now = datetime.now(timezone.utc)
        self.loaded_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # asOf, at ms
        self._keys = [self.table.column(k).to_pylist() for k in ds.key]
        start = pc.cast(self.table.column(ds.window_field), pa.int64())
        self._start = np.asarray(pc.fill_null(start, np.iinfo(np.int64).min).to_numpy(zero_copy_only=False))
        self.plan: DayPlan = make_plan(ds, day, self.table, faults, seed)
        self._served = self.plan.served
        self.duplicated = self.plan.duplicated
        self.findings = self.plan.findings(self.table)
        self._windows: OrderedDict[tuple[int, int], Window] = OrderedDict()
        self._lock = threading.Lock()

    # -- keyset ---------------------------------------------------------------------------
    def _row_key(self, i: int) -> tuple:
        return _sort_key(col[i] for col in self._keys)

    def _bounds(self, key: tuple) -> tuple[int, int]:
        target = _sort_key(key)
        lo = bisect.bisect_left(range(self.n), target, key=self._row_key)
        hi = bisect.bisect_right(range(self.n), target, lo=lo, key=self._row_key)
        return lo, hi

    def position_of(self, row: int) -> Position:
        key = tuple(col[row] for col in self._keys)
        lo, _ = self._bounds(key)
        return (*key, row - lo)

    def after(self, pos: Position) -> int:
        """Index of the first record after `pos` in key order."""
        *key, occurrence = pos
        lo, hi = self._bounds(tuple(key))
        return min(lo + occurrence + 1, hi)

    # -- windows --------------------------------------------------------------------------
    def window(self, start_us: int, end_us: int) -> Window:
        k = (start_us, end_us)
        with self._lock:
            w = self._windows.get(k)
            if w is None:
                rows = np.flatnonzero((self._start >= start_us) & (self._start < end_us) & self._served)
                w = self._windows[k] = Window(self, rows)
                if len(self._windows) > MAX_WINDOWS:
                    self._windows.popitem(last=False)
            else:
                self._windows.move_to_end(k)
            return w

    def encode(self, rows: np.ndarray) -> tuple[np.ndarray, bytes]:
        """Served JSON of these records: byte offsets of each record and the bytes."""
        if not len(rows):
            return np.zeros(1, np.int64), b""
        sub = self.table.take(pa.array(rows, pa.int64()))
        columns = {name: sub.column(name).combine_chunks() for name in self.ds.names}
        omit, override = {}, {}
        if self.plan.states:
            columns, omit, override = self.plan.apply(rows, columns)
        arr = encode_rows(columns, self.ds, omit=omit, override=override)
        offsets = np.frombuffer(arr.buffers()[1], np.int32, count=len(arr) + 1, offset=arr.offset * 4).astype(np.int64)
        base = int(offsets[0])
        data = arr.buffers()[2].slice(base, int(offsets[-1]) - base).to_pybytes()
        return offsets - base, data
