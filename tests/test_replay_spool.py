"""Spooling a window's pages: the whole window or nothing, in large row groups."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from jobs import spool
from jobs.api_decode import PageDecoder
from reconcilers.contract import TRADES

DECODER = PageDecoder(TRADES)


def page(n: int, start: int = 0):
    return DECODER.decode([{"tradeId": str(start + i), "revisionNo": 1} for i in range(n)], 3)


def test_whole_window_lands_under_its_final_name(tmp_path, monkeypatch):
    monkeypatch.setattr(spool, "ROW_GROUP_ROWS", 250)
    with spool.WindowFile(tmp_path, 3, DECODER.schema) as out:
        for i in range(6):
            out.add(page(100, i * 100))
    assert [p.name for p in tmp_path.iterdir()] == ["window-00003.parquet"]
    f = pq.ParquetFile(tmp_path / "window-00003.parquet")
    assert f.metadata.num_rows == 600 and f.metadata.num_row_groups == 2  # 300 + 300, not six pages
    assert f.read().column("trade_id").to_pylist() == [str(i) for i in range(600)]
    assert f.schema_arrow == DECODER.schema


def test_a_failed_window_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(spool, "ROW_GROUP_ROWS", 50)
    with pytest.raises(RuntimeError):
        with spool.WindowFile(tmp_path, 1, DECODER.schema) as out:
            out.add(page(100))  # already flushed to the temporary file
            raise RuntimeError("page 2 failed")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_window_writes_no_file(tmp_path):
    with spool.WindowFile(tmp_path, 0, DECODER.schema):
        pass
    assert list(tmp_path.iterdir()) == []


def test_new_spool_sweeps_only_stale_spools(tmp_path):
    import os
    import time
    from datetime import date

    from jobs.config import Config
    from jobs.replay import new_spool

    stale, fresh = tmp_path / "recon-replay-trades-2026-01-01-x", tmp_path / "recon-replay-orders-2026-01-01-y"
    for d in (stale, fresh):
        d.mkdir()
        (d / "window-00000.parquet").write_bytes(b"")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    cfg = Config.model_validate({"api": {"spool_dir": str(tmp_path)}})
    spool = new_spool(cfg, TRADES, date(2026, 10, 25))
    assert spool.parent == tmp_path and spool.name.startswith("recon-replay-trades-2026-10-25-")
    assert not stale.exists() and fresh.exists() and spool.exists()
