"""Fault suite, paging: a cursor that never advances, a last page served again, oversized pages,
records from outside the window, and data that changes while the job pages through it."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
import requests

from api_server.faults import FaultError, parse_faults
from api_server.testing import serve
from fake_api import serve as serve_fake
from fake_api import to_json
from fault_helpers import (API_KEY, DAY, PAGE_SIZE, ROWS, case, expect_incomplete, expect_verdict, latest_doc,  # noqa: F401
                           pagerduty, pd, secrets_env, store, store_rows)
from jobs.replay import plan_windows
from reconcilers.contract import TRADES

pytestmark = pytest.mark.slow

WINDOWS = plan_windows(DAY, 360)


def fake_records(store) -> dict[str, list[dict]]:
    return {"trades": to_json(pa.Table.from_pylist(store_rows(store, "trades")), TRADES, DAY)}


def served(api, fault: str) -> int:
    return next(t["served"] for t in api.manifest_data()["transport"] if t["fault"] == fault)


def test_a_cursor_that_never_advances(case):
    # The cursor sticks from the third page on, so windows need more than two pages.
    with serve(case.store, faults=["stuck-cursor"], api_keys=(API_KEY,)) as api:
        cfg = case.config(api.base_url, api={"page_size": 10})
        code = case.run(cfg)
        assert served(api, "stuck-cursor") > 0
    error = expect_incomplete(case, code, cfg, "trades", "page 2: the cursor did not advance (nextCursor '",
                              "was already used); last good cursor '", "&cursor=")
    assert error.startswith("trades window ")


def test_a_page_past_the_end_that_repeats_the_last_page(case):
    with serve(case.store, faults=["repeat-last-page"], api_keys=(API_KEY,)) as api:
        cfg = case.config(api.base_url)
        code = case.run(cfg)
        assert served(api, "repeat-last-page") > 0
    error = expect_incomplete(case, code, cfg, "trades", "record for record", "last good cursor '")
    assert error.startswith("trades window ")


def test_more_records_than_the_page_size(case):
    w = WINDOWS[2]

    def stuff(req, env):
        if req.params.get("deliveryStartFrom") == w.start and "cursor" not in req.params and req.page_size > 1:
            env["data"] = env["data"] + env["data"][:3]
        return env

    with serve_fake(fake_records(case.store), api_key=API_KEY, edit=stuff) as api:
        cfg = case.config(api.base_url)
        code = case.run(cfg)
    expect_incomplete(case, code, cfg, "trades", f"trades {w.label()} page 1: {PAGE_SIZE + 3} records on a page of at most "
                      f"{PAGE_SIZE} requested", "last good cursor none (first page)")


def test_records_outside_the_requested_window(case):
    w, later = WINDOWS[1], WINDOWS[3]

    def leak(req, env):
        if req.params.get("deliveryStartFrom") == w.start and "cursor" in req.params:
            env["data"][0] = {**env["data"][0], "deliveryStart": later.start}
        return env

    with serve_fake(fake_records(case.store), api_key=API_KEY, edit=leak) as api:
        cfg = case.config(api.base_url)
        code = case.run(cfg)
    expect_incomplete(case, code, cfg, "trades", f"trades {w.label()} page 2: 1 record(s) outside the window, "
                      f"the first with deliveryStart {later.start}")


# ---------------------------------------------------------------- data that changes during the read


def page_through(base_url: str, path: str, page_size: int) -> Counter:
    """Every key served, window by window, following cursors as a client should."""
    seen: Counter = Counter()
    with requests.Session() as s:
        s.headers["X-API-Key"] = API_KEY
        for w in WINDOWS:
            params = {"deliveryStartFrom": w.start, "deliveryStartTo": w.end, "pageSize": page_size}
            while True:
                body = s.get(f"{base_url}/v1/{path}", params=params, timeout=10).json()
                seen.update((r["tradeId"], r["revisionNo"]) for r in body["data"])
                if body["pagination"]["nextCursor"] is None:
                    break
                params["cursor"] = body["pagination"]["nextCursor"]
    return seen


def keys(entries: list[dict]) -> set[tuple]:
    return {(k["trade_id"], k["revision_no"]) for k in entries}


def test_mutate_during_read_keyset_paging_serves_each_record_once(store):
    """The server side of the fault on its own: raw paging, no job."""
    original = {(r["trade_id"], r["revision_no"]) for r in store_rows(store, "trades")}
    with serve(store, faults=["mutate-during-read:changes=2,inserts=1"], api_keys=(API_KEY,)) as api:
        seen = page_through(api.base_url, "trades", 10)
        m = api.manifest_data()
    events = m["mutations"]
    ahead = set().union(*(keys(e["inserted_ahead"]) for e in events))
    behind = set().union(*(keys(e["inserted_behind"]) for e in events))
    assert behind and ahead and sum(len(e["changed_behind"]) for e in events) > 0
    assert max(seen.values()) == 1  # no duplicates
    assert original <= set(seen)  # no skips
    assert set(seen) - original == ahead  # inserted ahead of the cursor: served; behind it: never
    assert not behind & set(seen)
    assert m["expected"]["trades"][DAY.isoformat()]["unexpected_in_api"] == {"*": len(ahead)}


def test_mutate_during_read_cannot_be_mixed_with_data_faults():
    with pytest.raises(FaultError, match="cannot be combined with data faults"):
        parse_faults(["mutate-during-read", "drop-nulls"])


def test_data_changing_during_the_read_gives_exactly_the_changes(case):
    with serve(case.store, faults=["mutate-during-read:changes=2,inserts=1"], api_keys=(API_KEY,)) as api:
        cfg = case.config(api.base_url, api={"page_size": 10})
        code = case.run(cfg)
        m = api.manifest_data()
    want = m["expected"]["trades"][DAY.isoformat()]
    changed = set().union(*(keys(e["changed_ahead"]) for e in m["mutations"]))
    inserted = set().union(*(keys(e["inserted_ahead"]) for e in m["mutations"]))
    assert want == {"unexpected_in_api": {"*": len(inserted)}, "value_mismatch": {"price": len(changed)}}
    assert len(m["mutations"]) >= len(WINDOWS)  # every window changed under the reader at least once
    doc = expect_verdict(case, code, cfg, "trades", want)
    # The exact records, not only the counts (the samples cap is above these numbers).
    found = {(s["kind"], s["key"]["trade_id"], s["key"]["revision_no"]) for s in doc["samples"]}
    assert found == ({("value_mismatch", *k) for k in changed} | {("unexpected_in_api", *k) for k in inserted})
    assert doc["rows"]["store"] == ROWS["trades"] and doc["rows"]["api"] == ROWS["trades"] + len(inserted)
    assert latest_doc(cfg, "trades")["api_stats"]["windows_failed"] == 0
