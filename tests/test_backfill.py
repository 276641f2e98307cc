"""Backfill against the bundled API with real Spark: resume (clean days skipped), worst exit
code, parallel days sharing the session, a day locked by another process."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from api_server.testing import serve
from jobs.backfill import backfill, day_range
from jobs.interrupt import Stop
from jobs.config import Config, ConfigError
from jobs.ledger import history
from jobs.seed import seed_day
from reconcilers.result import Outcome

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
D1, D2, D3 = date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)  # D2 is the 23-hour day
# Different sizes per day, so that a result shows which day it read.
TRADES = {D1: 40, D2: 50, D3: 60}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("bfstore")
    for d, n in TRADES.items():
        seed_day(root, d, n, 80, seed=5)
    return root


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("BACKFILL_TEST_KEY", "k")


def config(store, reports, base_url) -> Config:
    return Config.model_validate({
        "env": "test",
        "store": {"path": str(store)},
        "api": {"base_url": base_url, "api_key": {"env": "BACKFILL_TEST_KEY"}, "page_size": 50, "window_minutes": 360},
        "alerts": {"enabled": False},
        "report": {"dir": str(reports)},
        "expectations": {"enabled": False},
    })


def latest(cfg, name, day):
    rows = history(cfg, dataset=name, day=day.isoformat(), last=10)
    return rows[0] if rows else None


def test_day_range_checks():
    assert day_range(D1, D3) == [D1, D2, D3]
    with pytest.raises(ConfigError, match="before --from"):
        day_range(D3, D1)
    with pytest.raises(ConfigError, match="at most 366"):
        day_range(date(2025, 1, 1), date(2026, 3, 1))


def test_resume_skips_clean_days_and_exit_is_the_worst(spark, store, tmp_path, capsys):
    reports = tmp_path / "reports"
    with serve(store) as api:
        cfg = config(store, reports, api.base_url)
        assert backfill(cfg, D1, D2, ["trades"], spark=spark) == 0
    assert latest(cfg, "trades", D1)["verdict"] == "clean"
    assert latest(cfg, "trades", D2)["store_rows"] == TRADES[D2]
    capsys.readouterr()

    # The API now loses records: the clean days are not re-run, the new day has findings.
    with serve(store, faults=["drop-records:rate=0.1"], fault_seed=3) as api:
        cfg = config(store, reports, api.base_url)
        assert backfill(cfg, D1, D3, ["trades"], spark=spark) == int(Outcome.FINDINGS)
        out = capsys.readouterr().out
        assert len(history(cfg, dataset="trades", day=D1.isoformat())) == 1
        assert api.manifest_data()["expected"]["trades"][D3.isoformat()]["missing_in_api"]
        assert latest(cfg, "trades", D3)["verdict"] == "findings"
        assert latest(cfg, "trades", D3)["store_rows"] == TRADES[D3]
        assert "skipped" in out and "findings" in out
        assert "backfill 2026-03-28..2026-03-30: 2 skipped, 1 findings · exit 1" in out

        # --force re-runs a clean day too.
        rc = backfill(cfg, D2, D2, ["trades"], force=True, spark=spark)
        dropped = sum(api.manifest_data()["expected"]["trades"][D2.isoformat()].get("missing_in_api", {}).values())
        assert dropped > 0 and rc == int(Outcome.FINDINGS)
        assert len(history(cfg, dataset="trades", day=D2.isoformat())) == 2
        assert latest(cfg, "trades", D2)["findings"] == dropped


def test_parallel_days_share_one_session(spark, store, tmp_path):
    with serve(store) as api:
        cfg = config(store, tmp_path / "reports", api.base_url)
        assert backfill(cfg, D1, D3, ["trades"], parallel_days=3, spark=spark) == 0
    for d, n in TRADES.items():
        assert latest(cfg, "trades", d)["store_rows"] == n
        assert latest(cfg, "trades", d)["api_rows"] == n


HOLDER = """
import sys
from jobs.config import Config
from jobs.lock import day_lock
cfg = Config.model_validate({"env": "test", "report": {"dir": sys.argv[1]}})
with day_lock(cfg, "trades", sys.argv[2], run_id="other-run"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_day_locked_by_another_process_is_reported_locked_and_not_touched(spark, store, tmp_path, capsys):
    reports = tmp_path / "reports"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(reports), D2.isoformat()], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with serve(store) as api:
            cfg = config(store, reports, api.base_url)
            assert backfill(cfg, D1, D2, ["trades"], spark=spark) == int(Outcome.LOCKED)
        out = capsys.readouterr().out
        assert "locked" in out and "other-run" in out
        assert latest(cfg, "trades", D1)["verdict"] == "clean"
        assert latest(cfg, "trades", D2) is None  # no ledger row, no report for the locked day
        assert not (reports / "test" / "trades" / D2.isoformat()).exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_abandon_mid_day_publishes_nothing_and_releases_locks(spark, store, tmp_path, monkeypatch, capsys):
    import threading

    import reconcilers.compare
    from jobs.lock import day_lock

    stop = Stop()
    real_compare = reconcilers.compare.compare

    def compare_interrupted(*args, **kwargs):
        # Ctrl-C twice in the middle of the day (store read, API replayed), from another thread
        # as a signal would come, before its comparison's Spark jobs are cancelled under it. (A
        # timer started with the day raced a day that ends in under its second.)
        t = threading.Thread(target=lambda: (stop.interrupt(), stop.interrupt()))
        t.start()
        t.join()
        return real_compare(*args, **kwargs)

    monkeypatch.setattr(reconcilers.compare, "compare", compare_interrupted)
    reports = tmp_path / "reports"
    with serve(store) as api:
        cfg = config(store, reports, api.base_url)
        assert backfill(cfg, D1, D3, ["trades"], spark=spark, stop=stop) == 130
    out = capsys.readouterr().out
    assert "abandoned" in out and "not run" in out
    assert history(cfg) == []
    assert not (reports / "test" / "trades").exists()
    for d in (D1, D2, D3):
        with day_lock(cfg, "trades", d, run_id="after") as lock:
            assert lock.taken_over_from is None  # released cleanly, not left behind
