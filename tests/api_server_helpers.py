"""Test-side tools for the bundled API: a small paging client and an independent diff of served
records against the store. The diff renders store values from the contract on its own (not with
the server's encoder), so a wrong encoder cannot agree with itself."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pyarrow as pa
import requests

from reconcilers.contract import JSON_TYPES, Dataset, day_bounds_utc

KEY = "k"


def iso(t) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def windows(day: date, minutes: int | None) -> list[dict]:
    """Query parameters of the windows that split a delivery day (or the day itself)."""
    if minutes is None:
        return [{"deliveryDay": day.isoformat()}]
    start, end = day_bounds_utc(day)
    out, t = [], start
    while t < end:
        nxt = min(t + timedelta(minutes=minutes), end)
        out.append({"deliveryStartFrom": iso(t), "deliveryStartTo": iso(nxt)})
        t = nxt
    return out


@dataclass
class Fetched:
    records: list[dict] = field(default_factory=list)
    pages: int = 0
    window_of: list[dict] = field(default_factory=list)  # the window params each record came from


def get(session: requests.Session, base_url: str, dataset: str, params: dict, retries: int = 8) -> requests.Response:
    """One page, retrying what a careful client retries: 429/503 (after Retry-After) and truncated bodies."""
    for _ in range(retries):
        r = session.get(f"{base_url}/v1/{dataset}", params=params, timeout=30)
        if r.status_code in (429, 503):
            time.sleep(min(float(r.headers.get("Retry-After", "0")), 0.05))
            continue
        if r.status_code == 200:
            try:
                json.loads(r.content)
            except ValueError:
                continue
        return r
    raise AssertionError(f"no usable answer for {params} after {retries} attempts")


def fetch(base_url: str, dataset: str, day: date, *, minutes: int | None = None, page_size: int = 500,
          api_key: str = KEY, max_pages: int = 10_000) -> Fetched:
    out = Fetched()
    with requests.Session() as s:
        s.headers["X-API-Key"] = api_key
        for win in windows(day, minutes):
            cursor = None
            for _ in range(max_pages):
                params = {**win, "pageSize": page_size, **({"cursor": cursor} if cursor else {})}
                r = get(s, base_url, dataset, params)
                assert r.status_code == 200, r.text
                assert r.headers["content-type"].startswith("application/json")
                body = json.loads(r.content, parse_float=Decimal)
                assert len(body["data"]) <= page_size
                out.records += body["data"]
                out.window_of += [win] * len(body["data"])
                out.pages += 1
                nxt = body["pagination"]["nextCursor"]
                assert nxt is None or nxt != cursor, "cursor did not advance"
                cursor = nxt
                if cursor is None:
                    break
            else:
                raise AssertionError("too many pages")
    return out


def render(value, f):
    """The JSON value the contract says a store value is served as."""
    if value is None:
        return None
    if f.kind == "decimal":
        return str(value.quantize(Decimal(1).scaleb(-f.scale)))
    if f.kind == "timestamp":
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
        return text + (f".{value.microsecond // 1000:03d}Z" if f.unit == "ms" else "Z")
    if f.kind == "date":
        return value.isoformat()
    return value


def _type_ok(v, f) -> bool:
    if f.kind == "decimal":
        return isinstance(v, (Decimal, int)) and not isinstance(v, bool)
    if f.kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, JSON_TYPES[f.kind])


def diff(records: list[dict], store: pa.Table, ds: Dataset, day: date) -> set[tuple]:
    """Findings (kind, key, field) of served records against the store: what the job must report."""
    store_rows = {tuple(r[k] for k in ds.key): r for r in store.to_pylist()}
    key_json = [ds.by_name[k].json for k in ds.key]
    served = Counter(tuple(rec.get(j) for j in key_json) for rec in records)
    first: dict[tuple, dict] = {}
    out: set[tuple] = set()
    for rec in records:
        key = tuple(rec.get(j) for j in key_json)
        if key in first:
            assert rec == first[key], "a duplicated record must be byte-identical"
            continue
        first[key] = rec
    for key in store_rows.keys() - served.keys():
        out.add(("missing_in_api", key, None))
    for key in served.keys() - store_rows.keys():
        out.add(("unexpected_in_api", key, None))
    for key, n in served.items():
        if n > 1:
            out.add(("duplicate_key", key, None))
    for key, rec in first.items():
        row = store_rows.get(key)
        if row is None:
            continue
        row = {**row, ds.day_field: row.get(ds.day_field, day)}
        for f in ds.fields:
            if f.name in ds.key:
                continue
            expected = render(row[f.name], f)
            if f.json not in rec:
                out.add(("null_dropped" if expected is None else "value_dropped", key, f.name))
                continue
            got = rec[f.json]
            if got is None:
                if expected is not None:
                    out.add(("value_nulled", key, f.name))
            elif not _type_ok(got, f):
                out.add(("type_mismatch", key, f.name))
            elif (str(got) if f.kind == "decimal" else got) != expected:
                out.add(("value_mismatch", key, f.name))
    return out


def manifest_set(manifest: dict, ds: Dataset, day: date) -> set[tuple]:
    return {
        (i["kind"], tuple(i["key"][k] for k in ds.key), i["field"])
        for i in manifest["injected"]
        if i["dataset"] == ds.name and i["day"] == day.isoformat()
    }
