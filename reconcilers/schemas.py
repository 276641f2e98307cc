"""Spark schemas of both sides, derived from the contract.

Store side: the contract types exactly (DECIMAL(12,2), TIMESTAMP as UTC instants, DATE).

API side: the same columns, plus what the parser learned about each record's JSON:
- `_present`: bit i set when contract field i (in contract order) was a key in the JSON object;
  this is the only way to tell a dropped field from an explicit null;
- `_bad_type`: bit i set when field i's JSON type did not fit the contract (its column is then null);
- `_raw`: for bad-typed fields only, the raw JSON text of the value, by field name (for samples);
- `_window`: the index of the planned window the record came from.
Decimals on the API side are wider than the contract so that a value off the tick (87.455) is
kept exactly and shows up as a mismatch instead of being rounded into agreement.
"""

from __future__ import annotations

from pyspark.sql import types as T

from reconcilers.contract import DATASETS, Dataset, Field

PRESENT = "_present"
BAD_TYPE = "_bad_type"
RAW = "_raw"
WINDOW = "_window"
META_COLUMNS = (PRESENT, BAD_TYPE, RAW, WINDOW)

API_DECIMAL = T.DecimalType(38, 10)


def spark_type(f: Field, *, api: bool = False) -> T.DataType:
    if f.kind == "decimal":
        return API_DECIMAL if api else T.DecimalType(f.precision, f.scale)
    return {
        "string": T.StringType(),
        "int": T.LongType(),
        "bool": T.BooleanType(),
        "timestamp": T.TimestampType(),
        "date": T.DateType(),
    }[f.kind]


def store_schema(ds: Dataset) -> T.StructType:
    return T.StructType([T.StructField(f.name, spark_type(f), f.nullable) for f in ds.fields])


def api_schema(ds: Dataset) -> T.StructType:
    # Every API column is nullable: the API may send null anywhere, and that is a finding.
    cols = [T.StructField(f.name, spark_type(f, api=True), True) for f in ds.fields]
    return T.StructType(
        cols
        + [
            T.StructField(PRESENT, T.LongType(), False),
            T.StructField(BAD_TYPE, T.LongType(), False),
            T.StructField(RAW, T.MapType(T.StringType(), T.StringType()), True),
            T.StructField(WINDOW, T.IntegerType(), False),
        ]
    )


def api_schema_ddl(ds: Dataset) -> str:
    return api_schema(ds).simpleString()[len("struct<") : -1]



# Presence and bad-type masks are signed 64-bit integers: one bit per contract field.
assert all(len(d.fields) <= 63 for d in DATASETS.values())
