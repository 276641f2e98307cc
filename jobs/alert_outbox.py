"""The durable alert outbox: events that are not yet delivered to PagerDuty, one JSON file each.

`<outbox>/<seq>.json` waits to be sent, `<outbox>/dead/<seq>.json` was rejected by PagerDuty and
waits for a human. Sequence numbers only grow (a counter file survives an empty outbox), so the
file names give the delivery order. Every write goes to a temporary file that is fsynced and
renamed over the target, then the directory is fsynced: a crash leaves the old file or the new
one, never half of one. A file lock serialises runs that share the outbox (trades and orders in
parallel), so one flush at a time sends in order.

Routing keys are never written here: the event is stored as the body without `routing_key`.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from jobs.files import atomic_write, fsync_dir

_WIDTH = 12


@dataclass
class Entry:
    seq: int
    path: Path
    record: dict[str, Any]

    @property
    def event(self) -> dict:
        return self.record["event"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Outbox:
    def __init__(self, root: Path):
        self.root = root
        self.dead_dir = root / "dead"

    @contextmanager
    def locked(self) -> Iterator[Outbox]:
        """Hold the outbox for one process (and one thread) at a time. Not re-entrant."""
        self.dead_dir.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _entries(self, folder: Path) -> list[Entry]:
        if not folder.is_dir():
            return []
        out = []
        for p in folder.glob("*.json"):
            if not p.stem.isdigit():
                continue
            try:
                record = json.loads(p.read_text())
            except (OSError, ValueError) as e:
                record = {"event": None, "unreadable": str(e)}
            out.append(Entry(int(p.stem), p, record))
        return sorted(out, key=lambda e: e.seq)

    def pending(self) -> list[Entry]:
        return self._entries(self.root)

    def dead(self) -> list[Entry]:
        return self._entries(self.dead_dir)

    def _reserve(self, n: int) -> int:
        """The first of n new sequence numbers."""
        counter = self.root / ".seq"
        try:
            last = int(counter.read_text().strip() or 0)
        except (OSError, ValueError):
            last = 0
        # The files win over a lost or stale counter, so a number is never handed out twice.
        last = max([last] + [e.seq for e in self.pending()] + [e.seq for e in self.dead()])
        atomic_write(counter, f"{last + n}\n".encode())
        return last + 1

    def _write(self, folder: Path, seq: int, record: dict, sync_dir: bool = True) -> Path:
        path = folder / f"{seq:0{_WIDTH}d}.json"
        atomic_write(path, json.dumps(record, indent=1, sort_keys=True).encode(), sync_dir=sync_dir)
        return path

    def append_all(self, events: list[dict]) -> list[Entry]:
        """Queue events, in order, behind everything already pending. Call with the lock held."""
        if any("routing_key" in e for e in events):
            raise ValueError("refusing to store a routing key in the outbox")
        first = self._reserve(len(events))
        out = []
        for seq, event in enumerate(events, first):
            record = {"seq": seq, "queued_at": _now(), "attempts": 0, "last_error": None, "event": event}
            out.append(Entry(seq, self._write(self.root, seq, record, sync_dir=False), record))
        fsync_dir(self.root)  # once for the batch: the files are durable from here on
        return out

    def append(self, event: dict) -> Entry:
        return self.append_all([event])[0]

    def note_failure(self, entry: Entry, error: str) -> None:
        entry.record.update(attempts=entry.record.get("attempts", 0) + 1, last_error=error, last_attempt_at=_now())
        self._write(self.root, entry.seq, entry.record)

    def delivered(self, entry: Entry) -> None:
        entry.path.unlink(missing_ok=True)
        fsync_dir(self.root)

    def bury(self, entry: Entry, reason: dict) -> Path:
        """Move a rejected event to dead/ with why, so it is never retried automatically."""
        entry.record.update(attempts=entry.record.get("attempts", 0) + 1, rejected=reason, rejected_at=_now())
        path = self._write(self.dead_dir, entry.seq, entry.record)
        entry.path.unlink(missing_ok=True)
        fsync_dir(self.root)
        return path

    def requeue(self, entry: Entry) -> Entry:
        """Put a dead event back at the END of the queue: sent in its old place it could reopen an
        incident that a later event already resolved."""
        new = self.append(entry.event)
        entry.path.unlink(missing_ok=True)
        fsync_dir(self.dead_dir)
        return new
