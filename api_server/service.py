"""Serving pages: the day cache, keyset paging, and the faults that act on pages and cursors.

A page holds the window's next records after the cursor's key, in key order. Under
`duplicate-records`, the chosen records of a page are served once more at the start of the next
page (the cursor remembers where the previous page began), within the requested page size; a
last page holding such a record gets a cursor to one more page. Each chosen record is therefore
served exactly twice, however the client pages.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import date
from pathlib import Path

import numpy as np
import orjson

from api_server.cursor import Cursor, CursorError, decode
from api_server.day import Day, Window
from api_server.faults import FaultSpec
from api_server.manifest import Manifest
from api_server.mutate import Mutator
from api_server.problems import Problem
from api_server.query import Query, iso_z, to_us
from api_server.source import DataSource
from api_server.transport import Transport
from reconcilers.contract import Dataset

MAX_DAYS = 8


class ApiService:
    def __init__(self, source: DataSource, faults: tuple[FaultSpec, ...] = (), seed: int = 0,
                 manifest_path: Path | None = None):
        self.source, self.faults, self.seed = source, tuple(faults), seed
        self.transport = Transport(self.faults)
        self.manifest = Manifest(manifest_path, self.faults, seed, self.transport.describe)
        mutate = next((f for f in self.faults if f.name == "mutate-during-read"), None)
        self.mutator = Mutator(mutate) if mutate else None
        self._days: OrderedDict[tuple[str, date], Day] = OrderedDict()
        self._loading: dict[tuple[str, date], threading.Lock] = {}
        self._lock = threading.Lock()

    # -- days -----------------------------------------------------------------------------
    def _version(self, ds: Dataset, day: date):
        version = getattr(self.source, "version", None)
        return version(ds, day) if version else None

    def day(self, ds: Dataset, day: date) -> Day:
        key = (ds.name, day)
        version = self._version(ds, day)
        with self._lock:
            got = self._days.get(key)
            if got is not None and got.version == version:
                self._days.move_to_end(key)
                return got
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                got = self._days.get(key)
            if got is not None and got.version == version:
                return got
            loaded = Day(ds, day, self.source.read_day(ds, day), self.faults, self.seed, version)
            self.manifest.add_day(ds.name, day.isoformat(), loaded.findings)
            with self._lock:
                self._days[key] = loaded
                if len(self._days) > MAX_DAYS:
                    self._days.popitem(last=False)
            return loaded

    def replace_day(self, ds: Dataset, day: date, new: Day) -> None:
        """Serve `new` from now on (a day changed in place by mutate-during-read)."""
        with self._lock:
            self._days[(ds.name, day)] = new

    # -- pages ----------------------------------------------------------------------------
    def cursor(self, q: Query) -> Cursor | None:
        if q.cursor is None:
            return None
        try:
            return decode(q.cursor, q.ds, q.start_us, q.end_us)
        except CursorError as e:
            raise Problem(400, f"bad cursor: {e}", slug="invalid-cursor") from None

    def page(self, q: Query, cur: Cursor | None) -> tuple[bytes, int]:
        """The page's response body and how many records it holds."""
        if self.mutator is not None:
            self.mutator.before_page(self, q, cur)
        day = self.day(q.ds, q.day)
        win = day.window(q.start_us, q.end_us)
        if cur is not None and cur.past_end:
            positions, nxt = self._past_end(day, win, cur)
        else:
            positions, nxt = self._next(day, win, q, cur)
        records = win.records(positions)
        stuck_after = self.transport.param("stuck-cursor", "after")
        if nxt is not None and cur is not None and stuck_after is not None and cur.page >= stuck_after:
            token = q.cursor  # the cursor does not advance
            self.transport.count("stuck-cursor")
        else:
            token = nxt.encode() if nxt is not None else None
        body = b"".join((
            b'{"data":[', records, b'],"pagination":',
            orjson.dumps({"nextCursor": token, "pageSize": q.page_size}),
            b',"meta":',
            orjson.dumps({"dataset": q.ds.name, "asOf": iso_z(to_us(day.loaded_at)), "deliveryStartFrom": iso_z(q.start_us),
                          "deliveryStartTo": iso_z(q.end_us)}),
            b"}",
        ))
        return body, len(positions)

    def _next(self, day: Day, win: Window, q: Query, cur: Cursor | None):
        rows = win.rows
        carried = np.zeros(0, np.int64)
        if cur is not None and day.duplicated is not None:
            a = 0 if cur.prev is None else int(np.searchsorted(rows, day.after(cur.prev)))
            b = int(np.searchsorted(rows, day.after(cur.last)))
            carried = a + np.flatnonzero(day.duplicated[rows[a:b]])
            carried = carried[: q.page_size]  # only when a client shrinks pageSize mid-window
        i0 = 0 if cur is None else int(np.searchsorted(rows, day.after(cur.last)))
        i1 = min(len(rows), i0 + q.page_size - len(carried))
        fresh = range(i0, i1)
        more = i1 < len(rows)
        dup_ahead = day.duplicated is not None and bool(day.duplicated[rows[i0:i1]].any())
        positions = np.concatenate([carried, np.arange(i0, i1)]) if len(carried) else fresh
        last = day.position_of(int(rows[i1 - 1])) if i1 > i0 else (cur.last if cur else None)
        page_no = cur.page if cur else 0
        nxt = None
        if more or dup_ahead:
            nxt = Cursor(q.ds.name, q.start_us, q.end_us, last, cur.last if cur else None, page_no + 1)
        elif last is not None and self.transport.param("repeat-last-page", "times"):
            # The page after the last one repeats it: it covers (prev, last] again.
            nxt = Cursor(q.ds.name, q.start_us, q.end_us, last, cur.last if cur else None, page_no + 1, past_end=1)
            self.transport.count("repeat-last-page")
        return positions, nxt

    def _past_end(self, day: Day, win: Window, cur: Cursor):
        rows = win.rows
        a = 0 if cur.prev is None else int(np.searchsorted(rows, day.after(cur.prev)))
        b = int(np.searchsorted(rows, day.after(cur.last)))
        times = self.transport.param("repeat-last-page", "times") or 0
        nxt = None
        if cur.past_end < times:
            nxt = Cursor(cur.dataset, cur.start_us, cur.end_us, cur.last, cur.prev, cur.page + 1, cur.past_end + 1)
        return range(a, b), nxt
