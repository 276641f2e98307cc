"""Seeding speed: 1,000,000 trades into the Parquet store (target <= 30 s on 2 cores).

Peer: writing the already generated table with pyarrow alone (the I/O floor of the same write).
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from bench.table import Row, timed
from jobs.seed import TRADES, trades_table, write_day

N = 1_000_000
DAY = date(2026, 12, 2)


def run(repeat: int = 3) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        seed_s, _, _ = timed(lambda: write_day(store, TRADES, DAY, trades_table(DAY, N)), repeat)
        table = trades_table(DAY, N)
        floor_s, _, _ = timed(lambda: pq.write_table(table, store / "floor.parquet", compression="zstd"), repeat)
    return [
        Row("seed", f"seed {N:,} trades (generate + write)", seed_s, "s", repeat, "<= 30 s", "pyarrow write only",
            seed_s / floor_s, seed_s <= 30),
        Row("seed", f"write {N:,} trades with pyarrow only", floor_s, "s", repeat),
    ]
