"""Compare one dataset's store side with its API side for one delivery day, entirely in Spark.

Plan (nothing row-level on the driver):
0. Counts: each side grouped by the UTC hour of its window field (a one-column read) gives the
   rows per side, the per-hour counts and the rows with a null key.
1. Screening, on narrow rows: each side is reduced to the key, a 96-bit fingerprint of its
   comparable values (xxhash64 and murmur3 over the same columns), the null mask and, on the API
   side, the presence and bad-type masks. Grouped by key and joined, a key is *suspect* unless it
   is held exactly once on each side with equal fingerprints, equal null masks, every value
   field present and no bad type. Equal null masks make the fingerprints' column sequences the
   same (Spark's hashes skip nulls), so two records that pass differ only by a hash collision.
   A clean day ends here: its wide rows are never shuffled. Small inputs (below
   `screen_min_rows` rows in all) skip screening: every key goes to stage 2.
2. Only for the suspect keys and the null-key rows, the exact comparison of every field:
   a. each side is shuffled once by key; a window over the key ranks the copies of a key by
      their content, which both counts duplicates and picks deterministic representatives;
   b. one full outer join on the key. Rows with a null key column stay in the join unmatched
      (an equality with null never holds) and are classified as null_key, never paired;
   c. every joined row is classified into narrow columns (record flags, one finding mask per
      field kind); the raw rows of both sides ride along only on rows that have a finding;
   d. the finding rows are exploded into one row per finding, weighted by the findings it
      stands for; windows give the total per (kind, field) and per side, and keep the first N
      by key; only those are rendered into sample text. All of stage 2 is one Spark job.

Duplicates, decided here:
- store: a key held n times is n-1 duplicate_key findings (side "store"); its values are compared
  through one representative, the smallest copy in content order (deterministic whatever the
  input order);
- API: a key served n times is n-1 duplicate_key findings (side "api"), whether or not the copies
  agree. Identical copies (same values, presence and types) collapse into one; every *distinct*
  copy is compared with the store representative, so a stale copy served beside a fresh one is
  never hidden and a repeated page never doubles a value finding.
A key missing from the API or unexpected in it counts once, however often it is duplicated.
Every row counts in the hour of its own window field, duplicates included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reconcilers.contract import Dataset, day_bounds_utc
from reconcilers.render import decode, encode_api, encode_store
from reconcilers.result import FINDING_KINDS, HourCount, Sample
from reconcilers.rules import (
    FIELD_KINDS,
    api_comparable,
    differ_mask,
    field_bits,
    finding_masks,
    has_bit,
    null_mask,
    q,
    store_comparable,
    value_bits,
)
from reconcilers.schemas import BAD_TYPE, PRESENT, RAW, api_schema, store_schema

RECORD = "*"  # the `field` of record-level kinds in `counts`
HOUR_MICROS = 3_600_000_000


@dataclass(frozen=True)
class Day:
    """The delivery day's UTC bounds: 23, 24 or 25 hours."""

    start: datetime
    hours: int

    @classmethod
    def of(cls, day: date) -> Day:
        start, end = day_bounds_utc(day)
        return cls(start, int((end - start) / timedelta(hours=1)))

    @property
    def start_us(self) -> int:
        return int(self.start.timestamp()) * 1_000_000

    @property
    def end_us(self) -> int:
        return self.start_us + self.hours * HOUR_MICROS


@dataclass
class Comparison:
    store_rows: int
    api_rows: int
    # kind -> field (RECORD for record-level kinds) -> count; only kinds and fields found
    counts: dict[str, dict[str, int]]
    hourly: list[HourCount]
    samples: list[Sample]
    # duplicate_key and null_key split by the side they were found on: kind -> {"store": n, "api": n}
    by_side: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self, kind: str) -> int:
        return sum(self.counts.get(kind, {}).values())

    @property
    def findings(self) -> int:
        return sum(sum(by_field.values()) for by_field in self.counts.values())


# Below this many rows on both sides together, screening costs more Spark jobs than the wide
# shuffle it saves: every key goes straight to the exact comparison.
SCREEN_MIN_ROWS = 100_000


