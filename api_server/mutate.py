"""The `mutate-during-read` fault: the day changes while a client pages through it.

Before a page that continues a window (a request with a cursor) is served, that window changes on
both sides of the cursor: `changes` records not read yet get their price one tick up, and as many
records already read do too; `inserts` new records (the next revision of an existing key) land
ahead of the cursor, and as many behind it. Each page triggers once: a retried request does not
change the data again.

Keyset cursors make the outcome exact, whatever the timing between windows: a client that pages
correctly reads every record that existed at the start exactly once, sees the values changed
ahead of it (value_mismatch against the store) and the keys inserted ahead of it
(unexpected_in_api), and never sees what was inserted behind it. The manifest's `expected` lists
exactly those findings; its `mutations` list says what happened on each side of the cursor.
"""

from __future__ import annotations

import threading
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from api_server.cursor import Cursor
from api_server.day import Day
from api_server.faults import FaultSpec
from api_server.plan import changed_values
from api_server.query import Query, iso_z
from reconcilers.contract import Dataset, Field

if TYPE_CHECKING:
    from api_server.service import ApiService

NAME = "mutate-during-read"


def bumped_field(ds: Dataset) -> Field:
    """The value a mutation bumps: the first non-nullable decimal outside the key (the price)."""
    return next(f for f in ds.value_fields if f.kind == "decimal" and not f.nullable)


def _spread(candidates: np.ndarray, n: int) -> np.ndarray:
    """Up to `n` of `candidates`, evenly spaced, so changes are not all at one end of a page."""
    if n <= 0 or not len(candidates):
        return candidates[:0]
    picks = np.unique(np.linspace(0, len(candidates) - 1, min(n, len(candidates))).round().astype(np.int64))
    return candidates[picks]


class Mutator:
    def __init__(self, spec: FaultSpec):
        self.spec = spec
        self._done: set[tuple] = set()
        self._lock = threading.Lock()
        # (dataset, day) -> keys inserted so far / keys changed while still ahead of their reader
        self._inserted: dict[tuple[str, date], set[tuple]] = {}
        self._changed_ahead: dict[tuple[str, date], set[tuple]] = {}
        self._inserted_ahead: dict[tuple[str, date], set[tuple]] = {}

    def before_page(self, service: "ApiService", q: Query, cur: Cursor | None) -> None:
        if cur is None or cur.past_end or not self.spec.applies_to(q.ds.name):
            return
        page_id = (q.ds.name, q.start_us, q.end_us, q.cursor)
        with self._lock:
            if page_id in self._done:
                return
            self._done.add(page_id)
            day = service.day(q.ds, q.day)
            rows = day.window(q.start_us, q.end_us).rows
            next_row = int(np.searchsorted(rows, day.after(cur.last)))
            event = self._mutate(service, day, rows, next_row, cur)
            event.update(window=[iso_z(q.start_us), iso_z(q.end_us)], page=cur.page + 1)
            service.transport.count(NAME)
            service.manifest.add_mutation(q.ds.name, q.day.isoformat(), event, self._findings(day))

    def _mutate(self, service: "ApiService", day: Day, rows: np.ndarray, next_row: int, cur: Cursor) -> dict:
        ds, table = day.ds, day.table
        where = (ds.name, day.day)
        inserted = self._inserted.setdefault(where, set())
        keys = list(zip(*(table.column(k).to_pylist() for k in ds.key)))
        original = np.array([keys[r] not in inserted for r in range(table.num_rows)], dtype=bool)
        ahead, behind = rows[next_row:], rows[:next_row]
        n_changes, n_inserts = self.spec.params["changes"], self.spec.params["inserts"]

        change_ahead = _spread(ahead[original[ahead]], n_changes)
        change_behind = _spread(behind[original[behind]], n_changes)
        # Behind the cursor, a new revision sorts right after its source, so the source's id must
        # sort before the cursor's id.
        cursor_id = cur.last[0]
        behind_sources = np.array([r for r in behind if keys[r][0] != cursor_id], dtype=np.int64)
        insert_ahead = _spread(ahead, n_inserts)
        insert_behind = _spread(behind_sources, n_inserts)

        f = bumped_field(ds)
        changed = np.zeros(table.num_rows, dtype=bool)
        changed[np.concatenate([change_ahead, change_behind]).astype(np.int64)] = True
        col = table.column(f.name).combine_chunks()
        i = table.schema.get_field_index(f.name)
        table = table.set_column(i, table.schema.field(i), pc.if_else(pa.array(changed), changed_values(col, f), col))

        new_keys = {}
        for r in np.concatenate([insert_ahead, insert_behind]).astype(np.int64):
            new_keys[int(r)] = self._next_revision(ds, keys, int(r), inserted)
        if new_keys:
            src = sorted(new_keys)
            extra = table.take(pa.array(src, pa.int64()))
            i = extra.schema.get_field_index(ds.key[-1])
            revs = pa.array([new_keys[r][-1] for r in src], extra.schema.field(i).type)
            extra = extra.set_column(i, extra.schema.field(i), revs)
            table = pa.concat_tables([table, extra])
            inserted.update(new_keys.values())

        service.replace_day(ds, day.day, Day(ds, day.day, table, service.faults, service.seed, day.version))
        self._changed_ahead.setdefault(where, set()).update(keys[r] for r in change_ahead)
        self._inserted_ahead.setdefault(where, set()).update(new_keys[int(r)] for r in insert_ahead)

        def named(ks):
            return [dict(zip(ds.key, k)) for k in ks]

        return {
            "changed_ahead": named(keys[r] for r in change_ahead),
            "changed_behind": named(keys[r] for r in change_behind),
            "inserted_ahead": named(new_keys[int(r)] for r in insert_ahead),
            "inserted_behind": named(new_keys[int(r)] for r in insert_behind),
            "field": f.name,
        }

    @staticmethod
    def _next_revision(ds: Dataset, keys: list[tuple], row: int, inserted: set[tuple]) -> tuple:
        """A key not held anywhere yet: the source's id with the next free revision."""
        *prefix, _ = keys[row]
        taken = {k[-1] for k in keys if list(k[:-1]) == prefix} | {k[-1] for k in inserted if list(k[:-1]) == prefix}
        return (*prefix, max(taken) + 1)

    def _findings(self, day: Day) -> list[dict]:
        ds, where = day.ds, (day.ds.name, day.day)
        field = bumped_field(ds).name
        out = []
        for kind, fname, ks in (("value_mismatch", field, self._changed_ahead.get(where, ())),
                                ("unexpected_in_api", None, self._inserted_ahead.get(where, ()))):
            for k in sorted(ks):
                out.append({"dataset": ds.name, "day": day.day.isoformat(), "kind": kind, "key": dict(zip(ds.key, k)),
                            "field": fname, "fault": NAME})
        return out
