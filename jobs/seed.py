"""Deterministic generator of a realistic delivery day, written to the Parquet store.

The store is Hive-partitioned by delivery day: `<store>/<dataset>/delivery_day=YYYY-MM-DD/`.
The same (day, seed, sizes) always gives byte-identical rows. Generation is vectorised with
numpy so that a million trades take seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reconcilers.contract import AREAS, ORDERS, PRODUCT_MINUTES, TRADES, Dataset, day_bounds_utc

US = 1_000_000  # microseconds per second
ROWS_PER_FILE = 500_000


@dataclass(frozen=True)
class SeedResult:
    dataset: str
    day: date
    rows: int
    path: Path


def partition_dir(store: Path, ds: Dataset, day: date) -> Path:
    return store / ds.name / f"{ds.day_field}={day.isoformat()}"


def _rng(day: date, seed: int, salt: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{day.isoformat()}/{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _decimal(units: np.ndarray, precision: int, scale: int, mask: np.ndarray | None = None) -> pa.Array:
    """Exact decimals from integer counts of the smallest unit (cents, tenths of MW)."""
    units = np.asarray(units, dtype=np.int64)
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = units >> 63  # sign extension into the high 64 bits
    validity = None
    if mask is not None:
        validity = pa.array(~mask).buffers()[1]
    return pa.Array.from_buffers(pa.decimal128(precision, scale), len(units), [validity, pa.py_buffer(words.tobytes())])


def _ts(us: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(us, dtype=np.int64), type=pa.timestamp("us", tz="UTC"), mask=mask)


def _strings(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(values.astype(str) if values.dtype.kind != "U" else values, type=pa.string(), mask=mask)


def _ids(prefix: str, numbers: np.ndarray) -> np.ndarray:
    return np.char.add(prefix, numbers.astype(np.int64).astype(str))


@dataclass(frozen=True)
class _Products:
    """Every tradable product of the day: type, UTC start and end (microseconds)."""

    kind: np.ndarray
    start: np.ndarray
    end: np.ndarray
    contract_id: np.ndarray
    contract_name: np.ndarray


def _products(day: date) -> _Products:
    start, end = day_bounds_utc(day)
    t0, t1 = int(start.timestamp()) * US, int(end.timestamp()) * US
    kinds, starts, ends = [], [], []
    for kind, minutes in PRODUCT_MINUTES.items():
        step = minutes * 60 * US
        s = np.arange(t0, t1, step, dtype=np.int64)
        kinds.append(np.full(len(s), kind))
        starts.append(s)
        ends.append(s + step)
    kind = np.concatenate(kinds)
    start_us = np.concatenate(starts)
    end_us = np.concatenate(ends)
    # Contract names count periods from 1 in delivery order; on the long October day the
    # repeated local hour gets its own numbers, so the name is never ambiguous.
    period = np.concatenate([np.arange(1, len(s) + 1) for s in starts])
    names = np.char.add(np.char.add(kind, f"-{day:%Y%m%d}-"), np.char.zfill(period.astype(str), 3))
    base = int(day.strftime("%Y%m%d")) * 1000
    contract_id = (base + np.arange(len(kind))).astype(str)
    return _Products(kind, start_us, end_us, contract_id, names)


def _since_first(steps: np.ndarray, run_start: np.ndarray) -> np.ndarray:
    """Per row, the sum of the steps after the first row of its run: each revision of a trade or
    order is later than the one before it, and the first revision is at offset 0."""
    total = np.cumsum(steps)
    return total - total[run_start]


def _pick_products(rng: np.random.Generator, products: _Products, n: int) -> np.ndarray:
    # Quarter-hours dominate intraday volume; hourly and half-hourly trade less.
    weights = np.select([products.kind == "QH", products.kind == "HH"], [3.0, 1.0], 1.5)
    return rng.choice(len(products.kind), size=n, p=weights / weights.sum())


def _prices_cents(rng: np.random.Generator, n: int) -> np.ndarray:
    cents = np.round(rng.normal(8_500, 6_000, n)).astype(np.int64)
    # Negative prices are normal (solar noon, windy nights); a few are exactly zero, which a
    # Go `omitempty` serializer drops; a few sit near the continuous limits.
    cents[rng.random(n) < 0.08] *= -1
    cents[rng.random(n) < 0.01] = 0
    extreme = rng.random(n) < 0.0005
    cents[extreme] = rng.choice([-999_900, 999_900, -950_000, 650_000], size=int(extreme.sum()))
    return np.clip(cents, -999_900, 999_900)


def trades_table(day: date, n: int, seed: int = 7) -> pa.Table:
    """`n` trade revisions for one delivery day, sorted by key."""
    if n == 0:
        return TRADES.arrow_schema(with_day=False).empty_table()
    rng = _rng(day, seed, "trades")
    products = _products(day)
    # Most trades have one revision; some are disputed and then cancelled or recalled.
    revs_per_trade = rng.choice([1, 2, 3], p=[0.95, 0.03, 0.02], size=n)
    trade_of_row = np.repeat(np.arange(n), revs_per_trade)[:n]
    revision = np.ones(n, dtype=np.int64)
    first = np.r_[True, trade_of_row[1:] != trade_of_row[:-1]]
    run_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    revision = np.arange(n) - run_start + 1
    n_trades = int(trade_of_row[-1]) + 1 if n else 0

    # Per trade (shared by its revisions).
    p = _pick_products(rng, products, n_trades)
    start = products.start[p]
    lead_us = (rng.exponential(3 * 3600, n_trades).astype(np.int64) + 300) * US
    execution = start - lead_us + rng.integers(0, 1000, n_trades) * 1000  # millisecond precision
    cross = rng.random(n_trades) < 0.35
    remote_leg_buy = rng.random(n_trades) < 0.5
    buy_area = rng.integers(0, len(AREAS), n_trades)
    sell_area = np.where(cross, rng.integers(0, len(AREAS), n_trades), buy_area)
    buy_area = np.where(cross, buy_area, 0)
    sell_area = np.where(cross, sell_area, 0)
    # 34-digit ids, as long as real exchange ids get: too wide for an int64 or a double.
    trade_ids = np.char.add(f"{day:%Y%m%d}48151623420000", np.char.zfill((np.arange(n_trades) * 7919).astype(str), 12))
    prices = _prices_cents(rng, n_trades)
    qty = rng.integers(1, 500, n_trades)  # tenths of MW
    has_trader = rng.random(n_trades) < 0.7
    has_client = rng.random(n_trades) < 0.5
    self_trade = rng.random(n_trades) < 0.02
    final_state = rng.choice(["CANCELLED", "RECALLED", "COMPLETED"], p=[0.6, 0.25, 0.15], size=n_trades)

    t = trade_of_row
    last_rev_of_trade = np.bincount(t, minlength=n_trades)
    is_last = revision == last_rev_of_trade[t]
    state = np.where(revision == 1, "COMPLETED", np.where(is_last, final_state[t], "DISPUTED"))
    state = np.where((last_rev_of_trade[t] == 1), "COMPLETED", state)
    exec_t = execution[t]
    updated = exec_t + _since_first(rng.integers(60, 1800, n) * US, run_start)
    cancelled = np.isin(state, ["CANCELLED", "RECALLED"])
    deadline_null = ~(state == "DISPUTED")
    aggressor = np.where(rng.random(n) < 0.5, "BUY", "SELL")

    def ids(kind: str, mask_null: np.ndarray) -> pa.Array:
        nums = (exec_t // 1000 % 10**9) * 10 + (1 if kind == "buy" else 2)
        return _strings(nums.astype(np.int64).astype(str), mask=mask_null)

    buy_null = cross[t] & remote_leg_buy[t]
    sell_null = cross[t] & ~remote_leg_buy[t]
    cols = {
        "trade_id": _strings(trade_ids[t]),
        "revision_no": pa.array(revision, pa.int64()),
        "exchange": _strings(np.where(rng.random(n_trades) < 0.8, "EPEX", "NORDPOOL")[t]),
        "market_segment": _strings(np.where(rng.random(n_trades) < 0.95, "CONTINUOUS", "IDA")[t]),
        "contract_id": _strings(products.contract_id[p][t]),
        "contract_name": _strings(products.contract_name[p][t]),
        "product_type": _strings(products.kind[p][t]),
        "delivery_start": _ts(start[t]),
        "delivery_end": _ts(products.end[p][t]),
        "execution_time": _ts(exec_t),
        "updated_at": _ts(updated),
        "price": _decimal(prices[t], 12, 2),
        "quantity": _decimal(qty[t], 12, 1),
        "buy_delivery_area": _strings(np.asarray(AREAS)[buy_area][t]),
        "sell_delivery_area": _strings(np.asarray(AREAS)[sell_area][t]),
        "buy_order_id": ids("buy", buy_null),
        "sell_order_id": ids("sell", sell_null),
        "cross_px": pa.array(cross[t]),
        "aggressor_side": _strings(aggressor, mask=cross[t]),
        "remote_trade_id": _strings(_ids("XB-", (exec_t // 1000) % 10**8), mask=~cross[t]),
        "member_id": _strings(np.char.add("NLBRK", np.char.zfill((t % 17).astype(str), 2))),
        "trader_id": _strings(np.char.add("TRD", np.char.zfill((t % 97).astype(str), 3)), mask=~has_trader[t]),
        "client_order_id": _strings(_ids("c-", t * 31 + 7), mask=~has_client[t]),
        "self_trade": pa.array(self_trade[t]),
        "state": _strings(state),
        "cancellation_deadline": _ts((exec_t // US + 1800) * US, mask=deadline_null),
        "cancelled_at": _ts(updated, mask=~cancelled),
    }
    return pa.table(cols, schema=TRADES.arrow_schema(with_day=False))


def orders_table(day: date, n: int, seed: int = 7) -> pa.Table:
    """`n` order revisions (events) for one delivery day, sorted by key."""
    if n == 0:
        return ORDERS.arrow_schema(with_day=False).empty_table()
    rng = _rng(day, seed, "orders")
    products = _products(day)
    revs = rng.choice([1, 2, 3, 4, 5], p=[0.4, 0.25, 0.15, 0.1, 0.1], size=n)
    o = np.repeat(np.arange(n), revs)[:n]
    first = np.r_[True, o[1:] != o[:-1]] if n else np.zeros(0, bool)
    run_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    revision = np.arange(n) - run_start + 1
    n_orders = int(o[-1]) + 1 if n else 0
    last_rev = np.bincount(o, minlength=n_orders)[o]
    is_last = revision == last_rev

    p = _pick_products(rng, products, n_orders)
    start = products.start[p]
    created = start - (rng.exponential(4 * 3600, n_orders).astype(np.int64) + 600) * US + rng.integers(0, 1000, n_orders) * 1000
    updated = created[o] + _since_first(rng.integers(1, 900, n) * US, run_start)
    iceberg = rng.random(n_orders) < 0.08
    tif = rng.choice(["GFS", "GTD", "IOC", "FOK"], p=[0.8, 0.12, 0.05, 0.03], size=n_orders)
    gtd = tif == "GTD"
    expire = (start // (300 * US)) * (300 * US) - rng.integers(1, 12, n_orders) * 300 * US
    qty = rng.integers(1, 500, n_orders)
    executed = np.minimum(qty[o], (revision - 1) * rng.integers(1, 100, n))
    final_action = rng.choice(["FULL_EXECUTION", "USER_DELETED", "SYSTEM_EXPIRED"], p=[0.5, 0.35, 0.15], size=n_orders)
    mid_action = rng.choice(["USER_MODIFIED", "PARTIAL_EXECUTION", "ICEBERG_SLICE_ADDED"], p=[0.5, 0.4, 0.1], size=n)
    action = np.where(revision == 1, "USER_ADDED", np.where(is_last & (revision > 1), final_action[o], mid_action))
    action = np.where((action == "ICEBERG_SLICE_ADDED") & ~iceberg[o], "USER_MODIFIED", action)
    action = np.where((action == "SYSTEM_EXPIRED") & ~gtd[o], "USER_DELETED", action)
    remaining = np.where(action == "FULL_EXECUTION", 0, qty[o] - executed)
    state = np.where(np.isin(action, ["FULL_EXECUTION", "USER_DELETED", "SYSTEM_EXPIRED"]), "INACTIVE", "ACTIVE")
    state = np.where((state == "ACTIVE") & (rng.random(n) < 0.02), "HIBERNATED", state)
    order_ids = _ids("", 1_205_939_000 + day.toordinal() * 10_000_000 + np.arange(n_orders))
    texts = rng.choice(["", "hedge wind", "solar ramp", "balancing"], size=n_orders)

    cols = {
        "order_id": _strings(order_ids[o]),
        "revision_no": pa.array(revision, pa.int64()),
        "initial_order_id": _strings(order_ids[o]),
        "parent_order_id": _strings(np.where(iceberg, order_ids, "")[o], mask=~iceberg[o]),
        "client_order_id": _strings(_ids("c-", o * 13 + 1), mask=(rng.random(n_orders) < 0.4)[o]),
        "exchange": _strings(np.where(rng.random(n_orders) < 0.8, "EPEX", "NORDPOOL")[o]),
        "contract_id": _strings(products.contract_id[p][o]),
        "product_type": _strings(products.kind[p][o]),
        "delivery_start": _ts(start[o]),
        "delivery_end": _ts(products.end[p][o]),
        "delivery_area": _strings(np.asarray(AREAS)[rng.integers(0, len(AREAS), n_orders)][o]),
        "side": _strings(np.where(rng.random(n_orders) < 0.5, "BUY", "SELL")[o]),
        "order_type": _strings(np.where(iceberg, "ICEBERG", "LIMIT")[o]),
        "time_in_force": _strings(tif[o]),
        "price": _decimal(_prices_cents(rng, n_orders)[o], 12, 2),
        "quantity": _decimal(qty[o], 12, 1),
        "remaining_quantity": _decimal(remaining, 12, 1, mask=(revision == 1) & (rng.random(n) < 0.5)),
        "iceberg_clip_size": _decimal(np.maximum(qty // 5, 1)[o], 12, 1, mask=~iceberg[o]),
        "iceberg_clip_price_change": _decimal(rng.integers(0, 50, n_orders)[o], 12, 2, mask=~iceberg[o]),
        "expire_time": _ts(expire[o], mask=~gtd[o]),
        "state": _strings(state),
        "action": _strings(action),
        "created_at": _ts(created[o]),
        "updated_at": _ts(updated),
        "member_id": _strings(np.char.add("NLBRK", np.char.zfill((o % 17).astype(str), 2))),
        "trader_id": _strings(np.char.add("TRD", np.char.zfill((o % 97).astype(str), 3)), mask=rng.random(n_orders)[o] < 0.3),
        "text": _strings(texts[o], mask=rng.random(n_orders)[o] < 0.5),
    }
    return pa.table(cols, schema=ORDERS.arrow_schema(with_day=False))


GENERATORS = {"trades": trades_table, "orders": orders_table}


def write_day(store: Path, ds: Dataset, day: date, table: pa.Table) -> Path:
    """Replace the day's partition atomically: write beside it, then swap directories."""
    target = partition_dir(store, ds, day)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, offset in enumerate(range(0, max(table.num_rows, 1), ROWS_PER_FILE)):
        pq.write_table(table.slice(offset, ROWS_PER_FILE), tmp / f"part-{i:05d}.parquet", compression="zstd")
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def seed_day(store: Path, day: date, trades: int, orders: int, seed: int = 7) -> list[SeedResult]:
    out = []
    for ds, n in ((TRADES, trades), (ORDERS, orders)):
        if n < 0:
            raise ValueError(f"{ds.name}: row count must be >= 0, got {n}")
        table = GENERATORS[ds.name](day, n, seed)
        out.append(SeedResult(ds.name, day, table.num_rows, write_day(store, ds, day, table)))
    return out


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