def compare(
    store_df: DataFrame, api_df: DataFrame, ds: Dataset, *, day: date, samples_per_kind_field: int = 20,
    screen_min_rows: int = SCREEN_MIN_ROWS,
) -> Comparison:
    if samples_per_kind_field < 0:
        raise ValueError(f"samples_per_kind_field must be >= 0, got {samples_per_kind_field}")
    _check_columns(store_df, store_schema(ds), "store", ds)
    _check_columns(api_df, api_schema(ds), "API", ds)

    bounds = Day.of(day)
    store_hours, api_hours = _Hours.collect(store_df, api_df, ds, bounds)
    counts, samples, by_side = {}, [], {kind: {"store": 0, "api": 0} for kind in BY_SIDE_KINDS}
    if store_hours.rows + api_hours.rows < screen_min_rows:
        if store_hours.rows or api_hours.rows:
            counts, samples, by_side = _exact(store_df, api_df, ds, samples_per_kind_field)
    else:
        suspects = _suspect_keys(store_df, api_df, ds).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            if store_hours.null_keys or api_hours.null_keys or suspects.count():
                counts, samples, by_side = _exact(_only(store_df, suspects, ds), _only(api_df, suspects, ds), ds,
                                                  samples_per_kind_field)
        finally:
            suspects.unpersist()
    hourly = [HourCount(_iso_hour(bounds.start + timedelta(hours=i)), store_hours.by_hour[i], api_hours.by_hour[i])
              for i in range(bounds.hours)]
    return Comparison(store_hours.rows, api_hours.rows, counts, hourly, samples, by_side)


def _exact(store_df: DataFrame, api_df: DataFrame, ds: Dataset, cap: int):
    """Stage 2 on the rows that need it, in one Spark job: counts per kind and field, samples,
    and the duplicate/null-key counts per side."""
    joined = _store_side(store_df, ds).join(_api_side(api_df, ds), _key_match(ds), "full")
    return _findings(_classify(joined, ds), ds, cap)


# --- inputs -----------------------------------------------------------------------------------


def _check_columns(df: DataFrame, expected: T.StructType, side: str, ds: Dataset) -> None:
    """Fail early and by name: a wrong input type would otherwise surface as a cryptic Spark
    analysis error, or worse, as a silent coercion inside the comparison."""
    have = {f.name: f.dataType for f in df.schema.fields}
    problems = []
    for want in expected.fields:
        got = have.get(want.name)
        if got is None:
            problems.append(f"{want.name}: missing")
        elif isinstance(want.dataType, T.DecimalType) and isinstance(got, T.DecimalType):
            continue  # any exact decimal compares exactly
        elif got != want.dataType:
            problems.append(f"{want.name}: {got.simpleString()}, expected {want.dataType.simpleString()}")
    if problems:
        raise ValueError(f"{ds.name} {side} DataFrame does not fit the contract: " + "; ".join(problems))


def _key_null(ds: Dataset) -> str:
    return "(" + " OR ".join(f"{q(k)} IS NULL" for k in ds.key) + ")"


def _hour(col: str, day: Day) -> str:
    """Index of the UTC hour of the delivery day an instant falls in; null outside the day."""
    micros = f"unix_micros({col})"
    return (f"CASE WHEN {micros} >= {day.start_us}L AND {micros} < {day.end_us}L"
            f" THEN CAST(({micros} - {day.start_us}L) DIV {HOUR_MICROS}L AS INT) END")


def _list(names) -> str:
    return ", ".join(q(n) for n in names)


def _content_order(exprs) -> str:
    return ", ".join(f"{e} ASC NULLS FIRST" for e in exprs)


# Each side is brought into the shape the join stage needs *before* the join: normalised
# comparable values, the null mask and the packed raw row. Those projections run in each side's
# own code-generated stage (the window ends the previous one), which keeps the join stage's
# generated method small enough for the JIT to compile it.


def _store_side(df: DataFrame, ds: Dataset) -> DataFrame:
    """One representative per key (the smallest copy in content order) with its copy count.
    Null-key rows are all kept: they are findings of their own, not copies of each other."""
    ordered = f"PARTITION BY {_list(ds.key)} ORDER BY {_content_order(q(f.name) for f in ds.value_fields)}"
    # The count over the whole key shares the ordered window's spec, so both come from one
    # window operator (a second, unordered spec would cost a second pass over every row).
    return (
        df.selectExpr(
            *[q(n) for n in ds.names],
            f"{_key_null(ds)} AS _s_knull",
            f"row_number() OVER ({ordered}) AS _rn",
            f"count(1) OVER ({ordered} ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS _n",
        )
        .where("_s_knull OR _rn = 1")
        .selectExpr(
            *[f"{q(k)} AS {q('s__' + k)}" for k in ds.key],
            *[f"{store_comparable(f, q(f.name))} AS {q('s__' + f.name)}" for f in ds.value_fields],
            f"{null_mask(ds, lambda f: q(f.name))} AS _s_nulls",
            f"struct({_list(ds.names)}) AS _srow",
            "true AS _s_in",
            "_s_knull",
            "IF(_s_knull, 1L, _n) AS _s_n",
        )
    )


