"""One run of the job for one delivery day: per dataset, read the store, replay the API in Spark,
compare, check expectations, then publish (report, run ledger, PagerDuty) and print.

`run_day` is the job for one dataset; it always returns a `DatasetResult` (an unreadable API
window, a missing partition or a Spark failure become INCOMPLETE with a one-line `error`, a bad
secret or setting becomes CONFIG) so that every outcome is reported and alerted the same way.
`run` drives the datasets of a day and returns the exit code: the worst outcome.
"""

from __future__ import annotations

import importlib
import logging
import re
import secrets
import threading
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from typing import Iterator

from jobs import console
from jobs.config import Config, ConfigError
from jobs.errors import IncompleteRun
from jobs.replay import Replay, plan_windows, preflight_api, replay_api, tls_verify
from jobs.store_reader import check_store, read_store
from reconcilers.contract import Dataset, dataset
from reconcilers.result import DatasetResult, Outcome

log = logging.getLogger("trade_recon.run")


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@contextmanager
def _stage(timings: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - t0, 3)


def run_metadata(cfg: Config, ds: Dataset, day: date, run_id: str) -> dict:
    from jobs.report import versions

    return {
        "run_id": run_id,
        "config_fingerprint": cfg.fingerprint(),
        "versions": versions(),
        "store": {"format": cfg.store.format, "path": str(cfg.resolve(cfg.store.path)) if cfg.store.format == "parquet"
                  else None},
        "api": {"base_url": cfg.api.base_url, "page_size": cfg.api.page_size, "window_minutes": cfg.api.window_minutes,
                "windows": len(plan_windows(day, cfg.api.window_minutes))},
        "spark_master": cfg.spark.master,
    }


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


_PARQUET_FILE = re.compile(r"((?:file:)?/[^\s,;'\"]+\.parquet)")


_CAUSED_BY = re.compile(r"^\s*Caused by: (.+)$", re.M)


def spark_failure(ds: Dataset, exc: Exception) -> str:
    """A Spark/py4j failure as one line: the first line of the JVM message, or its root cause
    (the last `Caused by:`) where that line only says which py4j call failed; naming the file
    when a Parquet file could not be read; never the Java stack."""
    text = str(exc).strip()
    head = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    causes = _CAUSED_BY.findall(text)
    if causes and head.startswith("An error occurred while calling"):
        head = causes[-1].strip()
    found = _PARQUET_FILE.search(text)
    if found:
        path = re.sub(r"^file:/*", "/", found.group(1))  # Spark says file:///abs/path
        return _one_line(f"{ds.name}: store file {path} could not be read: {head}")
    return _one_line(f"{ds.name}: the Spark job failed: {type(exc).__name__}: {head}")


def run_day(spark, cfg: Config, ds: Dataset, day: date, run_id: str) -> DatasetResult:
    """Reconcile one dataset for one delivery day. `spark` is a session, or a function that
    returns one: it is called only once the API has answered the preflight and the store's
    partition has passed its checks, so a down API or a missing partition fails the run without
    Spark being started for it."""
    from expectations.runner import run_suites
    from reconcilers.compare import compare

    result = DatasetResult(dataset=ds.name, day=day.isoformat(), env=cfg.env, run_id=run_id, started_at=_now())
    result.metadata = run_metadata(cfg, ds, day, run_id)
    timings = result.timings_s
    replay: Replay | None = None
    t0 = time.perf_counter()
    try:
        with _stage(timings, "api_preflight"):
            checked = preflight_api(cfg, ds, day)
        if checked.failed is not None:
            result.api_stats = checked.failed.stats
            raise IncompleteRun(checked.failed.error)
        check_store(cfg, ds, day)
        if callable(spark):
            with _stage(timings, "spark_start"):  # ~0 once an earlier dataset started it
                spark = spark()
        with _stage(timings, "store_read"):
            store_df = read_store(spark, cfg, ds, day)
        console.info(f"{ds.name} {day}: replaying the API ({result.metadata['api']['windows']} windows)")
        with _stage(timings, "api_replay"):
            replay = replay_api(spark, cfg, ds, day, checked)
        result.api_stats = replay.stats
        if not replay.complete:
            raise IncompleteRun(replay.error)
        console.info(f"{ds.name} {day}: {replay.stats.records:,} API records in {replay.stats.pages:,} pages; comparing")
        with _stage(timings, "compare"):
            cmp = compare(store_df, replay.df, ds, day=day, samples_per_kind_field=cfg.report.samples_per_kind_field)
        result.store_rows, result.api_rows = cmp.store_rows, cmp.api_rows
        result.counts, result.hourly, result.samples = cmp.counts, cmp.hourly, cmp.samples
        if cfg.expectations.enabled:
            with _stage(timings, "expectations"):
                result.expectations = run_suites(store_df, replay.df, ds, day, cfg.expectations)
    except IncompleteRun as e:
        result.outcome, result.error = Outcome.INCOMPLETE, _one_line(e)
    except ConfigError as e:
        result.outcome, result.error = Outcome.CONFIG, _one_line(e)
    except Exception as e:  # noqa: BLE001 - Spark/py4j failures: one line, the stack only in the debug log
        log.debug("run failed", exc_info=True)
        result.outcome, result.error = Outcome.INCOMPLETE, spark_failure(ds, e)
    finally:
        if replay is not None:
            replay.release()
        timings["total"] = round(time.perf_counter() - t0, 3)
        result.finished_at = _now()
    result.decide()
    return result


