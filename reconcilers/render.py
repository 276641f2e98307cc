"""How sample values travel from Spark to the report.

Samples mix fields of every type in one column, so Spark encodes each value as a tagged string
(`encode_*`, Spark SQL text), and the driver turns it into a JSON-friendly value (`decode`):

    NULL        the value is null
    "a"         the API omitted the key                     -> ABSENT
    "r:<json>"  the API sent a value of the wrong JSON type  -> the raw JSON text
    "v:<wire>"  a value; <wire> is exact: decimals in plain notation, timestamps as epoch
                microseconds (no session time zone involved), dates ISO

The tag keeps an absent key, a null, and a string that happens to read "<absent>" apart until
the very end.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from reconcilers.contract import Field
from reconcilers.result import ABSENT
from reconcilers.rules import has_bit

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def wire(f: Field, col: str) -> str:
    if f.kind == "timestamp":
        return f"CAST(unix_micros({col}) AS STRING)"
    return f"CAST({col} AS STRING)"


def encode_store(f: Field, col: str) -> str:
    """Spark SQL of one store value's tagged text."""
    return f"CASE WHEN {col} IS NOT NULL THEN concat('v:', {wire(f, col)}) END"


def encode_api(f: Field, bit: int, col: str, present: str, bad_type: str, raw: str) -> str:
    """Spark SQL of one API value's tagged text. `present` / `bad_type` are the record's masks,
    `bit` the field's bit in them, `raw` its map of bad-typed JSON texts."""
    return (
        f"CASE WHEN {has_bit(bad_type, bit)} THEN concat('r:', coalesce(try_element_at({raw}, '{f.name}'), ''))"
        f" WHEN NOT {has_bit(present, bit)} THEN 'a'"
        f" WHEN {col} IS NOT NULL THEN concat('v:', {wire(f, col)}) END"
    )


def decode(f: Field, text: str | None) -> Any:
    if text is None:
        return None
    if text == "a":
        return ABSENT
    tag, value = text[:2], text[2:]
    if tag == "r:":
        return value
    if tag != "v:":
        raise ValueError(f"{f.name}: not an encoded sample value: {text!r}")
    if f.kind == "decimal":
        return decimal_text(value, f.scale or 0)
    if f.kind == "timestamp":
        return instant_text(int(value), f.unit or "s")
    if f.kind == "int":
        return int(value)
    if f.kind == "bool":
        return value == "true"
    if f.kind == "date":
        return date.fromisoformat(value).isoformat()
    return value


def decimal_text(text: str, scale: int) -> str:
    """Plain notation, never fewer digits than the contract scale, never trailing zeros beyond it:
    the API side's DECIMAL(38,10) 87.4500000000 reads 87.45, an off-tick 87.4550000000 reads 87.455."""
    d = Decimal(text)
    quantum = Decimal(1).scaleb(-scale)
    at_scale = d.quantize(quantum)
    return format(at_scale if at_scale == d else d.normalize(), "f")


def instant_text(micros: int, unit: str) -> str:
    """ISO 8601 UTC with a Z, at the contract unit, or finer when the value carries more digits."""
    t = _EPOCH + timedelta(microseconds=micros)
    if unit == "s" and micros % 1_000_000 == 0:
        spec = "seconds"
    elif micros % 1_000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return t.isoformat(timespec=spec).replace("+00:00", "Z")
