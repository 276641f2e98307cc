"""The API side of a run, in Spark: plan windows over the delivery day, page through them in
parallel tasks (`mapInArrow`), and bring back only one status row per window to the driver.

Each task pages through a few consecutive windows and spools every decoded page into one
Parquet file per window (`spool.py`), in a directory of this run; what comes back through
Spark is only the status row of each window (pages, records, retries, bytes, error), and while
the tasks run the driver shows their progress from small files they keep in the spool. The API
DataFrame is then a Parquet read of the spool, typed by `api_schema(ds)`: every page is fetched
exactly once however many actions the comparison and the expectations run, the rows never pass
through the driver, and the JVM neither converts nor caches them (caching 1M rows cost more CPU
than fetching them). A window that fails is reported through its status row, never as a task
crash: the driver decides that the run is incomplete and says why in one line.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from jobs import console
from jobs.api_client import (ClientSettings, Window, WindowFailed, WindowStatus, new_session, preflight,
                             read_window)
from jobs.config import Config, ConfigError
from jobs.spool import read_progress
from reconcilers.contract import Dataset, day_bounds_utc
from reconcilers.result import ApiStats
from reconcilers.schemas import api_schema

log = logging.getLogger("trade_recon.replay")

STATUS_TYPE = T.StructType([
    T.StructField("window", T.IntegerType()),
    T.StructField("start", T.StringType()),
    T.StructField("end", T.StringType()),
    T.StructField("ok", T.BooleanType()),
    T.StructField("pages", T.LongType()),
    T.StructField("records", T.LongType()),
    T.StructField("retries", T.LongType()),
    T.StructField("bytes", T.LongType()),
    T.StructField("error", T.StringType()),
])
US = 1_000_000


def plan_windows(day: date, minutes: int) -> list[Window]:
    """Consecutive [start, end) windows covering the delivery day's UTC span exactly (23, 24 or
    25 hours); the last one is shorter when the span is not a multiple of `minutes`."""
    start, end = day_bounds_utc(day)
    step = timedelta(minutes=minutes)
    out, t = [], start
    while t < end:
        nxt = min(t + step, end)
        out.append(Window(len(out), int(t.timestamp()) * US, int(nxt.timestamp()) * US))
        t = nxt
    return out


def tls_verify(cfg: Config, warn: bool = True) -> bool | str:
    tls = cfg.api.tls
    if not tls.verify:
        if warn:
                log.warning("TLS certificate verification is OFF for %s (api.tls.verify: false); "
                        "anyone on the path can read and alter what the job compares", cfg.api.base_url)
        return False
    if tls.ca_bundle is not None:
        bundle = cfg.resolve(tls.ca_bundle)
        if not bundle.is_file():
            raise ConfigError(f"'api.tls.ca_bundle': no such file {bundle}")
        return str(bundle)
    return True


def client_settings(cfg: Config, ds: Dataset, started: float, verify: bool | str = True) -> ClientSettings:
    api, retry = cfg.api, cfg.api.retry
    return ClientSettings(
        base_url=api.base_url, path=ds.path, key_header=api.api_key_header, page_size=api.page_size,
        connect_timeout_s=api.connect_timeout_s, read_timeout_s=api.read_timeout_s,
        max_attempts=retry.max_attempts, backoff_s=retry.backoff_s, backoff_max_s=retry.backoff_max_s,
        retry_after_cap_s=retry.retry_after_cap_s, budget_s=api.run_budget_s,
        deadline=started + api.run_budget_s, verify=verify,
    )


def task_count(spark: SparkSession, windows: int) -> int:
    """A few tasks per core, each paging through several consecutive windows on one session:
    enough tasks to balance uneven windows, few enough that the per-task cost (a Python
    worker round trip, a session, a TCP connection) stays small next to the paging."""
    return max(1, min(windows, 2 * spark.sparkContext.defaultParallelism))


def _fetch_windows(settings: ClientSettings, api_key: str, ds_name: str, spool: str):
    """The function each task runs: windows in, one status row per window out; the pages go
    to the spool."""

    def run(batches):
        from pyspark.sql.pandas.types import to_arrow_schema

        from jobs.api_decode import PageDecoder
        from jobs.spool import WindowFile, write_progress
        from reconcilers.contract import dataset

        decoder = PageDecoder(dataset(ds_name))
        status_schema = to_arrow_schema(STATUS_TYPE)
        with new_session(settings, api_key) as session:
            for b in batches:
                for idx, start, end in zip(*(b.column(c).to_pylist() for c in ("window", "start_us", "end_us"))):
                    w = Window(idx, start, end)
                    st = WindowStatus(w.index, w.start, w.end)
                    try:
                        with WindowFile(spool, w.index, decoder.schema) as out:
                            for page in read_window(session, settings, decoder, w, st, ds_name):
                                out.add(page)
                                write_progress(spool, w.index, st)
                    except WindowFailed as e:
                        st.ok, st.error = False, str(e)
                    except Exception as e:  # noqa: BLE001 - a bug must still end as one status line
                        st.ok, st.error = False, f"{ds_name} {w.label()}: {type(e).__name__}: {e}"
                    if st.error and api_key:
                        st.error = st.error.replace(api_key, "***")
                    write_progress(spool, w.index, st, done=True)
                    yield pa.RecordBatch.from_pylist([asdict(st)], schema=status_schema)

    return run


@dataclass
class Replay:
    """The API side of one dataset and day: rows (read from the spool), statistics and what
    failed. `release()` removes the spool once the run no longer reads the rows."""

    df: DataFrame | None
    stats: ApiStats
    failures: list[str] = field(default_factory=list)
    spool: Path | None = None

    @property
    def complete(self) -> bool:
        return not self.failures

    @property
    def error(self) -> str | None:
        if not self.failures:
            return None
        more = len(self.failures) - 1
        return self.failures[0] + (f" (and {more} more window{'s' if more > 1 else ''} failed)" if more else "")

    def release(self) -> None:
        if self.spool is not None:
            remove_spool(self.spool)
            self.spool = None


SPOOL_PREFIX = "recon-replay-"
# A spool this old belongs to a run that was killed before it could remove it.
STALE_SPOOL_S = 24 * 3600


# The spools of this process's running replays, for `remove_live_spools` (SIGTERM).
_LIVE: set[Path] = set()


def remove_spool(spool: Path) -> None:
    shutil.rmtree(spool, ignore_errors=True)
    _LIVE.discard(spool)


def remove_live_spools() -> None:
    """Every spool of this process still in use: what a terminated run must not leave behind."""
    for spool in list(_LIVE):
        remove_spool(spool)


def new_spool(cfg: Config, ds: Dataset, day: date) -> Path:
    base = cfg.resolve(cfg.api.spool_dir) if cfg.api.spool_dir else Path(tempfile.gettempdir())
    try:
        base.mkdir(parents=True, exist_ok=True)
        spool = Path(tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{ds.name}-{day}-", dir=base))
        _LIVE.add(spool)
    except OSError as e:
        raise ConfigError(f"'api.spool_dir': cannot create a spool directory in {base}: {e.strerror}") from None
    for old in base.glob(f"{SPOOL_PREFIX}*"):
        try:
            if old != spool and time.time() - old.stat().st_mtime > STALE_SPOOL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass  # another run removed it first
    return spool


# How often the driver reads the spool's progress files while the tasks run.
PROGRESS_POLL_S = 0.5


@contextmanager
def show_progress(spool: Path, label: str, windows: int, probe: WindowStatus) -> Iterator[None]:
    """A live display of the replay (`console.Progress`) fed from the spool's progress files by a
    daemon thread while the body runs; one last reading when it ends, however it ends. The
    preflight's retries and bytes count too, as in the run's `ApiStats`."""
    with console.Progress(label, windows) as progress:
        if progress.mode == "off":
            yield
            return

        def poll() -> None:
            p = read_progress(spool)
            progress.set(windows=p.windows_done, pages=p.pages, records=p.records,
                         bytes=p.bytes + probe.bytes, retries=p.retries + probe.retries)

        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(PROGRESS_POLL_S):
                poll()

        watcher = threading.Thread(target=loop, name="replay-progress", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
            poll()


@dataclass
class Preflight:
    """What the preflight leaves the replay: the client settings (the run budget counts from the
    preflight on), the key and the windows, the probe's retries and bytes and, when the API did not
    answer usably, the failed Replay that says why."""

    settings: ClientSettings
    api_key: str = field(repr=False)  # a secret: never in a repr, a log line or a traceback
    windows: list[Window]
    probe: WindowStatus
    failed: Replay | None = None


def preflight_api(cfg: Config, ds: Dataset, day: date) -> Preflight:
    """The one small request the driver makes before any Spark work (`api_client.preflight`):
    a down API, a rejected key or a TLS problem ends the dataset's run before Spark is even
    started."""
    api_key = cfg.api.api_key.read("api.api_key")
    windows = plan_windows(day, cfg.api.window_minutes)
    settings = client_settings(cfg, ds, time.time(), tls_verify(cfg))
    probe = WindowStatus(windows[0].index, windows[0].start, windows[0].end)
    try:
        preflight(settings, api_key, windows[0], ds.name, probe)
    except WindowFailed as e:
        stats = ApiStats(windows=len(windows), windows_failed=len(windows), retries=probe.retries, bytes=probe.bytes)
        return Preflight(settings, api_key, windows, probe, Replay(None, stats, [str(e).replace(api_key, "***")]))
    return Preflight(settings, api_key, windows, probe)


def replay_api(spark: SparkSession, cfg: Config, ds: Dataset, day: date, checked: Preflight | None = None) -> Replay:
    """Every window of the day, in Spark tasks, after the preflight: `checked`, one that already
    passed, or else it runs first."""
    pre = checked or preflight_api(cfg, ds, day)
    if pre.failed is not None:
        return pre.failed
    settings, api_key, windows, probe = pre.settings, pre.api_key, pre.windows, pre.probe
    stats = ApiStats(windows=len(windows), retries=probe.retries, bytes=probe.bytes)

    spool = new_spool(cfg, ds, day)
    rows = [(w.index, w.start_us, w.end_us) for w in windows]
    plan = spark.createDataFrame(spark.sparkContext.parallelize(rows, task_count(spark, len(rows))),
                                 "window int, start_us long, end_us long")
    try:
        with show_progress(spool, f"{ds.name} {day}", len(windows), probe):
            status = [r.asDict() for r in plan.mapInArrow(_fetch_windows(settings, api_key, ds.name, str(spool)),
                                                          STATUS_TYPE).collect()]
    except BaseException:
        remove_spool(spool)
        raise

    by_window = {s["window"]: s for s in status}
    failures = []
    for w in windows:
        s = by_window.get(w.index)
        if s is None:
            failures.append(f"{ds.name} {w.label()}: no status came back from its task")
            stats.windows_failed += 1
            continue
        for k in ("pages", "records", "retries", "bytes"):
            setattr(stats, k, getattr(stats, k) + s[k])
        if not s["ok"]:
            stats.windows_failed += 1
            failures.append(s["error"])
    if failures:
        remove_spool(spool)
        return Replay(None, stats, failures)
    return Replay(spark.read.schema(api_schema(ds)).parquet(str(spool)), stats, [], spool)
