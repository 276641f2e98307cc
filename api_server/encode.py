"""Contract field -> JSON text, vectorised over Arrow columns: the API's only serializer.

Every served value goes through `value_text`, so the JSON form of each kind is defined once:
decimals are written from Arrow's exact decimal text with exactly `scale` digits (never through a
float), timestamps as UTC `Z` instants at the field's unit, dates as `YYYY-MM-DD`.
Faults reuse the same text (`wrong_type_text` re-types it), so a faulted record differs from a
clean one only where the fault says.
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from reconcilers.contract import Dataset, Field

# Characters JSON requires escaping inside a string; the rare value holding one goes through orjson.
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'


def _json_strings(col: pa.Array) -> pa.Array:
    quoted = pc.binary_join_element_wise('"', col, '"', "")
    escape = pc.fill_null(pc.match_substring_regex(col, _NEEDS_ESCAPE), False)
    if not pc.any(escape).as_py():
        return quoted
    rows = np.flatnonzero(escape.to_numpy(zero_copy_only=False))
    fixed = pa.array([orjson.dumps(v).decode() for v in col.take(rows).to_pylist()], pa.string())
    return pc.replace_with_mask(quoted, escape, fixed)


def value_text(col: pa.Array, f: Field) -> pa.Array:
    """JSON text of each value; a null stays null so the caller decides between `null` and omission."""
    if f.kind == "string":
        return _json_strings(col)
    if f.kind in ("int", "decimal"):
        return pc.cast(col, pa.string())
    if f.kind == "bool":
        return pc.if_else(col, "true", "false")
    if f.kind == "timestamp":
        # Arrow prints a zone-less timestamp as "YYYY-MM-DD HH:MM:SS[.fff]" at its unit; that is
        # many times faster than strftime, and the instant is UTC by contract.
        text = pc.cast(pc.cast(col, pa.timestamp(f.unit), safe=False), pa.string())
        return pc.binary_join_element_wise('"', pc.binary_replace_slice(text, 10, 11, "T"), 'Z"', "")
    if f.kind == "date":
        return pc.binary_join_element_wise('"', pc.cast(col, pa.string()), '"', "")
    raise ValueError(f"{f.name}: no JSON encoding for kind {f.kind!r}")


def wrong_type_text(col: pa.Array, f: Field) -> pa.Array:
    """The same value under the wrong JSON type: numbers and booleans as strings, digit ids as
    numbers, instants as epoch numbers at the field's unit."""
    if f.kind in ("int", "decimal", "bool"):
        return pc.binary_join_element_wise('"', value_text(col, f), '"', "")
    if f.kind == "string":
        # A JSON number has no leading zeros; only all-digit ids are ever chosen for this.
        return pc.replace_substring_regex(col, "^0+([0-9])", r"\1")
    if f.kind == "timestamp":
        return pc.cast(pc.cast(pc.cast(col, pa.timestamp(f.unit, tz="UTC"), safe=False), pa.int64()), pa.string())
    if f.kind == "date":
        return pc.cast(pc.cast(col, pa.int32()), pa.string())
    raise ValueError(f"{f.name}: no wrong-type rendering for kind {f.kind!r}")


def encode_rows(
    columns: dict[str, pa.Array],
    ds: Dataset,
    *,
    omit: dict[str, pa.Array] | None = None,
    override: dict[str, tuple[pa.Array, pa.Array]] | None = None,
) -> pa.Array:
    """One JSON object per row, each followed by a comma, in contract field order.

    `omit[name]` marks rows whose key is left out; `override[name] = (mask, text)` replaces the
    value text where mask is set. Nulls not omitted are written as explicit `null`.
    """
    omit = omit or {}
    override = override or {}
    # One join over the whole row: a literal `,"jsonName":` before each value. A field that may be
    # omitted carries its own prefix so that omission removes key, value and comma together.
    items: list = []
    for f in ds.fields:
        text = value_text(columns[f.name], f)
        if f.name in override:
            mask, raw = override[f.name]
            text = pc.if_else(mask, raw, text)
        text = pc.fill_null(text, "null")
        prefix = f',"{f.json}":'
        if f.name in omit:
            part = pc.binary_join_element_wise(prefix, text, "")
            items.append(pc.if_else(omit[f.name], pa.scalar(None, pa.string()), part))
        else:
            items += [prefix, text]
    body = pc.binary_join_element_wise(*items, "", null_handling="replace", null_replacement="")
    # Drop the first field's leading comma.
    return pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(body, 1), "},", "")
