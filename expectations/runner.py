"""Validate both sides of a run with the dataset's suite, through GX's Spark datasource.

Per side: the prepared DataFrame is cached once, then the whole suite runs with
`BOOLEAN_ONLY` (GX bundles the column metrics into few Spark aggregations and skips the
per-expectation queries for unexpected values). Only the expectations that failed, or that
pass with a `mostly` tolerance, run again to fetch counts and examples.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import great_expectations as gx
from great_expectations.data_context.types.base import ProgressBarsConfig
from pyspark.sql import DataFrame

from jobs.config import ConfigError, Expectations
from reconcilers.contract import Dataset
from reconcilers.result import ExpectationResult
from expectations.prepare import cached, prepare
from expectations.results import EXAMPLES, to_result
from expectations.suite import build_suite

SIDES = ("store", "api")


def _context():
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return ctx


def _require_utc(df: DataFrame) -> None:
    # delivery_day_local reads the local day of an instant with to_date(), which uses the
    # session time zone; the job's sessions are UTC, and any other zone would shift days.
    tz = df.sparkSession.conf.get("spark.sql.session.timeZone")
    if tz not in ("UTC", "Etc/UTC", "Z", "+00:00"):
        raise ConfigError(f"expectations need spark.sql.session.timeZone=UTC, the session has {tz!r}")


def _detail_format(exp: gx.expectations.Expectation, ds: Dataset) -> dict[str, Any]:
    if exp.expectation_type == "unexpected_rows_expectation":
        return {"result_format": "COMPLETE"}  # GX caps the rows it fetches
    fmt: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES}
    if "check" not in (exp.meta or {}):
        fmt["unexpected_index_column_names"] = list(ds.key)
        fmt["return_unexpected_index_query"] = False
    return fmt


def validate_side(source, suite: gx.ExpectationSuite, ds: Dataset, side: str, df: DataFrame) -> list[ExpectationResult]:
    prepared = prepare(df, ds, suite)
    try:
        cached(prepared)
        batch = (
            source.add_dataframe_asset(name=side)
            .add_batch_definition_whole_dataframe("whole")
            .get_batch(batch_parameters={"dataframe": prepared})
        )
        quick = {r.expectation_config.meta["name"]: r for r in batch.validate(suite, result_format="BOOLEAN_ONLY").results}
        out = []
        for exp in suite.expectations:  # suite order, whatever order GX resolved them in
            r = quick[exp.meta["name"]]
            tolerant = (exp.configuration.kwargs.get("mostly") or 1) < 1
            if not r.success or tolerant:
                r = batch.validate(exp, result_format=_detail_format(exp, ds))
            out.append(to_result(side, exp, r))
        return out
    finally:
        prepared.unpersist()


def run_suites(store_df: DataFrame, api_df: DataFrame, ds: Dataset, day: date, cfg: Expectations) -> list[ExpectationResult]:
    """Every expectation of the dataset's suite on both sides, store first.

    Reads the DataFrames the job already has (no second read); the API side's meta columns
    are ignored. ConfigError on a bad override or a non-UTC Spark session.
    """
    if not cfg.enabled:
        return []
    suite = build_suite(ds, day, cfg)
    _require_utc(store_df)
    source = _context().data_sources.add_spark(name=f"trade-recon-{ds.name}")
    out: list[ExpectationResult] = []
    for side, df in zip(SIDES, (store_df, api_df)):
        out += validate_side(source, suite, ds, side, df)
    return out
