"""Validate both sides of a run with the dataset's suite, through GX's Spark datasource.

Per side: the columns the suite reads and the derived row checks are cached in one read of
the side's DataFrame; the record rules (key, revisions) get a narrow cache made from it. Each
runs with `BOOLEAN_ONLY` (GX bundles the column metrics into few Spark aggregations and skips
the per-expectation queries for unexpected values). Only the expectations that failed, or that
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
from expectations.prepare import cached, needs, prepare, split
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


def _validate(source, name: str, expectations: list, ds: Dataset, side: str, df: DataFrame) -> dict[str, ExpectationResult]:
    """Validate `expectations` on the cached `df`: one BOOLEAN_ONLY pass for all, then details
    for those that failed or pass within a tolerance."""
    batch = (
        source.add_dataframe_asset(name=name)
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": df})
    )
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    quick = {r.expectation_config.meta["name"]: r for r in batch.validate(suite, result_format="BOOLEAN_ONLY").results}
    out = {}
    for exp in expectations:
        r = quick[exp.meta["name"]]
        tolerant = (exp.configuration.kwargs.get("mostly") or 1) < 1
        if not r.success or tolerant:
            r = batch.validate(exp, result_format=_detail_format(exp, ds))
        out[exp.meta["name"]] = to_result(side, exp, r)
    return out


def validate_side(source, suite: gx.ExpectationSuite, ds: Dataset, side: str, df: DataFrame) -> list[ExpectationResult]:
    """One side: `df` is read once, into a cache of the columns the suite reads plus the row
    checks; the record rules then run on a narrow cache made from that one."""
    parts = split(suite)
    rows = prepare(df, ds, parts["rows"], keep=needs(ds, parts["records"]))
    try:
        cached(rows)
        out = _validate(source, side, parts["rows"], ds, side, rows) if parts["rows"] else {}
        if parts["records"]:
            records = prepare(rows, ds, parts["records"])
            try:
                cached(records)
                out |= _validate(source, f"{side}-records", parts["records"], ds, side, records)
            finally:
                records.unpersist()
    finally:
        rows.unpersist()
    return [out[e.meta["name"]] for e in suite.expectations]  # suite order


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
