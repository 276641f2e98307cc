"""The DataFrame a side is validated on: the contract columns plus one derived column per
SQL check, computed in a single pass and cached, so that GX's metric queries all read memory."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from reconcilers.contract import Dataset


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def derived_checks(suite: gx.ExpectationSuite) -> dict[str, tuple[str, list[str]]]:
    """Derived column -> (SQL predicate, columns an example shows), from the suite's meta."""
    out = {}
    for e in suite.expectations:
        meta = e.meta or {}
        if "check" in meta:
            out[e.column] = (meta["check"], meta["show"])
    return out


def prepare(df: DataFrame, ds: Dataset, suite: gx.ExpectationSuite) -> DataFrame:
    """Contract columns only (the API's meta columns are not data) plus the derived checks.

    A derived column is null on a good row and a JSON object of the row's key and the values
    involved on an offending one, which is what the report shows as an example.
    """
    derived = []
    for column, (check, show) in derived_checks(suite).items():
        fields = ", ".join(f"'{c}', {_quoted(c)}" for c in show)
        derived.append(F.expr(f"CASE WHEN {check} THEN to_json(named_struct({fields})) END").alias(column))
    return df.select(*[F.col(_quoted(n)) for n in ds.names], *derived)
