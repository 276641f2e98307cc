"""What `recon` prints. Three modes, set once by the root command's options:

- normal: a live progress display (rich on a terminal, a plain line every few seconds
  otherwise), a summary per dataset, then the final line;
- `--quiet` (cron): only the final line, and errors;
- `--log-format json` (log collectors): every line is one JSON object.

Expected failures are one line plus a hint; a stack trace only with `--debug`. Progress, logs and
errors go to stderr; the summary and the final line go to stdout.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Literal

from jobs.report import ReportPaths, core_fields
from reconcilers.result import DatasetResult, Outcome

LogFormat = Literal["text", "json"]
VERDICT_STYLE = {"clean": "bold green", "findings": "bold red", "incomplete": "bold yellow"}


@dataclass
class Settings:
    quiet: bool = False
    log_format: LogFormat = "text"
    debug: bool = False
    # Off a terminal (plain and json modes) a progress line at most this often.
    progress_interval_s: float = 10.0

    @property
    def json(self) -> bool:
        return self.log_format == "json"


settings = Settings()
_log_handler: logging.Handler | None = None


def configure(*, quiet: bool = False, log_format: LogFormat = "text", debug: bool = False,
              progress_interval_s: float = 10.0) -> None:
    settings.quiet, settings.log_format, settings.debug = quiet, log_format, debug
    settings.progress_interval_s = progress_interval_s
    global _log_handler
    root = logging.getLogger()
    if _log_handler is not None:
        root.removeHandler(_log_handler)
    _log_handler = _StderrHandler()
    _log_handler.setFormatter(_JsonFormatter() if settings.json else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not debug:
        _log_handler.addFilter(_not_chatty)
    root.addHandler(_log_handler)
    root.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.INFO)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.WARNING)


# Chatty libraries: py4j logs every gateway call, Great Expectations its internals, httpx2 (under
# the pagerduty client) every request, at INFO; the in-process API of `recon demo` every access.
# Their loggers are set to WARNING, and the handler drops their INFO too: some modules set their
# own logger's level when imported, after configure() ran. With --debug they log INFO: their
# DEBUG is one line per gateway call and registry entry (60,000 lines for one small run).
CHATTY = ("py4j", "great_expectations", "httpx2", "httpx", "api_server.access", "uvicorn.error")


def _not_chatty(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not any(
        record.name == n or record.name.startswith(n + ".") for n in CHATTY)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted, not the stream that was current
    when `configure` ran (a redirected or replaced stderr would otherwise be written after close)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {"ts": _ts(record.created), "level": record.levelname.lower(), "logger": record.name,
             "message": record.getMessage()}
        if record.exc_info and settings.debug:
            d["traceback"] = self.formatException(record.exc_info)
        return json.dumps(d, ensure_ascii=False, default=str)


def _ts(epoch: float | None = None) -> str:
    t = datetime.fromtimestamp(time.time() if epoch is None else epoch, timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def emit_json(event: str, stream=None, **fields: Any) -> None:
    line = json.dumps({"ts": _ts(), "event": event, **fields}, ensure_ascii=False, default=str)
    print(line, file=stream or sys.stderr, flush=True)


def info(message: str, **fields: Any) -> None:
    """A progress note for humans (normal mode) or collectors (json mode); nothing when quiet."""
    if settings.json:
        emit_json("info", level="info", message=message, **fields)
    elif not settings.quiet:
        print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- errors


def error(message: str, hint: str | None = None, code: int = Outcome.CONFIG) -> int:
    """Print an expected failure as one line (plus a hint); return the exit code to use."""
    message = _one_line(message)
    if settings.json:
        emit_json("error", level="error", message=message, hint=hint, exit_code=int(code))
    else:
        print(f"error: {message}", file=sys.stderr, flush=True)
        if hint:
            print(f"hint: {hint}", file=sys.stderr, flush=True)
    return int(code)


def unexpected(exc: BaseException, code: int = Outcome.INCOMPLETE) -> int:
    """An exception nobody expected: still one line, the stack trace only with --debug."""
    if settings.debug:
        traceback.print_exception(exc, file=sys.stderr)
    hint = None if settings.debug else "rerun with --debug for the stack trace"
    return error(f"{type(exc).__name__}: {exc}", hint, code)


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ---------------------------------------------------------------- progress


class Progress:
    """Counters the job updates while it reads the API. Thread-safe; cheap to update often.

    Use as a context manager. `update()` adds to the counters, `set()` replaces them (for a source
    that knows totals, such as the replay's spool); the display refreshes itself (rich) or prints a
    line at most every `interval_s` (plain, json; default `settings.progress_interval_s`)."""

    def __init__(self, label: str, total_windows: int | None = None, *, interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, stream=None, tty: bool | None = None):
        self.label = label
        self.total_windows = total_windows
        self.windows = self.pages = self.records = self.bytes = self.retries = 0
        self._interval = settings.progress_interval_s if interval_s is None else interval_s
        self._clock = clock
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._started = self._last = clock()
        is_tty = self._stream.isatty() if tty is None else tty
        self.mode = "off" if settings.quiet else "json" if settings.json else "rich" if is_tty else "plain"
        self._rich = None

    def __enter__(self) -> Progress:
        if self.mode == "rich":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(), TextColumn("windows"),
                TextColumn("· {task.fields[detail]}"), TimeElapsedColumn(),
                console=Console(file=self._stream), transient=False,
            )
            self._task = self._rich.add_task(self.label, total=self.total_windows, detail=self._detail())
            self._rich.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_total(self, total_windows: int) -> None:
        with self._lock:
            self.total_windows = total_windows
            if self._rich:
                self._rich.update(self._task, total=total_windows)

    def update(self, *, windows: int = 0, pages: int = 0, records: int = 0, bytes: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.windows += windows
            self.pages += pages
            self.records += records
            self.bytes += bytes
            self.retries += retries
            self._refresh()

    def set(self, *, windows: int, pages: int, records: int, bytes: int, retries: int) -> None:
        with self._lock:
            self.windows, self.pages, self.records, self.bytes, self.retries = windows, pages, records, bytes, retries
            self._refresh()

    def _refresh(self) -> None:
        if self._rich:
            self._rich.update(self._task, completed=self.windows, detail=self._detail())
            return
        now = self._clock()
        if self.mode != "off" and now - self._last >= self._interval:
            self._last = now
            self._print()

    def snapshot(self) -> dict[str, Any]:
        elapsed = max(self._clock() - self._started, 1e-9)
        return {"label": self.label, "windows": self.windows, "total_windows": self.total_windows,
                "pages": self.pages, "records": self.records, "bytes": self.bytes, "retries": self.retries,
                "elapsed_s": round(elapsed, 1), "records_per_s": round(self.records / elapsed, 1)}

    def line(self) -> str:
        s = self.snapshot()
        total = f"/{s['total_windows']:,}" if s["total_windows"] is not None else ""
        return f"{self.label}: windows {s['windows']:,}{total} · {self._detail()} · {s['elapsed_s']:.0f} s"

    def close(self) -> None:
        with self._lock:
            if self._rich:
                self._rich.update(self._task, completed=self.windows, detail=self._detail())
                self._rich.stop()
                self._rich = None
            elif self.mode in ("plain", "json"):
                self._print(done=True)
            self.mode = "off"

    def _detail(self) -> str:
        s = self.snapshot()
        retries = f" · {s['retries']:,} retries" if s["retries"] else ""
        return f"pages {s['pages']:,} · records {s['records']:,} · {s['records_per_s']:,.0f} rec/s{retries}"

    def _print(self, done: bool = False) -> None:
        if self.mode == "json":
            emit_json("progress", stream=self._stream, done=done, **self.snapshot())
        else:
            print(self.line() + (" · done" if done else ""), file=self._stream, flush=True)


# ---------------------------------------------------------------- results


def final_line(results: list[DatasetResult], paths: Sequence[ReportPaths | None] | Mapping[str, ReportPaths] | None = None) -> str:
    """One line for the whole run, worst first, e.g.
    `FINDINGS trades 2026-10-25: 1,234 findings (null_dropped 1,200, missing_in_api 34) · report: /abs/report.html`."""
    pairs = list(zip(results, _paths_for(results, paths)))
    # Worst first; exit codes are ordered by severity.
    pairs.sort(key=lambda rp: -int(rp[0].outcome))
    return " | ".join(_segment(core_fields(r), p) for r, p in pairs) or "nothing was run"


def print_final(results: list[DatasetResult], paths=None) -> None:
    """The last thing `recon run` prints, in every mode (json: one object on stdout)."""
    if settings.json:
        runs = []
        for r, p in zip(results, _paths_for(results, paths)):
            doc = core_fields(r)
            runs.append({"dataset": r.dataset, "day": r.day, "run_id": r.run_id, "verdict": doc["verdict"],
                         "exit_code": doc["exit_code"], "summary": doc["summary"], "by_kind": doc["totals"]["by_kind"],
                         "report": str(p.html.resolve()) if p else None})
        worst = max((r.outcome for r in results), default=Outcome.CLEAN)
        emit_json("final", stream=sys.stdout, verdict=worst.verdict, exit_code=int(worst), runs=runs)
    else:
        print(final_line(results, paths), flush=True)


def print_summary(result: DatasetResult, paths: ReportPaths | None = None) -> None:
    """The per-dataset summary of normal mode (nothing when quiet)."""
    if settings.quiet:
        return
    doc = core_fields(result)
    if settings.json:
        emit_json("summary", dataset=result.dataset, day=result.day, run_id=result.run_id, verdict=doc["verdict"],
                  summary=doc["summary"], counts=doc["counts"], hours_with_gaps=doc["totals"]["hours_with_gaps"],
                  report=str(paths.html.resolve()) if paths else None)
        return
    print_report_summary(doc, paths.html if paths else None)


def print_report_summary(doc: dict[str, Any], html_path=None) -> None:
    """A report (the JSON document, or the same fields from a result) as a terminal panel."""
    from rich.console import Console, Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    style = VERDICT_STYLE.get(doc["verdict"], "bold")
    parts: list[Any] = [Text(doc["summary"], style="bold")]
    rows = doc["rows"]
    # hourly has one entry per hour of the day once the comparison has counted the rows.
    counted = f"store rows {rows['store']:,} · API rows {rows['api']:,}" if doc["hourly"] else "rows not counted"
    parts.append(Text(f"{counted} · "
                      f"API pages {doc['api_stats']['pages']:,}, retries {doc['api_stats']['retries']:,}, "
                      f"windows failed {doc['api_stats']['windows_failed']:,}"))
    cells = sorted(((n, k, f) for k, fs in doc["counts"].items() for f, n in fs.items() if n), key=lambda c: -c[0])
    if cells:
        t = Table("kind", "field", "count", box=None, padding=(0, 2), title="top findings", title_justify="left")
        for n, k, f in cells[:8]:
            t.add_row(k, "(whole record)" if f == "*" else f, f"{n:,}")
        if len(cells) > 8:
            t.add_row("...", f"{len(cells) - 8} more kind/field pairs", "")
        parts.append(t)
    short = [h for h in doc["hourly"] if h["gap"] > 0]
    if short:
        shown = ", ".join(f"{h['hour_utc'][11:16]}Z −{h['gap']:,}" for h in short[:6])
        parts.append(Text(f"hours where the API is short: {shown}" + (" ..." if len(short) > 6 else "")))
    failed = [e for e in doc["expectations"] if not e["success"]]
    if failed:
        parts.append(Text("failed expectations: " + ", ".join(
            f"{e['side']} {e['expectation']}({e['column'] or ''})" for e in failed[:5])))
    if html_path:
        parts.append(Text(f"report: {html_path}"))
    title = f"[{style}]{doc['verdict'].upper()}[/] {doc['dataset']} {doc['day']} · run {doc['run_id']}"
    _console().print(Panel(Group(*parts), title=title, title_align="left", border_style=style.split()[-1],
                           expand=False))


def print_history(rows: list[dict[str, Any]]) -> None:
    """`recon history`: newest first, with the change in findings since the previous run of the
    same dataset and day."""
    if settings.json:
        for r in rows:
            emit_json("run", stream=sys.stdout, **r)
        return
    from rich.table import Table

    t = Table(title="trade-recon runs (newest first)", title_justify="left")
    for col, just in (("finished", "left"), ("dataset", "left"), ("day", "left"), ("verdict", "left"),
                      ("findings", "right"), ("vs prev", "right"), ("store rows", "right"), ("API rows", "right"),
                      ("top kinds", "left"), ("run", "left")):
        t.add_column(col, justify=just, no_wrap=col != "top kinds")
    for i, r in enumerate(rows):
        prev = next((o for o in rows[i + 1:] if (o["dataset"], o["day"]) == (r["dataset"], r["day"])), None)
        kinds = sorted(((n, k) for k, n in r["counts"].items() if n), reverse=True)
        top = ", ".join(f"{k} {n:,}" for n, k in kinds[:2]) if kinds else (_one_line(r["error"], 60) if r["error"] else "")
        t.add_row(
            (r["finished_at"] or r["recorded_at"] or "")[:19].replace("T", " "),
            r["dataset"], r["day"],
            f"[{VERDICT_STYLE.get(r['verdict'], 'bold')}]{r['verdict']}[/]",
            f"{r['findings']:,}" if r["verdict"] in ("clean", "findings") else "-",
            _trend(r, prev),
            f"{r['store_rows']:,}", f"{r['api_rows']:,}", top, r["run_id"],
        )
    _console().print(t)


def _trend(row: dict[str, Any], prev: dict[str, Any] | None) -> str:
    data = ("clean", "findings")
    if prev is None or row["verdict"] not in data or prev["verdict"] not in data:
        return ""
    d = row["findings"] - prev["findings"]
    if d > 0:
        return f"[red]▲ +{d:,}[/]"
    if d < 0:
        return f"[green]▼ {d:,}[/]"
    return "="


def _console():
    from rich.console import Console

    # Off a terminal (cron mail, CI logs, captured output) rich would wrap at 80 columns.
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160, highlight=False)


def _segment(doc: dict[str, Any], p: ReportPaths | None) -> str:
    where = f" · report: {p.html.resolve()}" if p else " · no report written"
    return f"{doc['verdict'].upper()} {doc['dataset']} {doc['day']}: {doc['summary']}{where}"


def _paths_for(results: list[DatasetResult], paths) -> list[ReportPaths | None]:
    if paths is None:
        return [None] * len(results)
    if isinstance(paths, Mapping):
        return [paths.get(r.dataset) for r in results]
    paths = list(paths)
    return paths + [None] * (len(results) - len(paths))