def publish(cfg: Config, result: DatasetResult):
    """Report, ledger row and alert for one result. None of them may change the exit code;
    each failure is logged in one line."""
    from jobs import alerts, ledger
    from jobs.report import report_url, write_report

    paths = None
    try:
        paths = write_report(result, cfg)
    except Exception as e:  # noqa: BLE001
        log.error("%s %s: the report could not be written: %s", result.dataset, result.day, _one_line(e, 300))
    try:
        ledger.record_run(cfg, result, paths)
    except Exception as e:  # noqa: BLE001
        log.error("%s %s: the run ledger could not be updated: %s", result.dataset, result.day, _one_line(e, 300))
    alerts.send_for(cfg, result, report_url(cfg, paths.html) if paths else None)
    return paths


def check_secrets(cfg: Config) -> None:
    """Fail in a second, before Spark starts, when the API key, the TLS bundle or (alerts on)
    the routing key is missing: a run whose outcome nobody would hear of is a config error."""
    from jobs import alerts

    cfg.api.api_key.read("api.api_key")
    tls_verify(cfg, warn=False)  # the replay warns, once per dataset
    alerts.preflight(cfg)


def preload_expectations(cfg: Config) -> None:
    """Import Great Expectations (about 3 s of Python) in the background while Spark starts and
    the API is replayed, instead of on the critical path when the expectations stage begins.
    The import lock makes the stage's own import wait for this one, never run it twice. Not a
    daemon: a run that ends first waits for the import rather than exit in the middle of it."""
    if cfg.expectations.enabled:
        threading.Thread(target=importlib.import_module, args=("expectations.runner",),
                         name="preload-expectations").start()


def run(cfg: Config, day: date, names: list[str], *, spark=None) -> int:
    """Reconcile `names` for `day`; publish and print each result; return the exit code."""
    from jobs.lock import LockHeld, day_lock

    from jobs import alerts

    run_id = new_run_id()
    datasets = [dataset(n) for n in names]
    results, paths = [], []
    # What earlier runs could not deliver goes first, so this run's events never overtake it.
    alerts.flush_outbox(cfg)

    def finish(result: DatasetResult, publish_it: bool = True) -> None:
        p = publish(cfg, result) if publish_it else None
        results.append(result)
        paths.append(p)
        console.print_summary(result, p)

    try:
        check_secrets(cfg)
    except ConfigError as e:
        for ds in datasets:
            finish(DatasetResult(ds.name, day.isoformat(), cfg.env, run_id, outcome=Outcome.CONFIG,
                                 error=_one_line(e), started_at=_now(), finished_at=_now()))
        console.print_final(results, paths)
        # On stderr too, like every other configuration error.
        return console.error(str(e), code=Outcome.CONFIG)

    from jobs.interrupt import INTERRUPTED, Stop, handle_signals
    from jobs.spark import LazySession

    preload_expectations(cfg)
    stop = Stop("dataset")
    with handle_signals(stop) as signals:
        # A SparkContext started in the main thread installs its own SIGINT handler: take it back.
        session = LazySession(cfg, spark, on_start=lambda s: (stop.attach(s), signals.install()))
        try:
            for ds in datasets:
                if stop.stopping.is_set():
                    console.info(f"{ds.name} {day}: not run (interrupted)")
                    continue
                try:
                    with day_lock(cfg, ds.name, day, run_id):
                        result = run_day(session.get, cfg, ds, day, run_id)
                        if stop.abandon.is_set():
                            console.info(f"{ds.name} {day}: abandoned; nothing published")
                            continue
                        finish(result)
                except LockHeld as e:
                    # Another run owns this day's report and incident: touch neither.
                    finish(DatasetResult(ds.name, day.isoformat(), cfg.env, run_id, outcome=Outcome.LOCKED,
                                         error=_one_line(e), started_at=_now(), finished_at=_now()),
                           publish_it=False)
        finally:
            session.close()
    if results:
        console.print_final(results, paths)
    if stop.stopping.is_set():
        return INTERRUPTED
    return max(int(r.outcome) for r in results)


def dataset_names(cfg: Config, choice: str) -> list[str]:
    if choice == "all":
        return list(cfg.datasets)
    try:
        return [dataset(choice).name]
    except KeyError as e:
        raise ConfigError(f"--dataset: {e.args[0]}") from None
