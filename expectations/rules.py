"""The data-quality rules of a dataset, derived from the contract and the market rules.

Pure: no Spark, no GX objects. Each rule has a stable name (what config overrides refer to), the
GX expectation type and kwargs that check it, and, for rules GX has no expectation for, `check`:
a Spark SQL predicate that is TRUE on an offending row. Those rules become a derived column
(null when the row is fine) that GX validates with `expect_column_values_to_be_null`, so every
rule of a side is decided in the same cached pass instead of one Spark query per rule.

Price limits hold per market segment. A GX row condition per segment would cost two more
passes over the data per segment (GX aggregates each filtered domain separately), so each
segment's prices are a derived column instead (price where market_segment is that segment,
else null) that `expect_column_values_to_be_between` checks like any column.

Rules about records rather than rows (the key, the revisions of an id) have scope "records":
they read only the key and `updated_at`, so they run on a narrow copy of those columns and the
one shuffle they share moves a few columns instead of whole rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from jobs.config import Expectations
from reconcilers.contract import MARKET_TZ, PRODUCT_MINUTES, Dataset
from expectations.limits import ORDER_SEGMENT, limit_in_force

CHECK_PREFIX = "_chk_"
PRICE = "price"
SEGMENT = "market_segment"
CONTINUOUS = "CONTINUOUS"
REVISION = "revision_no"
UPDATED = "updated_at"


@dataclass(frozen=True)
class Rule:
    name: str  # stable: referred to by config overrides and shown in reports
    type: str  # GX expectation type
    kwargs: dict[str, Any]
    column: str | None  # the column the rule is about; None for record-level rules
    description: str
    check: str | None = None  # Spark SQL, TRUE when a row breaks the rule
    derive: str | None = None  # Spark SQL of the derived column kwargs["column"] names
    scope: str = "rows"  # or "records": reads only the key and updated_at (see above)
    show: tuple[str, ...] = field(default=())  # columns `derive` reads; a check's example shows them


def check_column(name: str) -> str:
    return CHECK_PREFIX + re.sub(r"\W", "_", name)


def _check(
    name: str, ds: Dataset, column: str | None, sql: str, description: str, show: tuple[str, ...], scope: str = "rows"
) -> Rule:
    shown = tuple(dict.fromkeys((*ds.key, *show)))
    example = ", ".join(f"'{c}', `{c}`" for c in shown)
    return Rule(
        name,
        "expect_column_values_to_be_null",
        {"column": check_column(name)},
        column,
        description,
        check=sql,
        derive=f"CASE WHEN {sql} THEN to_json(named_struct({example})) END",
        show=shown,
        scope=scope,
    )


def _tick(scale: int) -> str:
    return format(Decimal(1).scaleb(-scale), "f")  # 2 -> "0.01"


def _required(ds: Dataset) -> list[Rule]:
    return [
        Rule(f"not_null.{f.name}", "expect_column_values_to_not_be_null", {"column": f.name}, f.name,
             f"{f.name} is required by the contract")
        for f in ds.fields
        if not f.nullable
    ]


def _key(ds: Dataset) -> list[Rule]:
    # A check in the records pass rather than GX's expect_compound_columns_to_be_unique: the count
    # over the key shares the revision rules' shuffle (a partitioning by the id satisfies one by the
    # whole key), where GX's own would shuffle the rows again for each of its metric queries. A key
    # with a null part is not_null's finding, never a duplicate of another.
    keys = ", ".join(ds.key)
    known = " AND ".join(f"{k} IS NOT NULL" for k in ds.key)
    return [
        _check("key_unique", ds, None, f"{known} AND count(1) OVER (PARTITION BY {keys}) > 1",
               f"each ({keys}) occurs once", (), scope="records")
    ]


def _enums(ds: Dataset) -> list[Rule]:
    return [
        Rule(f"in_set.{f.name}", "expect_column_values_to_be_in_set", {"column": f.name, "value_set": list(f.enum)},
             f.name, f"{f.name} is one of {', '.join(f.enum)}")
        for f in ds.fields
        if f.enum
    ]


def _price_limits(ds: Dataset, day: date, cfg: Expectations) -> list[Rule]:
    if PRICE not in ds.by_name:
        return []
    seg_field = ds.by_name.get(SEGMENT)
    segments = seg_field.enum if seg_field else (ORDER_SEGMENT,)
    rules = []
    for seg in segments:
        lim = limit_in_force(cfg.price_limits, seg, day)
        if lim is None:  # the segment did not trade yet (IDA before its launch): nothing to hold it to
            continue
        name = f"price_within_limits.{seg}"
        about = f"{seg} price within [{lim.min:g}, {lim.max:g}] EUR/MWh (limit from {lim.effective_from})"
        limits = {"min_value": lim.min, "max_value": lim.max}
        if seg_field:
            rules.append(Rule(name, "expect_column_values_to_be_between", {"column": check_column(name), **limits},
                              PRICE, about, derive=f"CASE WHEN {SEGMENT} = '{seg}' THEN {PRICE} END",
                              show=(SEGMENT, PRICE)))
        else:
            rules.append(Rule(name, "expect_column_values_to_be_between", {"column": PRICE, **limits}, PRICE, about))
    return rules


def _ticks(ds: Dataset) -> list[Rule]:
    # The API side carries decimals wider than the contract, so an off-tick value shows here.
    return [
        # round() rather than `% 0.01`: the same test, at a tenth of the CPU on wide decimals.
        _check(f"on_tick.{f.name}", ds, f.name, f"round({f.name}, {f.scale}) <> {f.name}",
               f"{f.name} is a multiple of {_tick(f.scale)}", (f.name,))
        for f in ds.fields
        if f.kind == "decimal" and f.scale is not None
    ]


def _delivery(ds: Dataset) -> list[Rule]:
    names = ds.by_name
    rules = []
    if {"delivery_start", "delivery_end"} <= names.keys():
        minutes = ", ".join(str(m) for m in sorted(set(PRODUCT_MINUTES.values())))
        rules.append(_check(
            "delivery_period", ds, "delivery_end",
            "delivery_end <= delivery_start OR "
            f"(unix_micros(delivery_end) - unix_micros(delivery_start)) / 60000000 NOT IN ({minutes})",
            f"delivery_end after delivery_start by one of {minutes} minutes",
            ("delivery_start", "delivery_end"),
        ))
    if {"execution_time", "delivery_start", SEGMENT} <= names.keys():
        rules.append(_check(
            "executed_before_delivery", ds, "execution_time",
            f"{SEGMENT} = '{CONTINUOUS}' AND execution_time >= delivery_start",
            "continuous trades are executed before delivery starts (gate closure)",
            (SEGMENT, "execution_time", "delivery_start"),
        ))
    if "delivery_start" in names and ds.day_field in names:
        rules.append(_check(
            "delivery_day_local", ds, ds.day_field,
            f"{ds.day_field} <> to_date(from_utc_timestamp(delivery_start, '{MARKET_TZ.key}'))",
            f"{ds.day_field} is the {MARKET_TZ.key} calendar day of delivery_start",
            ("delivery_start", ds.day_field),
        ))
    return rules


def _revisions(ds: Dataset) -> list[Rule]:
    if REVISION not in ds.key or UPDATED not in ds.by_name:
        return []
    ids = [k for k in ds.key if k != REVISION]
    window = f"OVER (PARTITION BY {', '.join(ids)} ORDER BY {REVISION}, {UPDATED})"
    prev = f"lag({REVISION}) {window}"
    # A repeated revision is key_unique's finding, so a step of 0 is not a gap here. Rows with a
    # null id belong to no record and are left to not_null.
    known = " AND ".join(f"{i} IS NOT NULL" for i in ids)
    return [
        _check(
            "revisions_contiguous", ds, REVISION,
            f"{known} AND IF({prev} IS NULL, {REVISION} <> 1, {REVISION} - {prev} > 1)",
            f"revisions of each {', '.join(ids)} run 1..n without gaps",
            (REVISION, UPDATED),
            scope="records",
        ),
        _check(
            "revisions_ordered", ds, UPDATED,
            f"{known} AND {UPDATED} < lag({UPDATED}) {window}",
            f"{UPDATED} does not go back as the revision increases",
            (REVISION, UPDATED),
            scope="records",
        ),
    ]


def rules(ds: Dataset, day: date, cfg: Expectations) -> list[Rule]:
    """Every built-in rule of `ds` for `day`, before config overrides."""
    return [
        *_required(ds),
        *_key(ds),
        *_enums(ds),
        *_price_limits(ds, day, cfg),
        *_ticks(ds),
        *_delivery(ds),
        *_revisions(ds),
    ]
