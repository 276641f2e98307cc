"""The per-field comparison rules, as pure functions from columns to columns.

A record's verdict per field is carried as bitmasks, one bit per contract field (the same bit
layout as the API side's `_present` / `_bad_type`): three masks describe both sides (store null,
API null, values differ) and `finding_masks` turns them, with the presence and bad-type masks,
into one mask per finding kind. Bit arithmetic keeps the generated code per row small (one term
per field instead of a branchy expression per field and kind), which keeps it JIT-compilable.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from operator import add

from pyspark.sql import Column
from pyspark.sql import functions as F

from reconcilers.contract import Dataset, Field
from reconcilers.schemas import API_DECIMAL

# The kinds a single field of a matched record can produce, in report order.
FIELD_KINDS: tuple[str, ...] = ("value_dropped", "value_nulled", "value_mismatch", "type_mismatch", "null_dropped")

UNIT_MICROS = {"s": 1_000_000, "ms": 1_000}

ColumnOf = Callable[[Field], Column]


def store_comparable(f: Field, col: Column) -> Column:
    """The store value as the API must serve it, in the type both sides are compared in.

    Timestamps become epoch microseconds truncated to the contract unit: the contract says the API
    serves that precision, so the store's sub-unit digits are not the API's to reproduce. Epoch
    arithmetic is independent of the session time zone, unlike `date_trunc`. Decimals widen
    exactly to the API's DECIMAL(38,10) (87.45 -> 87.4500000000).
    """
    if f.kind == "timestamp":
        micros = F.unix_micros(col)
        return micros - F.pmod(micros, F.lit(UNIT_MICROS[f.unit or "s"]))
    if f.kind == "decimal":
        if (f.scale or 0) > API_DECIMAL.scale or f.precision - (f.scale or 0) > API_DECIMAL.precision - API_DECIMAL.scale:
            raise ValueError(f"{f.name}: DECIMAL({f.precision},{f.scale}) does not widen exactly to {API_DECIMAL.simpleString()}")
        return col.cast(API_DECIMAL)
    return col


def api_comparable(f: Field, col: Column) -> Column:
    """The API value as served. A timestamp with digits beyond the contract unit is taken as-is, so
    it differs from the truncated store value: the API broke the contract's precision. Decimals
    keep every digit the API sent (87.455 stays 87.455 and differs from 87.45)."""
    if f.kind == "timestamp":
        return F.unix_micros(col)
    if f.kind == "decimal":
        return col.cast(API_DECIMAL)
    return col


def same_value(store: Column, api: Column) -> Column:
    """Null-safe equality of comparable values: null equals only null, so "" never equals null;
    strings compare byte for byte (34-digit ids included), decimals exactly."""
    return store.eqNullSafe(api)


def field_bits(ds: Dataset) -> dict[str, int]:
    """Bit of each value field (keys are matched on, never compared)."""
    return {f.name: 1 << i for i, f in enumerate(ds.fields) if f.name not in ds.key}


def _mask(ds: Dataset, term: Callable[[Field], Column]) -> Column:
    bits = field_bits(ds)
    return reduce(add, [F.when(term(f), F.lit(bits[f.name]).cast("long")).otherwise(F.lit(0).cast("long")) for f in ds.value_fields])


def null_mask(ds: Dataset, col: ColumnOf) -> Column:
    return _mask(ds, lambda f: col(f).isNull())


def differ_mask(ds: Dataset, store: ColumnOf, api: ColumnOf) -> Column:
    """`store` / `api` give each field's comparable column (see store_comparable / api_comparable)."""
    return _mask(ds, lambda f: ~same_value(store(f), api(f)))


def finding_masks(ds: Dataset, *, present: Column, bad_type: Column, store_null: Column, api_null: Column,
                  differ: Column) -> dict[str, Column]:
    """One mask per field kind, for a matched record.

    - bad JSON type -> type_mismatch only (its API column is null by construction, so it must not
      also count as nulled or mismatched);
    - key absent: store null -> null_dropped, store value -> value_dropped (a 0/false/"" dropped
      by omitempty lands here: a dropped default is not a dropped null);
    - key present with null: store value -> value_nulled; store null -> agreement;
    - both values present and different (or store null and API value) -> value_mismatch.
    """
    values = F.lit(sum(field_bits(ds).values())).cast("long")
    good = values.bitwiseAND(F.bitwise_not(bad_type))
    absent = good.bitwiseAND(F.bitwise_not(present))
    sent = good.bitwiseAND(present)
    return {
        "type_mismatch": values.bitwiseAND(bad_type),
        "null_dropped": absent.bitwiseAND(store_null),
        "value_dropped": absent.bitwiseAND(F.bitwise_not(store_null)),
        "value_nulled": sent.bitwiseAND(api_null).bitwiseAND(F.bitwise_not(store_null)),
        "value_mismatch": sent.bitwiseAND(F.bitwise_not(api_null)).bitwiseAND(differ),
    }


def has_bit(mask: Column, bit: int) -> Column:
    return mask.bitwiseAND(F.lit(bit).cast("long")) != 0
