"""The API side a faithful API would serve for given store rows: every key present (nulls sent
as explicit nulls), every type right, decimals widened to the API's DECIMAL(38,10).

The baseline that tests and benchmarks mutate to inject known faults.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from reconcilers.contract import Dataset
from reconcilers.schemas import BAD_TYPE, PRESENT, RAW, WINDOW, api_schema


def faithful_api(store_df: DataFrame, ds: Dataset) -> DataFrame:
    schema = api_schema(ds)
    all_present = (1 << len(ds.fields)) - 1
    return store_df.select(
        *[F.col(f.name).cast(schema[f.name].dataType).alias(f.name) for f in ds.fields],
        F.lit(all_present).cast("long").alias(PRESENT),
        F.lit(0).cast("long").alias(BAD_TYPE),
        F.lit(None).cast(schema[RAW].dataType).alias(RAW),
        F.lit(0).alias(WINDOW),
    )
