"""One lock per environment, dataset and delivery day, so two overlapping runs never write the
same report or send the same alert twice.

The lock is `fcntl.flock` on `<report dir>/<env>/locks/<dataset>-<day>.lock`. The kernel drops
a flock when its holder dies, kill -9 included, so a lock left behind by a killed run is simply
free: there is no pid-liveness guessing and no stale-lock race. The holder writes its pid, host,
run id and start time into the file only so that a second run can say who holds it. The file is
never deleted: unlinking a flocked file lets a third process lock a fresh inode while a second
one still holds the old one.

flock locks are per open file, so two threads (backfill `--parallel-days`) or two processes
locking the same day exclude each other alike. The report directory must be on a local file
system or one with working flock (NFSv4 maps it onto POSIX locks).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

from jobs.config import Config
from jobs.files import FILE_MODE

LOCK_DIR = "locks"


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lock, as written inside the lock file."""

    pid: int | None = None
    host: str | None = None
    run_id: str | None = None
    started_at: str | None = None

    def describe(self) -> str:
        if self.pid is None and self.host is None:
            return "an unknown process"
        return f"run {self.run_id or '?'} (pid {self.pid} on {self.host}, started {self.started_at})"


class LockHeld(Exception):
    """Another live run holds the lock for this dataset and day: exit code 4."""

    def __init__(self, path: Path, dataset: str, day: str, holder: Holder):
        self.path, self.dataset, self.day, self.holder = path, dataset, day, holder
        super().__init__(
            f"{dataset} {day} is locked by {holder.describe()}; "
            f"a previous run is still going (lock file {path})"
        )


@dataclass(frozen=True)
class DayLock:
    path: Path
    dataset: str
    day: str
    # Set when the previous holder died without releasing (its details were still in the file).
    taken_over_from: Holder | None = None


def lock_path(cfg: Config, dataset: str, day: date | str) -> Path:
    day_s = day.isoformat() if isinstance(day, date) else date.fromisoformat(day).isoformat()
    return cfg.resolve(cfg.report.dir) / cfg.env / LOCK_DIR / f"{dataset}-{day_s}.lock"


def read_holder(path: Path) -> Holder | None:
    """The details last written into a lock file, or None when it is empty or unreadable."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return _parse(text)


def _parse(text: str) -> Holder | None:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    return Holder(
        pid=doc.get("pid") if isinstance(doc.get("pid"), int) else None,
        host=str(doc["host"]) if doc.get("host") else None,
        run_id=str(doc["run_id"]) if doc.get("run_id") else None,
        started_at=str(doc["started_at"]) if doc.get("started_at") else None,
    )


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


@contextmanager
def day_lock(cfg: Config, dataset: str, day: date | str, run_id: str) -> Iterator[DayLock]:
    """Hold the lock for `dataset` and `day` for the duration of the block, or raise LockHeld
    at once (never wait: the second nightly run must not queue behind a stuck first one)."""
    path = lock_path(cfg, dataset, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = _parse(_read_fd(fd)) or Holder()
            raise LockHeld(path, dataset, str(day), holder) from None
        # Details still in the file mean the last holder never reached its release: it died.
        previous = _parse(_read_fd(fd))
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": run_id,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        try:
            yield DayLock(path, dataset, str(day), taken_over_from=previous)
        finally:
            # Empty the file before unlocking, so the next holder knows this run ended cleanly.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
