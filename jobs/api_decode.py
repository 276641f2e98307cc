"""One API page (a list of parsed JSON objects) -> one Arrow record batch in the API-side schema.

Decoding is column-wise: each contract field is pulled out of all records at once, its JSON
types are checked as a set, and the column is converted by Arrow or numpy in one call. Only a
column that holds something unusual (a missing key, a wrong JSON type, an unparsable timestamp)
falls back to a per-value path, so a clean page costs a handful of C-level passes per field.

Rules the comparison relies on:
- `_present` bit i: contract field i was a key of the JSON object (explicit null included).
- `_bad_type` bit i: the JSON value does not fit the contract kind (`contract.JSON_TYPES`), or is a
  string that does not parse as the contract's timestamp/date, or a number that cannot be held
  exactly; the column value is then null and `_raw[field]` keeps the JSON text.
- Python's bool is an int subclass: true/false never pass as an int or a decimal.
- Decimals are exact: a JSON number is taken at the shortest decimal that round-trips its double
  (which is the sent text for up to 15 significant digits), so 87.455 stays 87.455. A number that
  needs more than 10 fractional digits or 28 integer digits (a float artefact such as
  0.30000000000000004) cannot sit in DECIMAL(38,10) unrounded and is reported as bad-typed rather
  than silently rounded into agreement with the store.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from operator import itemgetter

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from reconcilers.contract import JSON_TYPES, Dataset, Field
from reconcilers.schemas import API_DECIMAL, api_schema

_ABSENT = object()
_NONE = type(None)
DEC_SCALE = API_DECIMAL.scale
DEC_INT_DIGITS = API_DECIMAL.precision - API_DECIMAL.scale
ARROW_DEC = pa.decimal128(API_DECIMAL.precision, DEC_SCALE)
ARROW_TS = pa.timestamp("us", tz="UTC")
RAW_TYPE = pa.map_(pa.string(), pa.string())
_EXACT = 2**53  # integers below this are exact in a double
_POW10 = [10.0**d for d in range(DEC_SCALE + 1)]
_TS_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
_INT64 = (-(2**63), 2**63 - 1)


class PageDecodeError(ValueError):
    """The page is not a list of JSON objects: a paging/envelope fault, not a data finding."""


def arrow_schema(ds: Dataset) -> pa.Schema:
    """The Arrow twin of `schemas.api_schema(ds)`, derived by Spark's own converter so the
    batches a task yields always match what Spark expects."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(api_schema(ds))


def raw_text(value) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        # Integers beyond 64 bits: orjson refuses to write them, the stdlib does not.
        return json.dumps(value, default=str)


# -- converters: a list of values of the right JSON type (None = null) -> (array, bad mask | None)


def _strings(vals: list) -> tuple[pa.Array, None]:
    return pa.array(vals, type=pa.string()), None


def _bools(vals: list) -> tuple[pa.Array, None]:
    return pa.array(vals, type=pa.bool_()), None


def _ints(vals: list) -> tuple[pa.Array, np.ndarray | None]:
    try:
        return pa.array(vals, type=pa.int64()), None
    except OverflowError:
        lo, hi = _INT64
        bad = np.fromiter((v is not None and not lo <= v <= hi for v in vals), bool, len(vals))
        kept = [None if b else v for v, b in zip(vals, bad)]
        return pa.array(kept, type=pa.int64()), bad


def _parsed_strings(vals: list, pattern: str, target: pa.DataType, parse_one) -> tuple[pa.Array, np.ndarray | None]:
    """Strings that must match `pattern` and cast to `target`; the rest are bad."""
    arr = pa.array(vals, type=pa.string())
    matches = pc.fill_null(pc.match_substring_regex(arr, pattern), True)
    bad = ~matches.to_numpy(zero_copy_only=False)
    if bad.any():
        arr = pc.if_else(matches, arr, pa.scalar(None, pa.string()))
    try:
        out = arr.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Matches the shape but not the calendar (month 13, 25:00): find which, one by one.
        parsed = []
        for i, v in enumerate(arr.to_pylist()):
            try:
                parsed.append(None if v is None else parse_one(v))
            except ValueError:
                parsed.append(None)
                bad[i] = True
        out = pa.array(parsed, type=target)
    return out, (bad if bad.any() else None)


