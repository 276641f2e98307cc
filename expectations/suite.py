"""The GX suite of a dataset for a delivery day: contract rules, then config overrides."""

from __future__ import annotations

from datetime import date

import great_expectations as gx
from great_expectations.exceptions import ExpectationNotFoundError
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.registry import get_expectation_impl
from great_expectations.expectations.row_conditions import ComparisonCondition

from jobs.config import ConfigError, Expectations
from reconcilers.contract import Dataset
from expectations.overrides import apply_overrides
from expectations.rules import Rule, check_column, rules


def to_expectation(ds: Dataset, rule: Rule) -> Expectation:
    """The GX expectation of a rule. The stable name and the derived check travel in `meta`."""
    kwargs = dict(rule.kwargs)
    meta = {"name": rule.name, "column": rule.column, "scope": rule.scope}
    if rule.derive:
        meta |= {"derive": rule.derive, "show": list(rule.show)}
    if rule.check:
        meta["check"] = rule.check
    try:
        impl = get_expectation_impl(rule.type)
    except ExpectationNotFoundError:
        raise ConfigError(f"expectations: {ds.name}/{rule.name}: unknown GX expectation type {rule.type!r}") from None
    try:
        return impl(**kwargs, meta=meta, description=rule.description)
    except (TypeError, ValueError) as e:
        detail = " ".join(str(e).split())
        raise ConfigError(f"expectations: {ds.name}/{rule.name}: invalid arguments for {rule.type}: {detail}") from None


def reads(e: Expectation) -> set[str] | None:
    """The columns an expectation reads, or None when it may read any (a SQL query, a table rule)."""
    kw = e.configuration.kwargs
    cols = {kw[k] for k in ("column", "column_A", "column_B") if kw.get(k)} | set(kw.get("column_list") or ())
    cond = getattr(e, "row_condition", None)
    if cond is not None:
        if not isinstance(cond, ComparisonCondition):
            return None
        cols.add(cond.column.name)
    return cols or None


def _check_columns(ds: Dataset, rule: Rule, e: Expectation) -> None:
    known = set(ds.names) | ({check_column(rule.name)} if rule.derive else set())
    unknown = sorted((reads(e) or set()) - known)
    if unknown:
        raise ConfigError(f"expectations: {ds.name}/{rule.name}: no column {', '.join(unknown)} in the {ds.name} contract")


def build_suite(ds: Dataset, day: date, cfg: Expectations) -> gx.ExpectationSuite:
    """The suite `run_suites` validates both sides with. ConfigError on a bad override."""
    chosen = apply_overrides(ds, rules(ds, day, cfg), cfg.overrides)
    expectations = []
    for rule in chosen:
        e = to_expectation(ds, rule)
        _check_columns(ds, rule, e)
        expectations.append(e)
    return gx.ExpectationSuite(
        name=f"{ds.name}-{day.isoformat()}",
        expectations=expectations,
        meta={"dataset": ds.name, "delivery_day": day.isoformat()},
    )
