"""The DataFrame a side is validated on: the columns the suite reads plus one derived column
per SQL check, computed in a single pass and cached, so that GX's metric queries read memory."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from reconcilers.contract import Dataset
from expectations.suite import reads


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def split(suite: gx.ExpectationSuite) -> dict[str, list]:
    """The suite's expectations by scope ("rows" first, then "records"), each in suite order."""
    parts: dict[str, list] = {"rows": [], "records": []}
    for e in suite.expectations:
        parts[(e.meta or {}).get("scope", "rows")].append(e)
    return parts


def read_columns(ds: Dataset, expectations: list) -> list[str]:
    """Contract columns the expectations read directly (derived columns read theirs before the
    cache), and always the key, which examples identify rows by."""
    wanted: set[str] = set(ds.key)
    for e in expectations:
        if "derive" in (e.meta or {}):
            continue
        cols = reads(e)
        if cols is None:
            return ds.names
        wanted |= cols
    return [n for n in ds.names if n in wanted]


def needs(ds: Dataset, expectations: list) -> list[str]:
    """Every contract column the expectations read, through derived columns included."""
    shown = {c for e in expectations for c in (e.meta or {}).get("show", ())}
    direct = read_columns(ds, expectations)
    return [n for n in ds.names if n in shown or n in direct]


def prepare(df: DataFrame, ds: Dataset, expectations: list, keep: list[str] = ()) -> DataFrame:
    """The columns the expectations read (the API's meta columns are not data), the `keep`
    columns, and the derived columns (`meta.derive`), computed in this one projection."""
    derived = [F.expr(e.meta["derive"]).alias(e.column) for e in expectations if "derive" in (e.meta or {})]
    wanted = set(read_columns(ds, expectations)) | set(keep)
    return df.select(*[F.col(_quoted(n)) for n in ds.names if n in wanted], *derived)


def cached(df: DataFrame) -> DataFrame:
    """`df` cached and materialised; the caller unpersists it. The cache lives for one
    validation and is scanned a handful of times: the job's sessions keep it uncompressed
    (`jobs.spark`), which costs less CPU than those scans would save."""
    df.cache()
    df.count()
    return df