def _api_side(df: DataFrame, ds: Dataset) -> DataFrame:
    """Every distinct copy of a key, with how many identical copies it stands for.

    In a window ordered by content, rank() is the position of a copy's first identical twin, and
    count(*) over the default frame (which runs through the current row's peers) is the position
    of its last one, so the multiplicity is count - rank + 1 without a second shuffle."""
    content = [q(f.name) for f in ds.value_fields] + [PRESENT, BAD_TYPE, f"array_sort(map_entries({RAW}))"]
    ordered = f"PARTITION BY {_list(ds.key)} ORDER BY {_content_order(content)}"
    return (
        df.selectExpr(
            *[q(n) for n in ds.names],
            PRESENT,
            BAD_TYPE,
            RAW,
            f"{_key_null(ds)} AS _a_knull",
            f"rank() OVER ({ordered}) AS _rk",
            f"row_number() OVER ({ordered}) AS _rn",
            f"count(1) OVER ({ordered}) AS _through_peers",
        )
        .where("_a_knull OR _rn = _rk")
        .selectExpr(
            *[f"{q(k)} AS {q('a__' + k)}" for k in ds.key],
            *[f"{api_comparable(f, q(f.name))} AS {q('a__' + f.name)}" for f in ds.value_fields],
            f"{null_mask(ds, lambda f: q(f.name))} AS _a_nulls",
            f"{PRESENT} AS _a_present",
            f"{BAD_TYPE} AS _a_bad",
            f"struct({_list(ds.names)}, {PRESENT}, {BAD_TYPE}, {RAW}) AS _arow",
            "true AS _a_in",
            "_a_knull",
            "(NOT _a_knull AND _rn = 1) AS _a_first",
            "IF(_a_knull, 1L, _through_peers - _rk + 1) AS _a_mult",
            "_rk AS _a_rk",
        )
    )


def _key_match(ds: Dataset):
    return F.expr(" AND ".join(f"{q('s__' + k)} = {q('a__' + k)}" for k in ds.key))


# --- classification ---------------------------------------------------------------------------


def _flag(name: str) -> str:
    return f"coalesce({name}, false)"


def _classify(joined: DataFrame, ds: Dataset) -> DataFrame:
    """Narrow per-row flags and one finding mask per field kind, plus both sides' raw rows kept
    only where there is a finding (for the samples, rendered only on the rows kept)."""
    s_in, a_in = _flag("_s_in"), _flag("_a_in")
    s_knull, a_knull, a_first = _flag("_s_knull"), _flag("_a_knull"), _flag("_a_first")
    # A store representative joins every distinct API copy of its key: count it on one of them.
    s_here = f"({s_in} AND (NOT {a_in} OR {a_first}))"
    matched = f"({s_in} AND {a_in})"
    masks = finding_masks(
        ds,
        present="_a_present",
        bad_type="_a_bad",
        store_null="_s_nulls",
        api_null="_a_nulls",
        differ=differ_mask(ds, lambda f: q(f"s__{f.name}"), lambda f: q(f"a__{f.name}")),
    )
    narrow = [
        *[f"coalesce({q('s__' + k)}, {q('a__' + k)}) AS {q('_k_' + k)}" for k in ds.key],
        f"IF({s_here} AND NOT {s_knull}, _s_n - 1, 0L) AS _s_dup",
        f"IF({a_in} AND NOT {a_knull}, _a_mult - IF({a_first}, 1L, 0L), 0L) AS _a_dup",
        f"({s_in} AND NOT {s_knull} AND NOT {a_in}) AS _missing",
        f"({a_in} AND NOT {a_knull} AND NOT {s_in} AND {a_first}) AS _unexpected",
        f"({s_in} AND {s_knull}) AS _s_nullkey",
        f"({a_in} AND {a_knull}) AS _a_nullkey",
        "_a_rk",
        *[f"IF({matched}, {m}, 0L) AS _m_{kind}" for kind, m in masks.items()],
    ]
    flags = joined.selectExpr(*narrow, "_srow", "_arow")
    found = " OR ".join(
        ["_missing", "_unexpected", "_s_nullkey", "_a_nullkey", "_s_dup > 0", "_a_dup > 0"]
        + [f"_m_{kind} <> 0" for kind in FIELD_KINDS]
    )
    return flags.selectExpr(
        *flags.columns[: len(narrow)],
        f"IF({found}, _srow, NULL) AS _srow",
        f"IF({found}, _arow, NULL) AS _arow",
        f"({found}) AS _any",
    )


# --- stage 0: rows per hour ------------------------------------------------------------------


