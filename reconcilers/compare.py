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
      field kind) and cached; the raw rows of both sides ride along only on rows that have a
      finding;
   d. one aggregation gives every record-level counter; then the finding rows are exploded into
      one row per finding, counted per (kind, field), and the first N by key kept with a window;
      only those are rendered into sample text.

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
from functools import reduce
from operator import and_, or_

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
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
    store_comparable,
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
    counts, samples, by_side = {}, [], {}
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
    """Stage 2 on the rows that need it: counts per kind and field, samples, and the
    duplicate/null-key counts per side."""
    joined = _store_side(store_df, ds).join(_api_side(api_df, ds), _key_match(ds), "full")
    classified = _classify(joined, ds).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        totals = _Totals.collect(classified)
        field_counts, samples = {}, []
        if totals.any_findings:
            field_counts, samples = _findings(classified, ds, cap)
    finally:
        classified.unpersist()
    counts = {}
    for kind in FINDING_KINDS:
        if totals.record.get(kind):
            counts[kind] = {RECORD: totals.record[kind]}
        if field_counts.get(kind):
            counts[kind] = field_counts[kind]
    return counts, samples, totals.by_side


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


def _key_null(ds: Dataset) -> Column:
    return reduce(or_, [F.col(k).isNull() for k in ds.key])


def _hour(col: Column, day: Day) -> Column:
    """Index of the UTC hour of the delivery day an instant falls in; null outside the day."""
    micros = F.unix_micros(col)
    inside = (micros >= F.lit(day.start_us)) & (micros < F.lit(day.end_us))
    return F.when(inside, ((micros - F.lit(day.start_us)) / F.lit(HOUR_MICROS)).cast("int"))


# Each side is brought into the shape the join stage needs *before* the join: normalised
# comparable values, the null mask and the packed raw row. Those projections run in each side's
# own code-generated stage (the window ends the previous one), which keeps the join stage's
# generated method small enough for the JIT to compile it.


def _store_side(df: DataFrame, ds: Dataset) -> DataFrame:
    """One representative per key (the smallest copy in content order) with its copy count.
    Null-key rows are all kept: they are findings of their own, not copies of each other."""
    ordered = Window.partitionBy(*ds.key).orderBy(*[F.col(f.name).asc_nulls_first() for f in ds.value_fields])
    # The count over the whole key shares the ordered window's spec, so both come from one
    # window operator (a second, unordered spec would cost a second pass over every row).
    whole_key = ordered.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    knull = F.col("_s_knull")
    return (
        df.select(
            *ds.names,
            _key_null(ds).alias("_s_knull"),
            F.row_number().over(ordered).alias("_rn"),
            F.count(F.lit(1)).over(whole_key).alias("_n"),
        )
        .where(knull | (F.col("_rn") == 1))
        .select(
            *[F.col(k).alias(f"s__{k}") for k in ds.key],
            *[store_comparable(f, F.col(f.name)).alias(f"s__{f.name}") for f in ds.value_fields],
            null_mask(ds, lambda f: F.col(f.name)).alias("_s_nulls"),
            F.struct(*ds.names).alias("_srow"),
            F.lit(True).alias("_s_in"),
            knull,
            F.when(knull, F.lit(1)).otherwise(F.col("_n")).alias("_s_n"),
        )
    )


