"""What the data faults do to one delivery day, decided per record and independent of paging.

Every decision comes from a hash of (seed, fault, record key), never from a page or a window, so
the same day and profile give the same injected findings however a client slices and pages it.
The plan holds, per field, the final served state of each record after all faults compose:

    KEEP     served as in the store
    OMIT     key left out             -> null_dropped (store null) or value_dropped (store value)
    NULLED   explicit null for a value -> value_nulled
    CHANGED  a different value         -> value_mismatch
    WRONG    the wrong JSON type       -> type_mismatch

Value faults apply first, in the order change-values, wrong-type, null-values (a later one wins on
the same field of the same record); then the serializer faults drop-nulls and omitempty look at
what would be served, so `null-values` + `drop-nulls` drops the nulled key (value_dropped), as a
real NON_NULL serializer would. Records dropped (`missing_in_api`) have no field findings;
duplicated records (`duplicate_key`) are served twice, byte-identical.
Keys, the window field and the day field are never altered, so every finding stays matchable.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from api_server.encode import wrong_type_text
from api_server.faults import FaultSpec
from reconcilers.contract import Dataset, Field

KEEP, OMIT, NULLED, CHANGED, WRONG = range(5)
VALUE_FAULTS = ("change-values", "wrong-type", "null-values")
SERIALIZER_FAULTS = ("drop-nulls", "omitempty")
_US_PER_S = 1_000_000
_HOUR_US = 3600 * _US_PER_S


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads any change of the input over all 64 bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_hashes(table: pa.Table, ds: Dataset) -> np.ndarray:
    """A stable 64-bit hash of each record's key (and dataset), the root of every decision."""
    cols = [table.column(k).to_pylist() for k in ds.key]
    digests = b"".join(
        hashlib.blake2b(orjson.dumps([ds.name, *key]), digest_size=8).digest() for key in zip(*cols)
    )
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64) if digests else np.zeros(0, np.uint64)


