"""The one place a SparkSession is built."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from jobs.config import Config


LOG4J2 = Path(__file__).with_name("log4j2.properties")


def spark_session(cfg: Config | None = None, app_name: str = "trade-recon"):
    # Workers must run this interpreter (the venv's), or they cannot import pyarrow.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit (which hands Python a running JVM gateway) the master comes from its
    # command line; set one only when running standalone.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(cfg.spark.master if cfg else "local[2]")
    defaults = {
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.ansi.enabled": "true",
        "spark.driver.memory": "2g",
        # The only caches are the expectations' per-side ones, built and scanned a few times in
        # one validation: compressing them costs more CPU than the scans save.
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        # Our own progress display (and --quiet / --log-format json) own the console.
        "spark.ui.showConsoleProgress": "false",
        # Errors only from the JVM's first line on (see the file). The parallel collector: on two
        # cores, G1's concurrent work competes with the tasks (1M trades end to end, warm API,
        # three runs each, alternated: median 38.7 s against 41.7 s with G1, 66 against 73 CPU
        # seconds). Under spark-submit the JVM is already running and its own settings stand.
        "spark.driver.extraJavaOptions": f"-Dlog4j.configurationFile={LOG4J2} -XX:+UseParallelGC",
    }
    if cfg and cfg.store.format == "jdbc":
        jars = [str(j) for j in cfg.store.jdbc.jars]
        defaults["spark.jars"] = ",".join(jars)
    for k, v in {**defaults, **(cfg.spark.conf if cfg else {})}.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    # The job reports every failure itself, in one line; the JVM's own error log (a failed
    # task's Java stack on stderr, in cron mail) only with --debug.
    from jobs import console

    spark.sparkContext.setLogLevel("ERROR" if console.settings.debug else "OFF")
    return spark


class LazySession:
    """A run's Spark session, started when the first dataset (or day) that gets past the checks
    that need no Spark (the API preflight, the store partition) needs it: a run whose every
    dataset stops before that (a down API, days that are clean already) starts none. Thread-safe for the backfill's day threads. A session handed in
    (`spark`) is used as it is and never stopped here; `on_start` hears of the session either way."""

    def __init__(self, cfg: Config, spark=None, on_start=None) -> None:
        self._cfg, self._spark, self._own, self._on_start = cfg, spark, spark is None, on_start
        self._lock = threading.Lock()
        if spark is not None and on_start is not None:
            on_start(spark)

    def get(self):
        with self._lock:
            if self._spark is None:
                from jobs import console

                console.info("starting Spark")
                self._spark = spark_session(self._cfg)
                if self._on_start is not None:
                    self._on_start(self._spark)
            return self._spark

    def close(self) -> None:
        with self._lock:
            if self._own and self._spark is not None:
                self._spark.stop()
                self._spark = None