@dataclass
class _Hours:
    rows: int
    null_keys: int
    by_hour: list[int]

    @classmethod
    def collect(cls, store_df: DataFrame, api_df: DataFrame, ds: Dataset, day: Day) -> tuple[_Hours, _Hours]:
        """Both sides in one grouped count over the window field and the key (a narrow read)."""

        def narrow(df: DataFrame, side: str) -> DataFrame:
            return df.selectExpr(f"'{side}' AS side", f"{_hour(q(ds.window_field), day)} AS hour", f"{_key_null(ds)} AS knull")

        groups = (
            narrow(store_df, "store").unionByName(narrow(api_df, "api"))
            .groupBy("side", "hour")
            .agg(F.expr("count(1) AS rows"), F.expr("count_if(knull) AS null_keys"))
            .collect()
        )
        return cls._of([g for g in groups if g["side"] == "store"], day), cls._of([g for g in groups if g["side"] == "api"], day)

    @classmethod
    def _of(cls, groups: list, day: Day) -> _Hours:
        by_hour = [0] * day.hours
        for g in groups:
            if g["hour"] is not None:
                by_hour[g["hour"]] = int(g["rows"])
        return cls(sum(int(g["rows"]) for g in groups), sum(int(g["null_keys"]) for g in groups), by_hour)


# --- stage 1: screening -----------------------------------------------------------------------


def _by_key(df: DataFrame, ds: Dataset, prefix: str, comparable, *extra: str) -> DataFrame:
    """One side's narrow rows per non-null key: copies, fingerprint (two hashes of the same
    columns, kept apart as plain numbers so the grouping stays a hash aggregation), null mask."""
    values = ", ".join(comparable(f, q(f.name)) for f in ds.value_fields)
    aggs = [
        f"count(1) AS {prefix}_n",
        f"min(xxhash64({values})) AS {prefix}_fp_x",
        f"min(hash({values})) AS {prefix}_fp_m",
        f"min({null_mask(ds, lambda f: q(f.name))}) AS {prefix}_nulls",
        *extra,
    ]
    return df.where(f"NOT {_key_null(ds)}").groupBy(*ds.key).agg(*[F.expr(a) for a in aggs])


def _suspect_keys(store_df: DataFrame, api_df: DataFrame, ds: Dataset) -> DataFrame:
    """The non-null keys that may hold a finding (see the module docstring, stage 1)."""
    store = _by_key(store_df, ds, "_s", store_comparable)
    api = _by_key(api_df, ds, "_a", api_comparable, f"min({PRESENT}) AS _a_present", f"max({BAD_TYPE}) AS _a_bad")
    values = value_bits(ds)
    agree = (
        f"_s_n = 1 AND _a_n = 1 AND _s_fp_x = _a_fp_x AND _s_fp_m = _a_fp_m AND _s_nulls = _a_nulls"
        f" AND (_a_present & {values}) = {values} AND (_a_bad & {values}) = 0"
    )
    return store.join(api, list(ds.key), "full").where(f"NOT coalesce({agree}, false)").select(*ds.key)


def _only(df: DataFrame, suspects: DataFrame, ds: Dataset) -> DataFrame:
    """The rows of one side that stage 2 compares, in one read of the side: the suspect keys
    (a broadcast join, there are few) and every null-key row (which matches nothing)."""
    marked = F.broadcast(suspects.selectExpr(*[q(k) for k in ds.key], "true AS _suspect"))
    return df.join(marked, list(ds.key), "left").where(f"_suspect OR {_key_null(ds)}").select(*df.columns)


