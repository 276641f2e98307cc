"""Backfill: reconcile a range of delivery days with one Spark session, and the trailing
re-check of `recon run --recheck K` (the same loop over the K days before a day, and the day).

- Resumable: a dataset and day whose latest run in the ledger is clean is skipped unless forced,
  so a re-run after an interruption continues where it stopped.
- `parallel_days` days run at once in threads that share the session (Spark accepts jobs from
  several threads); each dataset and day is under its own lock, as in `recon run`.
- Ctrl-C (SIGINT) once: start no new day, let the running days finish and publish. Twice:
  abandon the running days: their Spark jobs are cancelled and nothing of them is published
  (no report, ledger row or alert); their locks are released. Either way the exit code is 130
  and a re-run picks up every day not finished.
"""

from __future__ import annotations

import sys
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from jobs import console
from jobs.config import Config, ConfigError
from jobs.interrupt import INTERRUPTED, Stop, handle_signals
from jobs.spark import LazySession
from reconcilers.contract import Dataset, dataset
from reconcilers.result import DatasetResult, Outcome

MAX_DAYS = 366


@dataclass
class Entry:
    """What happened to one dataset on one day."""

    day: date
    dataset: str
    status: str  # a verdict, or "skipped" (clean before), "not run" (interrupted), "abandoned"
    outcome: Outcome | None = None  # None when nothing ran
    result: DatasetResult | None = None
    paths: Any = None
    note: str = ""


def day_range(first: date, last: date) -> list[date]:
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    n = (last - first).days + 1
    if n > MAX_DAYS:
        raise ConfigError(f"{n} days from {first} to {last}: at most {MAX_DAYS} per backfill")
    return [first + timedelta(days=i) for i in range(n)]


def latest_is_clean(cfg: Config, name: str, day: date) -> bool:
    from jobs.ledger import history

    rows = history(cfg, dataset=name, day=day.isoformat(), last=1)
    return bool(rows) and rows[0]["outcome"] == int(Outcome.CLEAN)


def run_one_day(session: LazySession, cfg: Config, day: date, datasets: list[Dataset], force: bool,
                stop: Stop) -> list[Entry]:
    """Every dataset of one day. A day that started is finished (or abandoned) as a whole."""
    from jobs.lock import LockHeld, day_lock
    from jobs.run import new_run_id, publish, run_day

    run_id = new_run_id()
    entries = []
    for ds in datasets:
        if stop.abandon.is_set():
            entries.append(Entry(day, ds.name, "abandoned", note="interrupted before it started"))
            continue
        if not force and latest_is_clean(cfg, ds.name, day):
            entries.append(Entry(day, ds.name, "skipped", note="clean in an earlier run"))
            continue
        try:
            with day_lock(cfg, ds.name, day, run_id):
                result = run_day(session.get, cfg, ds, day, run_id)
                if stop.abandon.is_set():
                    entries.append(Entry(day, ds.name, "abandoned", note="interrupted; nothing published"))
                    continue
                paths = publish(cfg, result)
        except LockHeld as e:
            # Another run owns this day's report and incident: touch neither.
            entries.append(Entry(day, ds.name, Outcome.LOCKED.verdict, Outcome.LOCKED, note=str(e)))
            continue
        entries.append(Entry(day, ds.name, result.verdict, result.outcome, result, paths, note=result.error or ""))
        console.info(f"{ds.name} {day}: {result.verdict}" + (f" ({result.error})" if result.error else ""))
    return entries


