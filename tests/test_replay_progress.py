"""The live progress of the API replay: tasks keep hidden progress files in the spool, the driver
polls them into `console.Progress` (plain, json, quiet), and the final numbers are the true ones."""

from __future__ import annotations

import json
import multiprocessing
import re
from dataclasses import dataclass
from datetime import date

import pytest

from api_server.testing import serve
from jobs import console
from jobs.api_decode import PageDecoder
from jobs.config import Config
from jobs.replay import replay_api
from jobs.report import latest_report, load_report
from jobs.run import run
from jobs.seed import seed_day
from jobs.spool import WindowFile, read_progress, write_progress
from reconcilers.contract import TRADES

DAY = date(2026, 12, 2)  # 24 hours: 8 windows of 180 minutes
WINDOWS = 8
ROWS = 600


@dataclass
class Counts:
    pages: int = 0
    records: int = 0
    bytes: int = 0
    retries: int = 0


@pytest.fixture(autouse=True)
def normal_mode():
    console.configure()
    yield
    console.configure()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store")
    seed_day(path, DAY, ROWS, 0, seed=11)
    return path


def cfg_for(tmp_path, store, base_url: str, monkeypatch) -> Config:
    monkeypatch.setenv("RECON_PROGRESS_KEY", "k")
    return Config.model_validate({
        "env": "test",
        "datasets": ["trades"],
        "store": {"path": str(store)},
        "api": {"base_url": base_url, "api_key": {"env": "RECON_PROGRESS_KEY"}, "page_size": 10,
                "window_minutes": 180, "spool_dir": str(tmp_path / "spool"),
                "retry": {"backoff_s": 0.01, "backoff_max_s": 0.05}},
        "alerts": {"enabled": False},
        "expectations": {"enabled": False},
        "report": {"dir": str(tmp_path / "reports")},
    })


# ---------------------------------------------------------------- the spool's progress files