def _iso_hour(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


# --- stage 2: counts and samples ----------------------------------------------------------------


BY_SIDE_KINDS = ("duplicate_key", "null_key")


def _findings(classified: DataFrame, ds: Dataset, cap: int):
    """One row per finding, from the few rows that have any, weighted by how many findings it
    stands for (a key held n times is n-1 duplicates); per (kind, field) the total weight and the
    first `cap` rows by key, and per (kind, field, side) the total weight. Only the kept rows are
    rendered to sample text. Returns (counts, samples, by_side)."""
    keys = [f"_k_{k}" for k in ds.key]
    bits = field_bits(ds)

    def text(value: str | None) -> str:
        return "CAST(NULL AS STRING)" if value is None else f"'{value}'"

    def entry(kind: str, fld: str, side: str, weight: str = "1L") -> str:
        return f"named_struct('kind', {kind}, 'field', {fld}, 'side', {side}, 'weight', {weight})"

    record = [
        ("_missing", "missing_in_api", None, "1L"),
        ("_unexpected", "unexpected_in_api", None, "1L"),
        ("_s_dup > 0", "duplicate_key", "store", "_s_dup"),
        ("_a_dup > 0", "duplicate_key", "api", "_a_dup"),
        ("_s_nullkey", "null_key", "store", "1L"),
        ("_a_nullkey", "null_key", "api", "1L"),
    ]
    entries = [f"CASE WHEN {cond} THEN {entry(text(kind), text(None), text(side), w)} END" for cond, kind, side, w in record]
    for f in ds.value_fields:
        # The kind masks are disjoint: a field has at most one finding per record.
        kind = "CASE " + " ".join(f"WHEN {has_bit(f'_m_{k}', bits[f.name])} THEN '{k}'" for k in FIELD_KINDS) + " END"
        entries.append(f"CASE WHEN {kind} IS NOT NULL THEN {entry(kind, text(f.name), text(None))} END")

    carried = [*keys, "_a_rk", "_srow", "_arow"]
    found = (
        classified.where("_any")
        .selectExpr(*carried, f"explode(filter(array({', '.join(entries)}), e -> e IS NOT NULL)) AS e")
        .selectExpr(*carried, "e.*")
    )
    group, by_side = "PARTITION BY kind, field", "PARTITION BY kind, field, side"
    order = f"ORDER BY {_content_order([*keys, 'side', '_a_rk'])}"
    kept = (
        found.selectExpr(
            "*",
            f"row_number() OVER ({group} {order}) AS _rn",
            f"sum(weight) OVER ({group}) AS _n",
            f"row_number() OVER ({by_side} {order}) AS _rn_side",
            f"sum(weight) OVER ({by_side}) AS _n_side",
        )
        # The first row of each group carries the group's total, the first of each side its side's.
        .where(f"_rn <= {max(cap, 1)} OR _rn_side = 1")
        .selectExpr(
            "kind",
            "field",
            "side",
            "_rn",
            "_n",
            "_rn_side",
            "_n_side",
            *[f"{encode_store(ds.by_name[k], q('_k_' + k))} AS {q('_k_' + k)}" for k in ds.key],
            f"IF(_srow IS NOT NULL, {_store_map(ds)}, NULL) AS store",
            f"IF(_arow IS NOT NULL, {_api_map(ds)}, NULL) AS api",
        )
        .collect()
    )
    sides = {kind: {"store": 0, "api": 0} for kind in BY_SIDE_KINDS}
    for r in kept:
        if r.kind in sides and r._rn_side == 1:
            sides[r.kind][r.side] = int(r._n_side)
    counts: dict[str, dict[str, int]] = {}
    for r in kept:
        if r._rn == 1:
            counts.setdefault(r.kind, {})[r.field or RECORD] = int(r._n)
    field_rank = {n: i for i, n in enumerate(ds.names)}
    kind_rank = {k: i for i, k in enumerate(FINDING_KINDS)}
    counts = {kind: dict(sorted(counts[kind].items(), key=lambda kv: field_rank.get(kv[0], -1)))
              for kind in sorted(counts, key=kind_rank.__getitem__)}
    shown = sorted((r for r in kept if r._rn <= cap), key=lambda r: (kind_rank[r.kind], field_rank.get(r.field, -1), r._rn))
    return counts, [_sample(r, ds) for r in shown], sides


def _store_map(ds: Dataset) -> str:
    return "map(" + ", ".join(f"'{f.name}', {encode_store(f, q(f'_srow.{f.name}'))}" for f in ds.fields) + ")"


def _api_map(ds: Dataset) -> str:
    present, bad, raw = (q(f"_arow.{c}") for c in (PRESENT, BAD_TYPE, RAW))
    bits = {f.name: 1 << i for i, f in enumerate(ds.fields)}
    return "map(" + ", ".join(
        f"'{f.name}', {encode_api(f, bits[f.name], q(f'_arow.{f.name}'), present, bad, raw)}" for f in ds.fields
    ) + ")"


def _decode_record(ds: Dataset, encoded: dict | None) -> dict | None:
    if encoded is None:
        return None
    return {f.name: decode(f, encoded.get(f.name)) for f in ds.fields}


def _sample(r, ds: Dataset) -> Sample:
    key = {k: decode(ds.by_name[k], r[f"_k_{k}"]) for k in ds.key}
    if r.field is None:
        store = _decode_record(ds, r.store) if r.kind == "missing_in_api" or r.side == "store" else None
        api = _decode_record(ds, r.api) if r.kind == "unexpected_in_api" or r.side == "api" else None
        return Sample(r.kind, None, key, store, api, r.side)
    f = ds.by_name[r.field]
    return Sample(r.kind, r.field, key, decode(f, r.store[r.field]), decode(f, r.api[r.field]))