def _parse_instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("no zone offset")
    return value.astimezone(timezone.utc)


def _timestamps(vals: list):
    return _parsed_strings(vals, _TS_RE, ARROW_TS, _parse_instant)


def _dates(vals: list):
    return _parsed_strings(vals, _DATE_RE, pa.date32(), date.fromisoformat)


def _exact_decimal(v) -> Decimal | None:
    """The exact decimal of one JSON number, or None when DECIMAL(38,10) cannot hold it."""
    try:
        d = Decimal(v) if type(v) is int else Decimal(repr(v))
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    exp = d.as_tuple().exponent
    if exp < -DEC_SCALE and d != d.quantize(Decimal(1).scaleb(-DEC_SCALE)):
        return None
    if d.adjusted() >= DEC_INT_DIGITS:
        return None
    return d


def _scaled(units: np.ndarray, scale: int, valid: np.ndarray) -> pa.Array:
    """decimal128 array from int64 counts of 10^-scale, widened exactly to DECIMAL(38,10)."""
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = units >> 63
    validity = pa.array(valid).buffers()[1]
    arr = pa.Array.from_buffers(pa.decimal128(38, scale), len(units), [validity, pa.py_buffer(words.tobytes())])
    return arr.cast(ARROW_DEC)


def _decimals(vals: list) -> tuple[pa.Array, np.ndarray | None]:
    n = len(vals)
    slow = np.zeros(n, bool)
    try:
        x = pa.array(vals, type=pa.float64())
    except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
        x, slow[:] = pa.nulls(n, pa.float64()), True
    valid = x.is_valid().to_numpy(zero_copy_only=False)
    xs = np.nan_to_num(x.to_numpy(zero_copy_only=False), nan=0.0)
    if not slow.all():
        # Integers too large for a double went through Arrow rounded: redo them exactly.
        big = np.abs(xs) >= _EXACT
        if big.any():
            slow |= big & valid
    # Smallest number of fractional digits d whose decimal round-trips to the same double.
    digits = np.full(n, -1, np.int8)
    units = np.zeros(n, np.int64)
    todo = valid & ~slow
    for d, p in enumerate(_POW10):
        if not todo.any():
            break
        idx = np.flatnonzero(todo)
        k = np.rint(xs[idx] * p)
        ok = (np.abs(k) < _EXACT) & (k / p == xs[idx])
        hit = idx[ok]
        digits[hit] = d
        units[hit] = k[ok].astype(np.int64)
        todo[hit] = False
    slow |= todo  # more than DEC_SCALE digits, or too large for the fast route
    parts = [_scaled(units, int(d), digits == d) for d in np.unique(digits[digits >= 0])]
    bad = None
    if slow.any():
        exact, bad = [None] * n, np.zeros(n, bool)
        for i in np.flatnonzero(slow):
            exact[i] = _exact_decimal(vals[i])
            bad[i] = exact[i] is None
        parts.append(pa.array(exact, type=ARROW_DEC))
        bad = bad if bad.any() else None
    if not parts:
        return pa.nulls(n, ARROW_DEC), bad
    return (pc.coalesce(*parts) if len(parts) > 1 else parts[0]), bad


_CONVERTERS = {
    "string": _strings,
    "int": _ints,
    "decimal": _decimals,
    "bool": _bools,
    "timestamp": _timestamps,
    "date": _dates,
}