def test_progress_files_are_hidden_from_the_spark_read_of_the_spool(spark, tmp_path):
    decoder = PageDecoder(TRADES)
    with WindowFile(tmp_path, 0, decoder.schema) as out:
        out.add(decoder.decode([{"tradeId": str(i), "revisionNo": 1} for i in range(5)], 0))
    write_progress(tmp_path, 0, Counts(pages=1, records=5, bytes=900), done=True)
    write_progress(tmp_path, 1, Counts(pages=2, records=20, bytes=1500, retries=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".progress-00000.json", ".progress-00001.json",
                                                          "window-00000.parquet"]
    assert spark.read.parquet(str(tmp_path)).count() == 5
    p = read_progress(tmp_path)
    assert (p.windows_done, p.pages, p.records, p.bytes, p.retries) == (1, 3, 25, 2400, 1)

    write_progress(tmp_path, 1, Counts(pages=3, records=30, bytes=2000, retries=1), done=True)
    p = read_progress(tmp_path)
    assert (p.windows_done, p.pages, p.records, p.bytes) == (2, 4, 35, 2900)  # replaced, not added


def _rewrite_progress(spool, stop) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        # Large numbers, so that a torn read would show as invalid JSON or a mismatch.
        write_progress(spool, 7, Counts(pages=n, records=n * 1_000_003, bytes=n * 10**12, retries=n))


def test_progress_files_are_replaced_atomically(tmp_path):
    """A reader polling while a task (another process, as on an executor) rewrites its file sees a
    whole file every time, one of the versions that were written, never a mix or a torn read."""
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    writer = ctx.Process(target=_rewrite_progress, args=(tmp_path, stop))
    writer.start()
    try:
        seen = set()
        while len(seen) < 50 and writer.is_alive():
            p = read_progress(tmp_path)
            if p.pages:
                assert (p.records, p.bytes, p.retries) == (p.pages * 1_000_003, p.pages * 10**12, p.pages)
                seen.add(p.pages)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert len(seen) == 50 and writer.exitcode == 0
    assert [p.name for p in tmp_path.iterdir()] == [".progress-00007.json"]  # no temporary left behind


def test_progress_of_a_missing_spool_is_zero_and_writing_there_never_raises(tmp_path):
    gone = tmp_path / "removed-spool"
    write_progress(gone, 0, Counts(pages=1), done=True)
    assert read_progress(gone).pages == 0 and not gone.exists()


# ---------------------------------------------------------------- the replay shows it


LINE = re.compile(r"^trades 2026-12-02: windows (\d+)/8 · pages ([\d,]+) · records ([\d,]+) · [\d,]+ rec/s"
                  r"(?: · [\d,]+ retries)? · \d+ s( · done)?$")


def test_plain_progress_while_the_replay_runs_ends_with_the_true_totals(spark, tmp_path, store, monkeypatch,
                                                                        capsys):
    console.configure(progress_interval_s=0.1)
    # Slow pages keep the tasks busy for a few seconds, so the display is seen moving.
    with serve(store, faults=("slow-pages:delay=0.1",)) as srv:
        replay = replay_api(spark, cfg_for(tmp_path, store, srv.base_url, monkeypatch), TRADES, DAY)
    try:
        assert replay.complete, replay.error
        s = replay.stats
        assert s.records == ROWS and s.pages >= ROWS // 10
        p = read_progress(replay.spool)  # what the tasks left: one file per window, all done
        assert (p.windows_done, p.pages, p.records) == (WINDOWS, s.pages, s.records)
        assert len(list(replay.spool.glob(".progress-*.json"))) == WINDOWS
    finally:
        replay.release()
    out, err = capsys.readouterr()
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.startswith("trades 2026-12-02: ")]
    rows = []
    for ln in lines:
        m = LINE.match(ln)
        assert m, ln
        rows.append((int(m[1]), int(m[2].replace(",", "")), int(m[3].replace(",", "")), bool(m[4])))
    assert [r[3] for r in rows] == [False] * (len(rows) - 1) + [True]  # one final line, last
    assert rows[-1][:3] == (WINDOWS, s.pages, s.records)
    assert all(a[i] <= b[i] for a, b in zip(rows, rows[1:]) for i in range(3))  # counters only grow
    assert any(0 < pages < s.pages for _, pages, _, _ in rows[:-1]), lines  # seen while running


def test_json_progress_from_recon_run_ends_done_with_the_right_totals(spark, tmp_path, store, monkeypatch, capsys):
    console.configure(log_format="json", progress_interval_s=0.1)
    with serve(store) as srv:
        cfg = cfg_for(tmp_path, store, srv.base_url, monkeypatch)
        code = run(cfg, DAY, ["trades"], spark=spark)
    assert code == 0
    out, err = capsys.readouterr()
    final = json.loads(out)  # stdout: only the final object
    assert (final["event"], final["verdict"]) == ("final", "clean")
    events = [json.loads(ln) for ln in err.splitlines()]
    progress = [e for e in events if e.get("event") == "progress"]  # log records have no event
    assert progress and all(e["label"] == "trades 2026-12-02" and e["total_windows"] == WINDOWS for e in progress)
    assert [e["done"] for e in progress] == [False] * (len(progress) - 1) + [True]
    stats = load_report(latest_report(cfg, "trades", DAY))["api_stats"]
    last = progress[-1]
    assert (last["windows"], last["pages"], last["records"], last["bytes"], last["retries"]) == (
        WINDOWS, stats["pages"], stats["records"], stats["bytes"], stats["retries"])
    assert last["records"] == ROWS


def test_quiet_replay_prints_no_progress(spark, tmp_path, store, monkeypatch, capsys):
    console.configure(quiet=True, progress_interval_s=0.1)
    with serve(store) as srv:
        replay = replay_api(spark, cfg_for(tmp_path, store, srv.base_url, monkeypatch), TRADES, DAY)
    try:
        assert replay.complete and replay.stats.records == ROWS
    finally:
        replay.release()
    assert capsys.readouterr() == ("", "")