def _api_side(df: DataFrame, ds: Dataset) -> DataFrame:
    """Every distinct copy of a key, with how many identical copies it stands for.

    In a window ordered by content, rank() is the position of a copy's first identical twin, and
    count(*) over the default frame (which runs through the current row's peers) is the position
    of its last one, so the multiplicity is count - rank + 1 without a second shuffle."""
    content = [F.col(f.name).asc_nulls_first() for f in ds.value_fields] + [
        F.col(PRESENT),
        F.col(BAD_TYPE),
        F.array_sort(F.map_entries(F.col(RAW))).asc_nulls_first(),
    ]
    ordered = Window.partitionBy(*ds.key).orderBy(*content)
    knull = F.col("_a_knull")
    return (
        df.select(
            *ds.names,
            PRESENT,
            BAD_TYPE,
            RAW,
            _key_null(ds).alias("_a_knull"),
            F.rank().over(ordered).alias("_rk"),
            F.row_number().over(ordered).alias("_rn"),
            F.count(F.lit(1)).over(ordered).alias("_through_peers"),
        )
        .where(knull | (F.col("_rn") == F.col("_rk")))
        .select(
            *[F.col(k).alias(f"a__{k}") for k in ds.key],
            *[api_comparable(f, F.col(f.name)).alias(f"a__{f.name}") for f in ds.value_fields],
            null_mask(ds, lambda f: F.col(f.name)).alias("_a_nulls"),
            F.col(PRESENT).alias("_a_present"),
            F.col(BAD_TYPE).alias("_a_bad"),
            F.struct(*ds.names, PRESENT, BAD_TYPE, RAW).alias("_arow"),
            F.lit(True).alias("_a_in"),
            knull,
            (~knull & (F.col("_rn") == 1)).alias("_a_first"),
            F.when(knull, F.lit(1)).otherwise(F.col("_through_peers") - F.col("_rk") + 1).alias("_a_mult"),
            F.col("_rk").alias("_a_rk"),
        )
    )


def _key_match(ds: Dataset) -> Column:
    return reduce(and_, [F.col(f"s__{k}") == F.col(f"a__{k}") for k in ds.key])


# --- classification ---------------------------------------------------------------------------


def _flag(name: str) -> Column:
    return F.coalesce(F.col(name), F.lit(False))