# Kinds whose Arrow conversion itself refuses every other JSON type (a number for a string, 0
# for a bool), so a clean column needs no separate type pass. Arrow would truncate 1.5 into an
# int64 and turn true into 1.0, so ints and decimals are always type-checked first.
_ARROW_TYPED = frozenset({"string", "bool", "timestamp", "date"})


def _allowed(kind: str) -> frozenset[type]:
    # Exact types, so that bool (an int subclass) never passes as an int or a decimal.
    return frozenset(JSON_TYPES[kind]) | {_NONE}


class PageDecoder:
    """Decodes the pages of one dataset. Built once per task; cheap to call per page."""

    def __init__(self, ds: Dataset):
        self.ds = ds
        self.schema = arrow_schema(ds)
        self.fields: tuple[Field, ...] = ds.fields
        self._allowed = [_allowed(f.kind) for f in ds.fields]
        self._getters = [itemgetter(f.json) for f in ds.fields]
        self.window_index = ds.field_index(ds.window_field)
        self.window_json = ds.by_name[ds.window_field].json

    def decode(self, records: list, window: int) -> pa.RecordBatch:
        if records and set(map(type, records)) != {dict}:
            bad = next(type(r).__name__ for r in records if type(r) is not dict)
            raise PageDecodeError(f"'data' holds a JSON {_json_type_name(bad)} where records must be objects")
        n = len(records)
        present = np.zeros(n, np.int64)
        bad_type = np.zeros(n, np.int64)
        raw: dict[int, dict[str, str]] = {}
        columns = []
        for i, f in enumerate(self.fields):
            bit = np.int64(1) << np.int64(i)
            try:
                vals = list(map(self._getters[i], records))
                present |= bit
            except KeyError:
                vals = [r.get(f.json, _ABSENT) for r in records]
                has = np.fromiter((v is not _ABSENT for v in vals), bool, n)
                present[has] |= bit
                vals = [None if v is _ABSENT else v for v in vals]
            convert = _CONVERTERS[f.kind]
            arr = None
            if f.kind in _ARROW_TYPED:
                try:
                    arr, unparsable = convert(vals)
                except (pa.ArrowTypeError, pa.ArrowInvalid):
                    pass
            elif set(map(type, vals)) <= self._allowed[i]:
                arr, unparsable = convert(vals)
            if arr is None:
                ok = self._allowed[i]
                wrong = np.fromiter((type(v) not in ok for v in vals), bool, n)
                for j in np.flatnonzero(wrong):
                    raw.setdefault(int(j), {})[f.name] = raw_text(vals[j])
                    vals[j] = None
                bad_type[wrong] |= bit
                arr, unparsable = convert(vals)
            if unparsable is not None:
                for j in np.flatnonzero(unparsable):
                    raw.setdefault(int(j), {})[f.name] = raw_text(vals[j])
                bad_type[unparsable] |= bit
            columns.append(arr)
        raw_col = pa.array([raw.get(j) for j in range(n)], type=RAW_TYPE) if raw else pa.nulls(n, RAW_TYPE)
        columns += [
            pa.array(present, pa.int64()),
            pa.array(bad_type, pa.int64()),
            raw_col,
            pa.array(np.full(n, window, np.int32), pa.int32()),
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def outside(self, batch: pa.RecordBatch, start_us: int, end_us: int) -> tuple[int, str | None]:
        """How many records' window field falls outside [start, end), and the first such value."""
        col = batch.column(self.window_index).cast(pa.int64())
        out = pc.or_(pc.less(col, start_us), pc.greater_equal(col, end_us))
        count = pc.sum(out).as_py() or 0
        if not count:
            return 0, None
        first = batch.column(self.window_index).filter(pc.fill_null(out, False))[0].as_py()
        return count, first.isoformat().replace("+00:00", "Z")


def _json_type_name(py_type: str) -> str:
    return {"list": "array", "str": "string", "int": "number", "float": "number", "bool": "boolean",
            "NoneType": "null"}.get(py_type, py_type)
