"""GX stage speed: both suites (store and API side) on 1,000,000 trades (target <= 20 s).

The store side is read from a seeded Parquet partition, the API side is the faithful mirror of
it (decimals widened to DECIMAL(38,10), meta columns). Spark is warm: one untimed run first.
Peer: the same checks as one plain Spark pass per side (window + one aggregation of count_if),
with no GX, no cache and no examples: the floor the GX stage is measured against.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.table import Row
from jobs.config import Config, Expectations, Spark
from jobs.seed import partition_dir, trades_table, write_day
from jobs.spark import spark_session
from reconcilers.contract import TRADES, Dataset
from reconcilers.mirror import faithful_api
from reconcilers.schemas import store_schema

N = 1_000_000
DAY = date(2026, 10, 25)


def peer_counts(df, ds: Dataset, day: date, cfg: Expectations) -> dict[str, int]:
    """Offending-row count of every built-in rule in one window + aggregation pass."""
    from pyspark.sql import functions as F

    from expectations.rules import rules

    flags = {}
    for r in rules(ds, day, cfg):
        k = r.kwargs
        if r.check:
            cond = r.check
        elif r.type == "expect_column_values_to_not_be_null":
            cond = f"{k['column']} IS NULL"
        elif r.type == "expect_column_values_to_be_in_set":
            cond = f"{k['column']} NOT IN ({', '.join(repr(v) for v in k['value_set'])})"
        elif r.type == "expect_column_values_to_be_between":
            cond = f"NOT (({r.derive or k['column']}) BETWEEN {k['min_value']} AND {k['max_value']})"
        elif r.type == "expect_compound_columns_to_be_unique":
            cond = f"count(*) OVER (PARTITION BY {', '.join(k['column_list'])}) > 1"
        else:
            raise ValueError(f"no peer for {r.type}")
        flags[r.name] = cond
    cols = {f"f{i}": name for i, name in enumerate(flags)}
    checked = df.select(*[F.expr(c).alias(a) for a, c in zip(cols, flags.values())])
    row = checked.agg(*[F.count_if(F.col(a)).alias(a) for a in cols]).collect()[0]
    return {name: row[a] for a, name in cols.items()}


def _cpu_s(jvm_pid: int) -> float:
    """CPU seconds used so far by the Spark JVM (driver and local executors) and this process."""
    fields = Path(f"/proc/{jvm_pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = resource.getrusage(resource.RUSAGE_SELF)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + own.ru_utime + own.ru_stime


def timed_cpu(fn, repeat: int, jvm_pid: int) -> tuple[float, float, object]:
    """Median wall and median CPU seconds of `fn()`. CPU is the figure that holds on a shared
    machine; wall time there is inflated by whatever else runs."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        c0, t0 = _cpu_s(jvm_pid), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu_s(jvm_pid) - c0)
    return statistics.median(walls), statistics.median(cpus), out


def run(repeat: int = 3) -> list[Row]:
    from expectations import run_suites

    cfg = Config(spark=Spark(conf={"spark.ui.showConsoleProgress": "false"}))
    spark = spark_session(cfg, app_name="gx-bench")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        write_day(store, TRADES, DAY, trades_table(DAY, N))
        store_df = (
            spark.read.schema(store_schema(TRADES))
            .option("basePath", str(store / TRADES.name))
            .parquet(str(partition_dir(store, TRADES, DAY)))
            .select(*TRADES.names)
        )
        api_df = faithful_api(store_df, TRADES)
        exp = cfg.expectations

        def gx_stage():
            return run_suites(store_df, api_df, TRADES, DAY, exp)

        def peer():
            return peer_counts(store_df, TRADES, DAY, exp), peer_counts(api_df, TRADES, DAY, exp)

        pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        gx_stage(), peer()  # warm-up: JIT, GX registries
        gx_s, gx_cpu, results = timed_cpu(gx_stage, repeat, pid)
        peer_s, peer_cpu, counts = timed_cpu(peer, repeat, pid)
    failed = sorted({r.expectation for r in results if not r.success})
    peer_failed = sorted({name for side in counts for name, n in side.items() if n})
    same = failed == peer_failed
    note = f"{len(results)} results, failed: {', '.join(failed) or 'none'}"
    if not same:
        note += f"; peer disagrees: {', '.join(peer_failed) or 'none'}"
    load = os.getloadavg()[0]
    return [
        Row("gx", f"GX suites, store + API side, {N:,} trades", gx_s, "s", repeat, "<= 20 s",
            "one Spark pass per side", gx_s / peer_s, gx_s <= 20 and same),
        Row("gx", "same checks as plain Spark count_if, both sides", peer_s, "s", repeat, peer=note),
        Row("gx", "GX suites, CPU (Spark JVM + driver)", gx_cpu, "cpu-s", repeat, "", "plain Spark CPU",
            gx_cpu / peer_cpu),
        Row("gx", "plain Spark checks, CPU", peer_cpu, "cpu-s", repeat, peer=f"load average {load:.1f} on {os.cpu_count()} cores"),
    ]


if __name__ == "__main__":
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from bench.table import render

    print(render(run()))