def _classify(joined: DataFrame, ds: Dataset) -> DataFrame:
    """Narrow per-row flags and one finding mask per field kind, plus both sides' raw rows kept
    only where there is a finding (for the samples, rendered in job 2 on those rows only)."""
    s_in, a_in = _flag("_s_in"), _flag("_a_in")
    s_knull, a_knull, a_first = _flag("_s_knull"), _flag("_a_knull"), _flag("_a_first")
    # A store representative joins every distinct API copy of its key: count it on one of them.
    s_here = s_in & (~a_in | a_first)
    matched = s_in & a_in
    masks = finding_masks(
        ds,
        present=F.col("_a_present"),
        bad_type=F.col("_a_bad"),
        store_null=F.col("_s_nulls"),
        api_null=F.col("_a_nulls"),
        differ=differ_mask(ds, lambda f: F.col(f"s__{f.name}"), lambda f: F.col(f"a__{f.name}")),
    )
    narrow = [
        *[F.coalesce(F.col(f"s__{k}"), F.col(f"a__{k}")).alias(f"_k_{k}") for k in ds.key],
        F.when(s_here & ~s_knull, F.col("_s_n") - 1).otherwise(F.lit(0)).alias("_s_dup"),
        F.when(a_in & ~a_knull, F.col("_a_mult") - F.when(a_first, 1).otherwise(0)).otherwise(F.lit(0)).alias("_a_dup"),
        (s_in & ~s_knull & ~a_in).alias("_missing"),
        (a_in & ~a_knull & ~s_in & a_first).alias("_unexpected"),
        (s_in & s_knull).alias("_s_nullkey"),
        (a_in & a_knull).alias("_a_nullkey"),
        "_a_rk",
        *[F.when(matched, m).otherwise(F.lit(0).cast("long")).alias(f"_m_{kind}") for kind, m in masks.items()],
    ]
    flags = joined.select(*narrow, "_srow", "_arow")
    found = reduce(
        or_,
        [F.col(c) for c in ("_missing", "_unexpected", "_s_nullkey", "_a_nullkey")]
        + [F.col(c) > 0 for c in ("_s_dup", "_a_dup")]
        + [F.col(f"_m_{kind}") != 0 for kind in FIELD_KINDS],
    )
    return flags.select(
        *flags.columns[: len(narrow)],
        F.when(found, F.col("_srow")).alias("_srow"),
        F.when(found, F.col("_arow")).alias("_arow"),
        found.alias("_any"),
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
            return df.select(F.lit(side).alias("side"), _hour(F.col(ds.window_field), day).alias("hour"),
                             _key_null(ds).alias("knull"))

        groups = (
            narrow(store_df, "store").unionByName(narrow(api_df, "api"))
            .groupBy("side", "hour")
            .agg(F.count(F.lit(1)).alias("rows"), F.count_if(F.col("knull")).alias("null_keys"))
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


def _by_key(df: DataFrame, ds: Dataset, prefix: str, comparable, *extra: Column) -> DataFrame:
    """One side's narrow rows per non-null key: copies, fingerprint (two hashes of the same
    columns, kept apart as plain numbers so the grouping stays a hash aggregation), null mask."""
    values = [comparable(f, F.col(f.name)) for f in ds.value_fields]
    return (
        df.where(~_key_null(ds))
        .groupBy(*ds.key)
        .agg(
            F.count(F.lit(1)).alias(f"{prefix}_n"),
            F.min(F.xxhash64(*values)).alias(f"{prefix}_fp_x"),
            F.min(F.hash(*values)).alias(f"{prefix}_fp_m"),
            F.min(null_mask(ds, lambda f: F.col(f.name))).alias(f"{prefix}_nulls"),
            *extra,
        )
    )


def _suspect_keys(store_df: DataFrame, api_df: DataFrame, ds: Dataset) -> DataFrame:
    """The non-null keys that may hold a finding (see the module docstring, stage 1)."""
    store = _by_key(store_df, ds, "_s", store_comparable)
    api = _by_key(api_df, ds, "_a", api_comparable,
                  F.min(F.col(PRESENT)).alias("_a_present"), F.max(F.col(BAD_TYPE)).alias("_a_bad"))
    values = F.lit(sum(field_bits(ds).values())).cast("long")
    agree = (
        (F.col("_s_n") == 1)
        & (F.col("_a_n") == 1)
        & (F.col("_s_fp_x") == F.col("_a_fp_x"))
        & (F.col("_s_fp_m") == F.col("_a_fp_m"))
        & (F.col("_s_nulls") == F.col("_a_nulls"))
        & (F.col("_a_present").bitwiseAND(values) == values)
        & (F.col("_a_bad").bitwiseAND(values) == 0)
    )
    return store.join(api, list(ds.key), "full").where(~F.coalesce(agree, F.lit(False))).select(*ds.key)


def _only(df: DataFrame, suspects: DataFrame, ds: Dataset) -> DataFrame:
    """The rows of one side that stage 2 compares: the suspect keys and every null-key row."""
    return df.join(suspects, list(ds.key), "left_semi").unionByName(df.where(_key_null(ds)))


# --- stage 2: totals --------------------------------------------------------------------------


@dataclass
class _Totals:
    """Record-level counters of the exact comparison, in one small aggregation."""

    row: dict

    @classmethod
    def collect(cls, classified: DataFrame) -> _Totals:
        any_field = reduce(or_, [F.col(f"_m_{k}") != 0 for k in FIELD_KINDS])
        row = classified.agg(
            F.count_if(F.col("_missing")).alias("missing_in_api"),
            F.count_if(F.col("_unexpected")).alias("unexpected_in_api"),
            F.sum("_s_dup").alias("duplicate_key/store"),
            F.sum("_a_dup").alias("duplicate_key/api"),
            F.count_if(F.col("_s_nullkey")).alias("null_key/store"),
            F.count_if(F.col("_a_nullkey")).alias("null_key/api"),
            F.count_if(any_field).alias("_field_findings"),
        ).collect()[0]
        return cls(row.asDict())

    def _get(self, name: str) -> int:
        return int(self.row[name] or 0)

    @property
    def by_side(self) -> dict[str, dict[str, int]]:
        return {kind: {side: self._get(f"{kind}/{side}") for side in ("store", "api")} for kind in ("duplicate_key", "null_key")}

    @property
    def record(self) -> dict[str, int]:
        out = {kind: self._get(kind) for kind in ("missing_in_api", "unexpected_in_api")}
        out.update({kind: sum(sides.values()) for kind, sides in self.by_side.items()})
        return out

    @property
    def any_findings(self) -> bool:
        return bool(self._get("_field_findings") or any(self.record.values()))


def _iso_hour(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


# --- stage 2: per-field counts and samples -------------------------------------------------------


def _findings(classified: DataFrame, ds: Dataset, cap: int) -> tuple[dict[str, dict[str, int]], list[Sample]]:
    """One row per finding, from the few rows that have any; per (kind, field) a count and the
    first `cap` by key. Only the kept rows are rendered to sample text."""
    keys = [f"_k_{k}" for k in ds.key]
    bits = field_bits(ds)
    no_text = F.lit(None).cast("string")

    def entry(kind: Column, fld: Column, side: Column) -> Column:
        return F.struct(kind.alias("kind"), fld.alias("field"), side.alias("side"))

    record = [
        (F.col("_missing"), "missing_in_api", no_text),
        (F.col("_unexpected"), "unexpected_in_api", no_text),
        (F.col("_s_dup") > 0, "duplicate_key", F.lit("store")),
        (F.col("_a_dup") > 0, "duplicate_key", F.lit("api")),
        (F.col("_s_nullkey"), "null_key", F.lit("store")),
        (F.col("_a_nullkey"), "null_key", F.lit("api")),
    ]
    entries = [F.when(cond, entry(F.lit(kind), no_text, side)) for cond, kind, side in record]
    for f in ds.value_fields:
        # The kind masks are disjoint: a field has at most one finding per record.
        kind = reduce(
            lambda acc, k: acc.when(has_bit(F.col(f"_m_{k}"), bits[f.name]), F.lit(k)),
            FIELD_KINDS[1:],
            F.when(has_bit(F.col(f"_m_{FIELD_KINDS[0]}"), bits[f.name]), F.lit(FIELD_KINDS[0])),
        )
        entries.append(F.when(kind.isNotNull(), entry(kind, F.lit(f.name), no_text)))

    found = (
        classified.where(F.col("_any"))
        .select(*keys, "_a_rk", "_srow", "_arow", F.explode(F.filter(F.array(*entries), lambda e: e.isNotNull())).alias("e"))
        .select(*keys, "_a_rk", "_srow", "_arow", "e.*")
    )
    group = Window.partitionBy("kind", "field")
    order = [F.col(c).asc_nulls_first() for c in (*keys, "side", "_a_rk")]
    kept = (
        found.select("*", F.row_number().over(group.orderBy(*order)).alias("_rn"), F.count(F.lit(1)).over(group).alias("_n"))
        .where(F.col("_rn") <= max(cap, 1))  # the first row of each group carries the group's count
        .select(
            "kind",
            "field",
            "side",
            "_rn",
            "_n",
            *[encode_store(ds.by_name[k], F.col(f"_k_{k}")).alias(f"_k_{k}") for k in ds.key],
            F.when(F.col("_srow").isNotNull(), _store_map(ds)).alias("store"),
            F.when(F.col("_arow").isNotNull(), _api_map(ds)).alias("api"),
        )
        .collect()
    )
    field_counts: dict[str, dict[str, int]] = {}
    for r in kept:
        if r.field is not None and r._rn == 1:
            field_counts.setdefault(r.kind, {})[r.field] = int(r._n)
    field_rank = {n: i for i, n in enumerate(ds.names)}
    for kind, by_field in field_counts.items():
        field_counts[kind] = dict(sorted(by_field.items(), key=lambda kv: field_rank[kv[0]]))
    kind_rank = {k: i for i, k in enumerate(FINDING_KINDS)}
    shown = sorted((r for r in kept if r._rn <= cap), key=lambda r: (kind_rank[r.kind], field_rank.get(r.field, -1), r._rn))
    return field_counts, [_sample(r, ds) for r in shown]


def _store_map(ds: Dataset) -> Column:
    return F.create_map(*[x for f in ds.fields for x in (F.lit(f.name), encode_store(f, F.col(f"_srow.{f.name}")))])


def _api_map(ds: Dataset) -> Column:
    present, bad, raw = (F.col(f"_arow.{c}") for c in (PRESENT, BAD_TYPE, RAW))
    bits = {f.name: 1 << i for i, f in enumerate(ds.fields)}
    return F.create_map(
        *[x for f in ds.fields for x in (F.lit(f.name), encode_api(f, bits[f.name], F.col(f"_arow.{f.name}"), present, bad, raw))]
    )


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
