"""The query of a data request: a delivery day or a delivery-time window, a page size, a cursor.

Strict on purpose: an unknown or repeated parameter is a 400, so a client typo (`pagesize`) can
never silently fall back to a default and make a reconciliation read something else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from api_server.problems import Problem
from reconcilers.contract import Dataset, day_bounds_utc, delivery_day_of

DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 2000
PARAMS = ("deliveryDay", "deliveryStartFrom", "deliveryStartTo", "pageSize", "cursor")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class Query:
    ds: Dataset
    day: date
    start_us: int
    end_us: int
    page_size: int
    cursor: str | None


def to_us(t: datetime) -> int:
    return (t - _EPOCH) // _US


def iso_z(us: int) -> str:
    """A UTC instant as ISO 8601 with `Z`, at the precision it needs (seconds, ms or µs)."""
    t = _EPOCH + timedelta(microseconds=us)
    if t.microsecond == 0:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if t.microsecond % 1000 == 0:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _bad(detail: str, **extra) -> Problem:
    return Problem(400, detail, slug="invalid-query", **extra)


def _instant(name: str, text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        raise _bad(f"{name} must be an ISO 8601 instant with an offset, e.g. 2026-10-25T00:00:00Z (got {text!r})")
    try:
        return t.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise _bad(f"{name} is out of range (got {text!r})") from None


def _day_bounds(day: date, text: str) -> tuple[datetime, datetime]:
    try:
        return day_bounds_utc(day)
    except (OverflowError, ValueError):
        raise _bad(f"deliveryDay is out of range (got {text!r})") from None


def parse_query(ds: Dataset, items: list[tuple[str, str]]) -> Query:
    seen: dict[str, str] = {}
    for key, value in items:
        if key not in PARAMS:
            raise _bad(f"unknown query parameter {key!r}; this endpoint takes {', '.join(PARAMS)}")
        if key in seen:
            raise _bad(f"query parameter {key!r} given more than once")
        seen[key] = value

    size_text = seen.get("pageSize")
    page_size = DEFAULT_PAGE_SIZE
    if size_text is not None:
        try:
            page_size = int(size_text)
        except ValueError:
            raise _bad(f"pageSize must be an integer (got {size_text!r})") from None
        if page_size > MAX_PAGE_SIZE:
            raise Problem(400, f"pageSize {page_size} exceeds the maximum page size of {MAX_PAGE_SIZE}",
                          slug="page-size-too-large", maxPageSize=MAX_PAGE_SIZE)
        if page_size < 1:
            raise _bad(f"pageSize must be at least 1 (got {page_size})")

    day_text, frm, to = seen.get("deliveryDay"), seen.get("deliveryStartFrom"), seen.get("deliveryStartTo")
    if day_text is not None and (frm is not None or to is not None):
        raise _bad("give either deliveryDay or deliveryStartFrom and deliveryStartTo, not both")
    if day_text is not None:
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            raise _bad(f"deliveryDay must be a date YYYY-MM-DD (got {day_text!r})") from None
        if len(day_text) != 10:
            raise _bad(f"deliveryDay must be a date YYYY-MM-DD (got {day_text!r})")
        start, end = _day_bounds(day, day_text)
    elif frm is not None and to is not None:
        start, end = _instant("deliveryStartFrom", frm), _instant("deliveryStartTo", to)
        if start >= end:
            raise _bad("deliveryStartFrom must be before deliveryStartTo (the window is [from, to))")
        try:
            day, last_day = delivery_day_of(start), delivery_day_of(end - _US)
            _day_bounds(day, frm)
        except (OverflowError, ValueError):
            raise _bad("the window is out of range") from None
        if day != last_day:
            raise _bad(f"the window spans delivery days {day} and {last_day} (Europe/Amsterdam); "
                       "split it so that each request stays within one delivery day")
    else:
        raise _bad("give deliveryDay, or both deliveryStartFrom and deliveryStartTo")

    cursor = seen.get("cursor")
    if cursor is not None and not cursor:
        raise _bad("cursor must not be empty; leave it out for the first page")
    return Query(ds, day, to_us(start), to_us(end), page_size, cursor)
