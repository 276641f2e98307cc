"""The per-field comparison rules, as pure functions from Spark SQL text to Spark SQL text.

A record's verdict per field is carried as bitmasks, one bit per contract field (the same bit
layout as the API side's `_present` / `_bad_type`): three masks describe both sides (store null,
API null, values differ) and `finding_masks` turns them, with the presence and bad-type masks,
into one mask per finding kind. Bit arithmetic keeps the generated code per row small (one term
per field instead of a branchy expression per field and kind), which keeps it JIT-compilable.

The rules are SQL text rather than `Column` objects because every `Column` operation is a round
trip to the JVM: a day's comparison built from Columns made some 40,000 of them (about 5 s on
two cores, whatever the data size); as text, each output column is one parse in the JVM.
"""

from __future__ import annotations

from collections.abc import Callable

from reconcilers.contract import Dataset, Field
from reconcilers.schemas import API_DECIMAL

# The kinds a single field of a matched record can produce, in report order.
FIELD_KINDS: tuple[str, ...] = ("value_dropped", "value_nulled", "value_mismatch", "type_mismatch", "null_dropped")

UNIT_MICROS = {"s": 1_000_000, "ms": 1_000}

SqlOf = Callable[[Field], str]


def q(name: str) -> str:
    """A column name quoted for Spark SQL; `a.b` reads field b of struct a."""
    return ".".join(f"`{part}`" for part in name.split("."))


def store_comparable(f: Field, col: str) -> str:
    """The store value as the API must serve it, in the type both sides are compared in.

    Timestamps become epoch microseconds truncated to the contract unit: the contract says the API
    serves that precision, so the store's sub-unit digits are not the API's to reproduce. Epoch
    arithmetic is independent of the session time zone, unlike `date_trunc`. Decimals widen
    exactly to the API's DECIMAL(38,10) (87.45 -> 87.4500000000).
    """
    if f.kind == "timestamp":
        return f"(unix_micros({col}) - pmod(unix_micros({col}), {UNIT_MICROS[f.unit or 's']}L))"
    if f.kind == "decimal":
        if (f.scale or 0) > API_DECIMAL.scale or f.precision - (f.scale or 0) > API_DECIMAL.precision - API_DECIMAL.scale:
            raise ValueError(f"{f.name}: DECIMAL({f.precision},{f.scale}) does not widen exactly to {API_DECIMAL.simpleString()}")
        return f"CAST({col} AS {API_DECIMAL.simpleString()})"
    return col


def api_comparable(f: Field, col: str) -> str:
    """The API value as served. A timestamp with digits beyond the contract unit is taken as-is, so
    it differs from the truncated store value: the API broke the contract's precision. Decimals
    keep every digit the API sent (87.455 stays 87.455 and differs from 87.45)."""
    if f.kind == "timestamp":
        return f"unix_micros({col})"
    if f.kind == "decimal":
        return f"CAST({col} AS {API_DECIMAL.simpleString()})"
    return col


def same_value(store: str, api: str) -> str:
    """Null-safe equality of comparable values: null equals only null, so "" never equals null;
    strings compare byte for byte (34-digit ids included), decimals exactly."""
    return f"({store} <=> {api})"


def field_bits(ds: Dataset) -> dict[str, int]:
    """Bit of each value field (keys are matched on, never compared)."""
    return {f.name: 1 << i for i, f in enumerate(ds.fields) if f.name not in ds.key}


def value_bits(ds: Dataset) -> str:
    """Every value field's bit, as a BIGINT literal."""
    return f"{sum(field_bits(ds).values())}L"


def _mask(ds: Dataset, term: SqlOf) -> str:
    bits = field_bits(ds)
    return "(" + " + ".join(f"IF({term(f)}, {bits[f.name]}L, 0L)" for f in ds.value_fields) + ")"


def null_mask(ds: Dataset, col: SqlOf) -> str:
    return _mask(ds, lambda f: f"{col(f)} IS NULL")


def differ_mask(ds: Dataset, store: SqlOf, api: SqlOf) -> str:
    """`store` / `api` give each field's comparable value (see store_comparable / api_comparable)."""
    return _mask(ds, lambda f: f"NOT {same_value(store(f), api(f))}")


def finding_masks(ds: Dataset, *, present: str, bad_type: str, store_null: str, api_null: str, differ: str) -> dict[str, str]:
    """One mask per field kind, for a matched record.

    - bad JSON type -> type_mismatch only (its API column is null by construction, so it must not
      also count as nulled or mismatched);
    - key absent: store null -> null_dropped, store value -> value_dropped (a 0/false/"" dropped
      by omitempty lands here: a dropped default is not a dropped null);
    - key present with null: store value -> value_nulled; store null -> agreement;
    - both values present and different (or store null and API value) -> value_mismatch.
    """
    values = value_bits(ds)
    good = f"({values} & ~({bad_type}))"
    absent = f"({good} & ~({present}))"
    sent = f"({good} & ({present}))"
    return {
        "type_mismatch": f"({values} & ({bad_type}))",
        "null_dropped": f"({absent} & ({store_null}))",
        "value_dropped": f"({absent} & ~({store_null}))",
        "value_nulled": f"({sent} & ({api_null}) & ~({store_null}))",
        "value_mismatch": f"({sent} & ~({api_null}) & ({differ}))",
    }


def has_bit(mask: str, bit: int) -> str:
    return f"((({mask}) & {bit}L) <> 0)"
