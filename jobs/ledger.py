"""The run ledger: one SQLite row per run and dataset, `<report.dir>/<env>/ledger.sqlite`.

WAL mode lets readers (`recon history`) run while a job writes, and several jobs (one per
dataset or day) write concurrently: each write is one short IMMEDIATE transaction that waits
for the lock instead of failing.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from jobs.config import Config
from jobs.report import FILE_MODE, ReportPaths, env_dir, make_dirs
from reconcilers.result import DatasetResult

LEDGER_NAME = "ledger.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = ("""
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT    NOT NULL,
    env         TEXT    NOT NULL,
    dataset     TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    recorded_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    outcome     INTEGER NOT NULL,
    verdict     TEXT    NOT NULL,
    findings    INTEGER NOT NULL,
    expectations_failed INTEGER NOT NULL,
    counts      TEXT    NOT NULL,  -- JSON: finding kind -> total
    store_rows  INTEGER NOT NULL,
    api_rows    INTEGER NOT NULL,
    report_path TEXT,
    error       TEXT,
    PRIMARY KEY (env, dataset, day, run_id)
)""", "CREATE INDEX IF NOT EXISTS runs_by_time ON runs (recorded_at)")

COLUMNS = ("run_id", "env", "dataset", "day", "started_at", "finished_at", "recorded_at", "outcome", "verdict",
           "findings", "expectations_failed", "counts", "store_rows", "api_rows", "report_path", "error")


def ledger_path(cfg: Config) -> Path:
    return env_dir(cfg) / LEDGER_NAME


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), never implicit.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch {path} to WAL mode")
        conn.execute("PRAGMA synchronous = NORMAL")
        with _transaction(conn):
            # Checked under the write lock, so two first writers do not both create the schema.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"{path} has ledger schema {version}; this trade-recon reads {SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection):
    # IMMEDIATE takes the write lock up front, so a busy ledger makes writers wait, never deadlock.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def record_run(cfg: Config, result: DatasetResult, paths: ReportPaths | None) -> None:
    """Add (or, for the same run id, replace) the row of one dataset's run."""
    path = ledger_path(cfg)
    make_dirs(path.parent)
    # Created here, not by SQLite, so that the file mode does not depend on the umask.
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    counts = {k: result.total(k) for k in result.counts}
    row = (
        result.run_id, result.env, result.dataset, result.day, result.started_at, result.finished_at,
        int(result.outcome), result.verdict, result.data_findings, result.expectation_failures,
        json.dumps(counts, sort_keys=True), result.store_rows, result.api_rows,
        str(paths.json) if paths else None, result.error,
    )
    with closing(_connect(path)) as conn, _transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO runs (run_id, env, dataset, day, started_at, finished_at, outcome, verdict, "
            "findings, expectations_failed, counts, store_rows, api_rows, report_path, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )


def history(cfg: Config, dataset: str | None = None, day: str | None = None, last: int = 20) -> list[dict[str, Any]]:
    """The most recent runs, newest first, optionally for one dataset and/or day."""
    path = ledger_path(cfg)
    if not path.exists():
        return []
    where, args = ["env = ?"], [cfg.env]
    if dataset:
        where.append("dataset = ?")
        args.append(dataset)
    if day:
        where.append("day = ?")
        args.append(str(day))
    sql = (f"SELECT {', '.join(COLUMNS)} FROM runs WHERE {' AND '.join(where)} "
           "ORDER BY recorded_at DESC, rowid DESC LIMIT ?")
    with closing(_connect(path)) as conn:
        rows = conn.execute(sql, [*args, max(0, int(last))]).fetchall()
    out = []
    for r in rows:
        d = dict(zip(COLUMNS, r))
        d["counts"] = json.loads(d["counts"])
        out.append(d)
    return out
