"""GX validation results -> `ExpectationResult`: small, JSON-friendly, with a few examples."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    ColumnPairMapExpectation,
    MulticolumnMapExpectation,
)

from reconcilers.result import ExpectationResult

EXAMPLES = 5  # offending rows (or values) kept per failed expectation
ROW_LEVEL = (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)


def plain(value: Any) -> Any:
    """JSON-friendly without losing exactness: decimals as strings, instants as ISO UTC."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # row conditions and other GX objects: their readable form


def _examples(meta: dict, column: str | None, result: dict) -> list[Any]:
    if "check" in meta:  # derived checks hold the offending row's key and values as JSON
        rows = [json.loads(s, parse_float=Decimal) for s in result.get("partial_unexpected_list") or []]
    elif result.get("partial_unexpected_index_list"):
        rows = result["partial_unexpected_index_list"]
        if "derive" in meta:  # a derived value column (a segment's prices) shown as what it is
            rows = [{meta["column"] if k == column else k: v for k, v in row.items()} for row in rows]
    elif result.get("details", {}).get("unexpected_rows") is not None:
        rows = result["details"]["unexpected_rows"]
    else:
        rows = result.get("partial_unexpected_list") or []
    return plain(rows[:EXAMPLES])


def _kwargs(exp, meta: dict) -> dict[str, Any]:
    kwargs = {k: v for k, v in exp.configuration.kwargs.items() if k != "batch_id" and v is not None}
    kwargs = {"type": exp.expectation_type, **kwargs}
    if "check" in meta:
        kwargs["check"] = meta["check"]
    elif "derive" in meta:
        kwargs["derive"] = meta["derive"]
    return plain(kwargs)


def _error(info: dict) -> str | None:
    # GX reports an expectation's own failure at the top level, and a failed metric keyed by
    # the metric's id.
    if "exception_message" in info:
        return info["exception_message"]
    return next((v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("exception_message")), None)


def to_result(side: str, exp, validation) -> ExpectationResult:
    """One expectation's outcome on one side. A row-level expectation that passed the quick
    (BOOLEAN_ONLY) pass without tolerance has no offending row: its count is 0 without a query."""
    meta = exp.meta or {}
    result = validation.result or {}
    error = _error(validation.exception_info or {})
    if error:
        observed: Any = f"error: {str(error).strip().splitlines()[0][:300]}"
        count = None
    elif result:
        observed = result.get("observed_value", result.get("unexpected_percent"))
        count = result.get("unexpected_count")
        if count is None and isinstance(result.get("observed_value"), int) and "details" in result:
            count = result["observed_value"]  # unexpected_rows_expectation: the row count
    else:
        observed = None
        count = 0 if isinstance(exp, ROW_LEVEL) else None
    return ExpectationResult(
        side=side,
        expectation=meta.get("name", exp.expectation_type),
        column=meta.get("column"),
        success=bool(validation.success) and not error,
        observed=plain(observed),
        unexpected_count=count,
        examples=_examples(meta, exp.configuration.kwargs.get("column"), result) if not validation.success or count else [],
        kwargs=_kwargs(exp, meta),
    )