def backfill(cfg: Config, first: date, last: date, names: list[str], *, force: bool = False,
             parallel_days: int = 1, spark=None, stop: Stop | None = None) -> int:
    """Reconcile `names` for every day from `first` to `last`; print the table; return the exit
    code (the worst day's, or 130 when interrupted)."""
    from jobs import alerts
    from jobs.run import check_secrets, preload_expectations

    days = day_range(first, last)
    if parallel_days < 1:
        raise ConfigError("--parallel-days must be at least 1")
    datasets = [dataset(n) for n in names]
    # What earlier runs could not deliver goes first, as in `recon run`.
    alerts.flush_outbox(cfg)
    check_secrets(cfg)
    stop = stop or Stop()
    preload_expectations(cfg)
    session = LazySession(cfg, spark, on_start=stop.attach)
    entries: list[Entry] = []
    try:
        with handle_signals(stop):
            entries = _run_days(session, cfg, days, datasets, force, parallel_days, stop)
    finally:
        session.close()
    code = INTERRUPTED if stop.stopping.is_set() else max(
        (int(e.outcome) for e in entries if e.outcome is not None), default=int(Outcome.CLEAN))
    print_table(entries)
    ran = [e for e in entries if e.result is not None]
    if console.settings.json:
        console.print_final([e.result for e in ran], [e.paths for e in ran])
    else:
        print(summary_line(first, last, entries, code), flush=True)
    return code


def summary_line(first: date, last: date, entries: list[Entry], code: int) -> str:
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.status] = counts.get(e.status, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"backfill {first}..{last}: {parts or 'nothing to do'} · exit {code}"


def recheck_days(cfg: Config, day: date, k: int, names: list[str], **kw) -> int:
    """`recon run --day D --recheck K`: D and the K days before it, re-run even when clean (a
    trade cancelled after the nightly run changes a day that was clean)."""
    return backfill(cfg, day - timedelta(days=k), day, names, force=True, **kw)


def _run_days(session: LazySession, cfg, days, datasets, force, parallel_days, stop: Stop) -> list[Entry]:
    by_day: dict[date, list[Entry]] = {}
    pending = list(days)
    running: dict[Future, date] = {}
    with ThreadPoolExecutor(max_workers=parallel_days, thread_name_prefix="recon-day") as pool:
        while pending or running:
            while pending and len(running) < parallel_days and not stop.stopping.is_set():
                day = pending.pop(0)
                running[pool.submit(run_one_day, session, cfg, day, datasets, force, stop)] = day
            if stop.stopping.is_set():
                for day in pending:
                    by_day[day] = [Entry(day, ds.name, "not run", note="interrupted") for ds in datasets]
                pending = []
            if not running:
                break
            # A short timeout keeps the main thread responsive to Ctrl-C.
            done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                day = running.pop(fut)
                try:
                    by_day[day] = fut.result()
                except Exception as e:  # noqa: BLE001 - a day's failure must not lose the others' results
                    by_day[day] = [Entry(day, ds.name, Outcome.INCOMPLETE.verdict, Outcome.INCOMPLETE,
                                         note=f"{type(e).__name__}: {e}") for ds in datasets]
    return [e for day in sorted(by_day) for e in by_day[day]]


def print_table(entries: list[Entry]) -> None:
    """The days and their verdicts (stdout; one JSON object per row with --log-format json)."""
    if console.settings.json:
        for e in entries:
            console.emit_json("backfill_day", stream=sys.stdout, day=e.day.isoformat(), dataset=e.dataset,
                              status=e.status, exit_code=None if e.outcome is None else int(e.outcome),
                              findings=e.result.data_findings if e.result else None,
                              report=str(e.paths.html.resolve()) if e.paths else None, note=e.note)
        return
    if console.settings.quiet:
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="trade-recon backfill", title_justify="left")
    for col, just in (("day", "left"), ("dataset", "left"), ("verdict", "left"), ("findings", "right"),
                      ("note", "left")):
        t.add_column(col, justify=just, no_wrap=col != "note")
    for e in entries:
        style = console.VERDICT_STYLE.get(e.status, "dim")
        findings = f"{e.result.data_findings:,}" if e.result and e.status in ("clean", "findings") else ""
        t.add_row(e.day.isoformat(), e.dataset, f"[{style}]{e.status}[/]", findings, _short(e.note))
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160, highlight=False).print(t)


def _short(text: str, limit: int = 90) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
