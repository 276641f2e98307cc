"""The API side of a run, in Spark: plan windows over the delivery day, page through them in
parallel tasks (`mapInArrow`), and bring back only one status row per window to the driver.

Each task yields the decoded pages of its windows, then one status row per window (pages,
records, retries, bytes, error). Pages and status rows share one output with an extra `_status`
column that is null on data rows. The output is persisted and materialised by collecting the
status rows, so every page is fetched exactly once however many actions the comparison runs.
A window that fails is reported through its status row, never as a task crash: the driver
decides that the run is incomplete and says why in one line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.api_client import (ClientSettings, Window, WindowFailed, WindowStatus, new_session, preflight,
                             read_window)
from jobs.config import Config, ConfigError
from reconcilers.contract import Dataset, day_bounds_utc
from reconcilers.result import ApiStats
from reconcilers.schemas import api_schema

log = logging.getLogger("trade_recon.replay")

STATUS = "_status"
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


def tls_verify(cfg: Config) -> bool | str:
    tls = cfg.api.tls
    if not tls.verify:
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


def output_schema(ds: Dataset) -> T.StructType:
    return api_schema(ds).add(T.StructField(STATUS, STATUS_TYPE, True))


def _fetch_windows(settings: ClientSettings, api_key: str, ds_name: str):
    """The function each task runs: windows in, page batches and status rows out."""

    def run(batches):
        from pyspark.sql.pandas.types import to_arrow_schema

        from jobs.api_decode import PageDecoder
        from reconcilers.contract import dataset

        ds = dataset(ds_name)
        decoder = PageDecoder(ds)
        schema = to_arrow_schema(output_schema(ds))
        status_type = schema.field(STATUS).type
        with new_session(settings, api_key) as session:
            for b in batches:
                for idx, start, end in zip(*(b.column(c).to_pylist() for c in ("window", "start_us", "end_us"))):
                    w = Window(idx, start, end)
                    st = WindowStatus(w.index, w.start, w.end)
                    try:
                        for page in read_window(session, settings, decoder, w, st, ds_name):
                            yield pa.RecordBatch.from_arrays(
                                page.columns + [pa.nulls(page.num_rows, status_type)], schema=schema)
                    except WindowFailed as e:
                        st.ok, st.error = False, str(e)
                    except Exception as e:  # noqa: BLE001 - a bug must still end as one status line
                        st.ok, st.error = False, f"{ds_name} {w.label()}: {type(e).__name__}: {e}"
                    if st.error and api_key:
                        st.error = st.error.replace(api_key, "***")
                    yield _status_batch(schema, st)

    return run


def _status_batch(schema: pa.Schema, st: WindowStatus) -> pa.RecordBatch:
    cols = []
    for f in schema:
        if f.name == STATUS:
            cols.append(pa.array([asdict(st)], type=f.type))
        elif f.name == "_window":
            cols.append(pa.array([st.window], type=f.type))
        elif not f.nullable:
            cols.append(pa.array([0], type=f.type))
        else:
            cols.append(pa.nulls(1, f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


@dataclass
class Replay:
    """The API side of one dataset and day: rows (persisted), statistics and what failed."""

    df: DataFrame | None
    stats: ApiStats
    failures: list[str] = field(default_factory=list)
    _persisted: DataFrame | None = None

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
        if self._persisted is not None:
            self._persisted.unpersist()
            self._persisted = None


def replay_api(spark: SparkSession, cfg: Config, ds: Dataset, day: date) -> Replay:
    api_key = cfg.api.api_key.read("api.api_key")
    verify = tls_verify(cfg)
    windows = plan_windows(day, cfg.api.window_minutes)
    settings = client_settings(cfg, ds, time.time(), verify)
    probe = WindowStatus(windows[0].index, windows[0].start, windows[0].end)
    try:
        preflight(settings, api_key, windows[0], ds.name, probe)
    except WindowFailed as e:
        stats = ApiStats(windows=len(windows), windows_failed=len(windows), retries=probe.retries, bytes=probe.bytes)
        return Replay(None, stats, [str(e).replace(api_key, "***")])
    stats = ApiStats(windows=len(windows), retries=probe.retries, bytes=probe.bytes)

    rows = [(w.index, w.start_us, w.end_us) for w in windows]
    plan = spark.createDataFrame(spark.sparkContext.parallelize(rows, task_count(spark, len(rows))),
                                 "window int, start_us long, end_us long")
    out = plan.mapInArrow(_fetch_windows(settings, api_key, ds.name), output_schema(ds))
    out = out.persist(StorageLevel.MEMORY_AND_DISK)
    status = [r.asDict() for r in out.where(F.col(STATUS).isNotNull()).select(f"{STATUS}.*").collect()]

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
    df = out.where(F.col(STATUS).isNull()).drop(STATUS)
    return Replay(df, stats, failures, out)
