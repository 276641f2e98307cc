from datetime import date, timedelta
from decimal import Decimal

import pyarrow.compute as pc
import pytest

from jobs.seed import orders_table, seed_day, trades_table
from reconcilers.contract import day_bounds_utc, delivery_day_of, quarter_hours


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25), date(2026, 12, 2)])
def test_quarter_hour_products_cover_the_local_day(day):
    t = trades_table(day, 20_000, seed=1)
    qh = t.filter(pc.equal(t["product_type"], "QH"))
    starts = set(qh["delivery_start"].to_pylist())
    assert len(starts) == quarter_hours(day)  # 92 / 100 / 96
    lo, hi = day_bounds_utc(day)
    assert min(starts) == lo and max(starts) == hi - timedelta(minutes=15)
    assert {delivery_day_of(s) for s in starts} == {day}


def test_long_day_has_the_repeated_hour_twice_in_utc():
    t = trades_table(date(2026, 10, 25), 20_000, seed=1)
    qh = t.filter(pc.equal(t["product_type"], "QH"))
    local_02 = [s for s in set(qh["delivery_start"].to_pylist()) if s.astimezone(__import__("reconcilers.contract").contract.MARKET_TZ).hour == 2]
    assert len(local_02) == 8  # 02:00-03:00 local happens twice: 2 x 4 quarter-hours, distinct in UTC


def test_same_seed_same_data_other_seed_other_data():
    day = date(2026, 12, 2)
    assert trades_table(day, 5_000, seed=11).equals(trades_table(day, 5_000, seed=11))
    assert orders_table(day, 5_000, seed=11).equals(orders_table(day, 5_000, seed=11))
    assert not trades_table(day, 5_000, seed=11).equals(trades_table(day, 5_000, seed=12))


def test_seed_files_are_identical_across_runs(tmp_path):
    day = date(2026, 3, 29)
    a = seed_day(tmp_path / "a", day, 2_000, 3_000, seed=5)
    b = seed_day(tmp_path / "b", day, 2_000, 3_000, seed=5)
    for ra, rb in zip(a, b):
        files_a = sorted(p.name for p in ra.path.iterdir())
        assert files_a == sorted(p.name for p in rb.path.iterdir())
        for name in files_a:
            assert (ra.path / name).read_bytes() == (rb.path / name).read_bytes()


def test_trades_are_realistic():
    t = trades_table(date(2026, 12, 2), 50_000, seed=2).to_pylist()
    keys = {(r["trade_id"], r["revision_no"]) for r in t}
    assert len(keys) == len(t)
    assert {r["product_type"] for r in t} == {"QH", "HH", "H"}
    assert any(r["price"] < 0 for r in t) and any(r["price"] == 0 for r in t)
    assert all(r["price"] == r["price"].quantize(Decimal("0.01")) for r in t)
    assert all(r["quantity"] == r["quantity"].quantize(Decimal("0.1")) and r["quantity"] > 0 for r in t)
    assert any(r["quantity"] != r["quantity"].quantize(Decimal("1")) for r in t)  # fractional lots occur
    assert all(-9999 <= r["price"] <= 9999 for r in t)
    assert all(len(r["trade_id"]) == 34 for r in t)
    assert all(r["delivery_end"] - r["delivery_start"] in (timedelta(minutes=m) for m in (15, 30, 60)) for r in t)
    assert all(r["execution_time"] < r["delivery_start"] for r in t)
    cross = [r for r in t if r["cross_px"]]
    assert cross and all(r["aggressor_side"] is None for r in cross)
    assert all((r["buy_order_id"] is None) != (r["sell_order_id"] is None) for r in cross)
    assert all(r["buy_order_id"] and r["sell_order_id"] for r in t if not r["cross_px"])
    states = {r["state"] for r in t}
    assert {"COMPLETED", "DISPUTED", "CANCELLED", "RECALLED"} <= states
    assert max(r["revision_no"] for r in t) >= 3
    assert all(r["cancelled_at"] is not None for r in t if r["state"] in ("CANCELLED", "RECALLED"))


def test_orders_are_realistic():
    o = orders_table(date(2026, 12, 2), 50_000, seed=2).to_pylist()
    assert len({(r["order_id"], r["revision_no"]) for r in o}) == len(o)
    gtd = [r for r in o if r["time_in_force"] == "GTD"]
    assert gtd and all(r["expire_time"] is not None and r["expire_time"].minute % 5 == 0 for r in gtd)
    assert all(r["expire_time"] is None for r in o if r["time_in_force"] != "GTD")
    ice = [r for r in o if r["order_type"] == "ICEBERG"]
    assert ice and all(r["iceberg_clip_size"] is not None for r in ice)
    assert all(r["iceberg_clip_size"] is None for r in o if r["order_type"] == "LIMIT")
    assert any(r["remaining_quantity"] == 0 for r in o)  # zero: what omitempty drops
    assert all(r["quantity"] == r["quantity"].quantize(Decimal("0.1")) for r in o)
    assert any(r["text"] == "" for r in o) and any(r["text"] is None for r in o)  # "" is not null
    assert {r["action"] for r in o} >= {"USER_ADDED", "USER_MODIFIED", "PARTIAL_EXECUTION", "FULL_EXECUTION"}


def test_an_empty_day_is_written_as_an_empty_partition(tmp_path):
    import pyarrow.parquet as pq

    results = seed_day(tmp_path, date(2026, 12, 2), trades=0, orders=0)
    for r in results:
        assert r.rows == 0
        assert pq.read_table(r.path).num_rows == 0


def test_revisions_are_later_than_the_revision_before():
    for table in (trades_table(date(2026, 12, 2), 20_000, seed=4), orders_table(date(2026, 12, 2), 20_000, seed=4)):
        key = table.column_names[0]
        rows = table.select([key, "revision_no", "updated_at"]).to_pylist()
        for prev, cur in zip(rows, rows[1:]):
            if cur[key] == prev[key]:
                assert cur["revision_no"] == prev["revision_no"] + 1
                assert cur["updated_at"] > prev["updated_at"], (prev, cur)
