"""The SQLite run ledger and the commands that read it: `recon history`, `recon report show`."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jobs.config import load_config
from jobs.ledger import history, ledger_path, record_run
from jobs.report import write_report
from reconcilers.result import ApiStats, DatasetResult, Outcome
from report_samples import DAY, clean_result, findings_result, incomplete_result

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path):
    return {"TRADE_RECON__ENV": "test", "TRADE_RECON__REPORT__DIR": str(tmp_path / "reports")}


@pytest.fixture
def cfg(env):
    return load_config(environ=env)


def record(cfg, result):
    paths = write_report(result, cfg)
    record_run(cfg, result, paths)
    return paths


def orders_result(run_id="o1") -> DatasetResult:
    return DatasetResult(dataset="orders", day="2026-10-26", env="test", run_id=run_id, outcome=Outcome.CLEAN,
                         store_rows=50_000, api_rows=50_000, api_stats=ApiStats(windows=24, pages=30),
                         started_at="2026-10-27T03:00:00Z", finished_at="2026-10-27T03:02:00Z")


def recon(env: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env, "COLUMNS": "200"}, timeout=120)


def test_one_row_per_run_newest_first(cfg):
    p1 = record(cfg, findings_result(run_id="r1"))
    record(cfg, clean_result(run_id="r2"))
    record(cfg, incomplete_result(run_id="r3"))
    record(cfg, orders_result())
    rows = history(cfg)
    assert [(r["dataset"], r["run_id"], r["verdict"]) for r in rows] == [
        ("orders", "o1", "clean"), ("trades", "r3", "incomplete"), ("trades", "r2", "clean"), ("trades", "r1", "findings")]
    first = rows[-1]
    assert first["env"] == "test" and first["day"] == DAY and first["outcome"] == 1
    assert (first["findings"], first["expectations_failed"], first["store_rows"], first["api_rows"]) == (1643, 1, 12026, 11586)
    assert first["counts"] == {"expectation_failed": 1, "missing_in_api": 440, "null_dropped": 1200, "value_mismatch": 3}
    assert (first["started_at"], first["finished_at"]) == ("2026-10-26T03:00:00Z", "2026-10-26T03:01:02Z")
    assert first["report_path"] == str(p1.json) and first["error"] is None
    assert rows[1]["error"].endswith("HTTP 503 Service Unavailable") and rows[1]["outcome"] == 2

    assert [r["run_id"] for r in history(cfg, dataset="trades", last=2)] == ["r3", "r2"]
    assert [r["run_id"] for r in history(cfg, day="2026-10-26")] == ["o1"]
    assert history(cfg, dataset="orders", day=DAY) == []


def test_recording_the_same_run_again_replaces_its_row(cfg):
    r = findings_result(run_id="r1")
    record_run(cfg, r, None)
    r.outcome, r.counts, r.expectations = Outcome.CLEAN, {}, []
    record_run(cfg, r, None)
    rows = history(cfg)
    assert len(rows) == 1 and rows[0]["verdict"] == "clean" and rows[0]["report_path"] is None


def test_ledger_is_wal_and_not_world_readable(cfg):
    old = os.umask(0)
    try:
        record_run(cfg, clean_result(), None)
    finally:
        os.umask(old)
    path = ledger_path(cfg)
    assert path == cfg.report.dir / "test" / "ledger.sqlite"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_history_of_an_empty_ledger(cfg):
    assert history(cfg) == []
    assert not ledger_path(cfg).exists()  # reading does not create it


WRITER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from jobs.config import load_config
    from jobs.ledger import record_run
    from report_samples import clean_result
    cfg = load_config(environ={env!r})
    for i in range({n}):
        record_run(cfg, clean_result(run_id=f"w{{sys.argv[1]}}-{{i}}"), None)
    """
)


def test_concurrent_writers_lose_no_row(cfg, env):
    script = WRITER.format(root=str(ROOT), tests=str(ROOT / "tests"), env=env, n=15)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(w)], stderr=subprocess.PIPE, text=True)
             for w in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    rows = history(cfg, last=1000)
    assert len(rows) == 60
    assert {r["run_id"] for r in rows} == {f"w{w}-{i}" for w in range(4) for i in range(15)}


def test_recon_history_shows_the_trend(cfg, env, tmp_path):
    record(cfg, findings_result(run_id="r1"))
    record(cfg, clean_result(run_id="r2"))
    f = findings_result(run_id="r3")
    f.counts["missing_in_api"] = {"*": 500}
    record(cfg, f)
    record(cfg, orders_result())

    out = recon(env, "history", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if "│" in line]
    assert [next(r for r in ("o1", "r3", "r2", "r1") if f" {r} " in line) for line in lines] == ["o1", "r3", "r2", "r1"]
    r3, r2, r1 = lines[1], lines[2], lines[3]
    assert "findings" in r3 and "1,703" in r3 and "▲ +1,703" in r3  # clean -> findings
    assert "clean" in r2 and "▼ -1,643" in r2
    assert "null_dropped 1,200, missing_in_api 440" in r1 and "▲" not in r1 and "▼" not in r1

    out = recon(env, "history", "--dataset", "trades", "--day", DAY, "--last", "1", cwd=tmp_path)
    assert out.returncode == 0 and " r3 " in out.stdout and " r2 " not in out.stdout and " o1 " not in out.stdout

    out = recon(env, "--log-format", "json", "history", "-n", "2", cwd=tmp_path)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["event"], r["run_id"], r["findings"]) for r in rows] == [("run", "o1", 0), ("run", "r3", 1703)]

    out = recon(env, "history", "--dataset", "bonds", cwd=tmp_path)
    assert out.returncode == 3 and out.stderr.strip() == (
        "error: --dataset: unknown dataset 'bonds'; expected one of ['orders', 'trades']")


def test_recon_report_show_prints_the_latest_report(cfg, env, tmp_path):
    record(cfg, clean_result(run_id="r1"))
    paths = record(cfg, findings_result(run_id="r2"))
    out = recon(env, "report", "show", DAY, "--dataset", "trades", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "FINDINGS trades 2026-10-25 · run r2" in text
    assert "1,643 findings (null_dropped 1,200, missing_in_api 440, value_mismatch 3); 1 failed expectation" in text
    assert "buy_order_id" in text and "(whole record)" in text
    assert "hours where the API is short: 01:00Z −437, 13:00Z −3" in text
    assert f"report: {paths.html}" in text

    out = recon(env, "report", "show", DAY, cwd=tmp_path)  # all datasets: orders has none
    assert out.returncode == 0 and "no report for orders on 2026-10-25" in out.stderr

    out = recon(env, "report", "show", "2026-10-24", cwd=tmp_path)
    assert out.returncode == 3
    assert out.stderr.splitlines() == [
        "no report for trades on 2026-10-24",
        "no report for orders on 2026-10-24",
        f"error: no report for trades, orders on 2026-10-24 under {cfg.report.dir / 'test'}",
        "hint: run `recon run --day 2026-10-24` first, or check --config and env (test)",
    ]