def _uniform(base: np.ndarray, seed: int, *salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per record for this (seed, salt)."""
    s = hashlib.blake2b(orjson.dumps([seed, *salt]), digest_size=8).digest()
    with np.errstate(over="ignore"):
        bits = _mix(base ^ np.uint64(int.from_bytes(s, "little")))
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def changed_values(col: pa.Array, f: Field) -> pa.Array:
    """The `change-values` alteration: a decimal one tick up, an int one up, an `s` timestamp an
    hour later, an `ms` timestamp truncated to whole seconds (an hour later if it has no ms part)."""
    if f.kind == "decimal":
        tick = pa.scalar(Decimal(1).scaleb(-f.scale), pa.decimal128(f.precision, f.scale))
        return pc.cast(pc.add(col, tick), col.type)
    if f.kind == "int":
        return pc.add(col, 1)
    if f.kind == "timestamp":
        us = pc.fill_null(pc.cast(col, pa.int64()), 0).to_numpy(zero_copy_only=False)
        has_ms = (us // 1000) % 1000 != 0 if f.unit == "ms" else np.zeros(len(us), bool)
        out = np.where(has_ms, us - us % _US_PER_S, us + _HOUR_US)
        return pa.array(out, type=col.type, mask=_mask(col.is_null()))
    raise ValueError(f"{f.name}: change-values cannot alter a {f.kind}")


def _fault_fields(ds: Dataset, spec: FaultSpec) -> list[Field]:
    fixed = set(ds.key) | {ds.window_field, ds.day_field}
    wanted = spec.params.get("fields")
    return [f for f in ds.fields if f.name not in fixed and (wanted is None or f.name in wanted)]


def _eligible(spec: FaultSpec, f: Field, col: pa.Array, present: np.ndarray) -> np.ndarray:
    """Records whose value of `f` this value fault can visibly alter."""
    if spec.name == "null-values":
        return present
    if spec.name == "change-values":
        return present if f.kind in ("decimal", "int", "timestamp") else np.zeros(len(present), bool)
    if spec.name == "wrong-type":
        if f.kind in ("decimal", "int", "bool", "timestamp", "date"):
            return present
        # Only an all-digit id can become a JSON number.
        return present & _mask(pc.match_substring_regex(col, r"^[0-9]+$"))
    raise ValueError(spec.name)


@dataclass
class DayPlan:
    dataset: Dataset
    day: date
    n: int
    fault_names: list[str] = field(default_factory=list)
    dropped: np.ndarray | None = None
    duplicated: np.ndarray | None = None
    # field name -> final state per record; only fields some fault touches
    states: dict[str, np.ndarray] = field(default_factory=dict)
    causes: dict[str, np.ndarray] = field(default_factory=dict)  # index into fault_names
    store_null: dict[str, np.ndarray] = field(default_factory=dict)
    record_causes: dict[str, str] = field(default_factory=dict)

    @property
    def served(self) -> np.ndarray:
        return np.ones(self.n, bool) if self.dropped is None else ~self.dropped

    def _set(self, name: str, rows: np.ndarray, state: int, cause: int) -> None:
        if name not in self.states:
            self.states[name] = np.zeros(self.n, np.int8)
            self.causes[name] = np.full(self.n, -1, np.int8)
        self.states[name][rows] = state
        self.causes[name][rows] = cause

    def apply(self, rows: np.ndarray, columns: dict[str, pa.Array]):
        """The served form of `rows` (record indices): columns, omit masks and type overrides
        for `encode_rows`."""
        omit, override = {}, {}
        for name, states in self.states.items():
            s = states[rows]
            if not s.any():
                continue
            f = self.dataset.by_name[name]
            col = columns[name]
            if (s == WRONG).any():
                override[name] = (pa.array(s == WRONG), wrong_type_text(col, f))
            if (s == CHANGED).any():
                col = pc.if_else(pa.array(s == CHANGED), changed_values(col, f), col)
            if (s == NULLED).any():
                col = pc.if_else(pa.array(s == NULLED), pa.scalar(None, col.type), col)
            if (s == OMIT).any():
                omit[name] = pa.array(s == OMIT)
            columns[name] = col
        return columns, omit, override

    def findings(self, table: pa.Table) -> list[dict]:
        """Every injected finding, in key order: what a correct comparison must report, exactly."""
        served = self.served
        per_row: dict[int, list[tuple[str, str | None, str]]] = {}
        if self.dropped is not None:
            for r in np.flatnonzero(self.dropped):
                per_row.setdefault(int(r), []).append(("missing_in_api", None, self.record_causes["missing_in_api"]))
        if self.duplicated is not None:
            for r in np.flatnonzero(self.duplicated):
                per_row.setdefault(int(r), []).append(("duplicate_key", None, self.record_causes["duplicate_key"]))
        for f in self.dataset.fields:  # contract order
            if f.name not in self.states:
                continue
            states, causes, null = self.states[f.name], self.causes[f.name], self.store_null[f.name]
            for r in np.flatnonzero((states != KEEP) & served):
                st = states[r]
                kind = {
                    OMIT: "null_dropped" if null[r] else "value_dropped",
                    NULLED: "value_nulled",
                    CHANGED: "value_mismatch",
                    WRONG: "type_mismatch",
                }[st]
                per_row.setdefault(int(r), []).append((kind, f.name, self.fault_names[causes[r]]))
        rows = sorted(per_row)
        keys = table.select(list(self.dataset.key)).take(pa.array(rows, pa.int64())).to_pylist() if rows else []
        day = self.day.isoformat()
        out = []
        for r, key in zip(rows, keys):
            for kind, fname, fault in per_row[r]:
                out.append({"dataset": self.dataset.name, "day": day, "kind": kind, "key": key,
                            "field": fname, "fault": fault})
        return out


def expected_counts(findings: list[dict]) -> dict[str, dict[str, int]]:
    """kind -> field (or "*" for record-level kinds) -> count, as a DatasetResult counts them."""
    c = Counter((f["kind"], f["field"] or "*") for f in findings)
    out: dict[str, dict[str, int]] = {}
    for (kind, fname), n in sorted(c.items()):
        out.setdefault(kind, {})[fname] = n
    return out


def make_plan(ds: Dataset, day: date, table: pa.Table, faults: tuple[FaultSpec, ...], seed: int) -> DayPlan:
    """The plan for a day's table (sorted by key) under the data faults that apply to `ds`."""
    specs = {s.name: s for s in faults if s.is_data and s.applies_to(ds.name)}
    n = table.num_rows
    plan = DayPlan(ds, day, n, fault_names=list(specs))
    if not specs or n == 0:
        return plan
    base = row_hashes(table, ds)
    cause = {name: i for i, name in enumerate(plan.fault_names)}

    if "drop-records" in specs:
        plan.dropped = _uniform(base, seed, "drop-records") < specs["drop-records"].params["rate"]
        plan.record_causes["missing_in_api"] = "drop-records"
    if "duplicate-records" in specs:
        dup = _uniform(base, seed, "duplicate-records") < specs["duplicate-records"].params["rate"]
        plan.duplicated = dup & plan.served
        plan.record_causes["duplicate_key"] = "duplicate-records"

    columns = {f.name: table.column(f.name).combine_chunks() for f in ds.fields}
    null = {f.name: _mask(columns[f.name].is_null()) for f in ds.fields}

    for name in VALUE_FAULTS:
        if name not in specs:
            continue
        spec = specs[name]
        fields = _fault_fields(ds, spec)
        if not fields:
            continue
        elig = np.column_stack([_eligible(spec, f, columns[f.name], ~null[f.name]) for f in fields])
        count = elig.sum(axis=1)
        chosen = np.flatnonzero((_uniform(base, seed, name) < spec.params["rate"]) & (count > 0))
        if not len(chosen):
            continue
        pick = (_uniform(base[chosen], seed, name, "field") * count[chosen]).astype(np.int64)
        col_of = np.argmax(np.cumsum(elig[chosen], axis=1) > pick[:, None], axis=1)
        state = {"change-values": CHANGED, "wrong-type": WRONG, "null-values": NULLED}[name]
        for j, f in enumerate(fields):
            rows = chosen[col_of == j]
            if len(rows):
                plan._set(f.name, rows, state, cause[name])

    for name in SERIALIZER_FAULTS:
        if name not in specs:
            continue
        spec = specs[name]
        targeted = _uniform(base, seed, name) < spec.params["rate"]
        for f in _fault_fields(ds, spec):
            st = plan.states.get(f.name, np.zeros(n, np.int8))
            served_null = (st == NULLED) | ((st == KEEP) & null[f.name])
            gone = served_null
            if name == "omitempty" and f.zero_value is not None:
                gone = gone | ((st == KEEP) & _is_zero(columns[f.name], f))
                if (st == CHANGED).any():
                    gone = gone | ((st == CHANGED) & _is_zero(changed_values(columns[f.name], f), f))
            rows = np.flatnonzero(gone & targeted)
            if len(rows):
                plan._set(f.name, rows, OMIT, cause[name])

    plan.store_null = {name: null[name] for name in plan.states}
    return plan


def _is_zero(col: pa.Array, f: Field) -> np.ndarray:
    """Go `omitempty` / proto3 emptiness: 0, 0.0, false, ""."""
    if f.kind in ("int", "decimal", "bool", "string"):
        zero = Decimal(0) if f.kind == "decimal" else f.zero_value
        return _mask(pc.equal(col, pa.scalar(zero, col.type)))
    return np.zeros(len(col), bool)
