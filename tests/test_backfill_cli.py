"""`recon backfill` and `recon run --recheck` as real processes: Ctrl-C (SIGINT) mid-backfill
stops cleanly with exit 130, and a re-run continues where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from api_server.testing import serve
from jobs.config import load_config
from jobs.ledger import history
from jobs.lock import lock_path, read_holder
from jobs.seed import seed_day

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RECON = str(Path(sys.executable).with_name("recon"))
DAYS = [date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26)]  # the middle one has 25 hours


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bfcli")
    for d in DAYS:
        seed_day(tmp / "store", d, 40, 60, seed=9)
    with serve(tmp / "store") as api:
        cfg_file = tmp / "recon.yaml"
        cfg_file.write_text(yaml.safe_dump({
            "env": "test",
            "store": {"path": str(tmp / "store")},
            "api": {"base_url": api.base_url, "api_key": {"env": "BF_CLI_KEY"}, "page_size": 50, "window_minutes": 480},
            "alerts": {"enabled": False},
            "report": {"dir": str(tmp / "reports")},
            "expectations": {"enabled": False},
        }))
        yield cfg_file


def _env() -> dict[str, str]:
    return {**os.environ, "BF_CLI_KEY": "k", "SPARK_LOCAL_IP": "127.0.0.1"}


def _days(cfg, name="trades") -> dict[str, list[str]]:
    return {d.isoformat(): [r["verdict"] for r in history(cfg, dataset=name, day=d.isoformat())] for d in DAYS}


def _interrupt(setup, cmd: list[str], when, signals: int) -> tuple[int, str, str]:
    """Runs `cmd`, sends `signals` SIGINTs (0.3 s apart) at the first stderr line that `when`
    accepts; returns (exit code, stdout, stderr)."""
    import time

    proc = subprocess.Popen(cmd, cwd=setup.parent, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if when(line):
                for _ in range(signals):
                    proc.send_signal(signal.SIGINT)
                    time.sleep(0.3)
                break
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, "".join(seen) + err


def test_sigint_stops_cleanly_and_a_rerun_continues(setup):
    cfg = load_config(setup)
    cmd = [RECON, "backfill", "--from", "2026-10-24", "--to", "2026-10-26", "--dataset", "trades", "-c", str(setup)]
    code, out, err = _interrupt(setup, cmd, lambda line: "trades 2026-10-24: clean" in line, 1)
    assert code == 130, err
    assert "no new day starts" in err
    assert "not run" in out and "exit 130" in out
    days = _days(cfg)
    assert days["2026-10-24"] == ["clean"]
    assert days["2026-10-26"] == []  # never started
    assert days["2026-10-25"] in ([], ["clean"])  # finished if it had started, else untouched
    for d in DAYS:
        assert read_holder(lock_path(cfg, "trades", d)) is None  # no lock left held or half-released
    staging = [p for p in (Path(cfg.report.dir) / "test").rglob(".staging-*")]
    assert staging == []

    rerun = subprocess.run(cmd, cwd=setup.parent, env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "skipped" in rerun.stdout
    days = _days(cfg)
    assert all(v == ["clean"] for v in days.values()), days  # each day run exactly once over both runs

    # Every day is clean now: a third run skips them all without starting Spark.
    third = subprocess.run(cmd, cwd=setup.parent, env=_env(), capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr
    assert "3 skipped" in third.stdout and "starting Spark" not in third.stderr
    assert _days(cfg) == days


def test_run_recheck_reruns_the_trailing_days(setup):
    cfg = load_config(setup)
    before = {k: len(v) for k, v in _days(cfg, "orders").items()}
    out = subprocess.run([RECON, "--log-format", "json", "run", "--day", "2026-10-26", "--recheck", "2",
                          "--dataset", "orders", "-c", str(setup)],
                         cwd=setup.parent, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    final = [e for e in events if e["event"] == "final"]
    assert len(final) == 1 and final[0]["exit_code"] == 0
    assert sorted(r["day"] for r in final[0]["runs"]) == [d.isoformat() for d in DAYS]
    assert all(Path(r["report"]).is_file() for r in final[0]["runs"])
    assert [e["day"] for e in events if e["event"] == "backfill_day"] == [d.isoformat() for d in DAYS]
    after = {k: len(v) for k, v in _days(cfg, "orders").items()}
    assert all(after[d] == before[d] + 1 for d in after)


def _run_and_interrupt(setup, signals: int):
    """`recon run` for both datasets of a day, with `signals` Ctrl-Cs once the trades comparison
    has started."""
    cmd = [RECON, "run", "--day", "2026-10-24", "--dataset", "all", "--no-alert", "-c", str(setup)]
    return _interrupt(setup, cmd, lambda line: line.startswith("trades 2026-10-24:") and "comparing" in line, signals)


def test_ctrl_c_in_a_run_finishes_the_running_dataset_and_starts_no_other(setup):
    cfg = load_config(setup)
    before = {n: len(_days(cfg, n)["2026-10-24"]) for n in ("trades", "orders")}
    code, out, err = _run_and_interrupt(setup, 1)
    assert code == 130, err
    assert "no new dataset starts" in err and "orders 2026-10-24: not run (interrupted)" in err
    assert "Traceback" not in err and "Py4J" not in err
    assert len(_days(cfg, "trades")["2026-10-24"]) == before["trades"] + 1  # finished and published
    assert len(_days(cfg, "orders")["2026-10-24"]) == before["orders"]  # never started
    assert read_holder(lock_path(cfg, "trades", DAYS[0])) is None


def test_ctrl_c_twice_in_a_run_abandons_it_and_publishes_nothing(setup):
    cfg = load_config(setup)
    reports = Path(cfg.report.dir) / "test" / "trades" / "2026-10-24"
    before_reports = sorted(reports.glob("*/report.json")) if reports.exists() else []
    before = {n: len(_days(cfg, n)["2026-10-24"]) for n in ("trades", "orders")}
    code, out, err = _run_and_interrupt(setup, 2)
    assert code == 130, err
    assert "abandoning what is running" in err and "trades 2026-10-24: abandoned; nothing published" in err
    assert "Traceback" not in err and "Py4J" not in err
    assert {n: len(_days(cfg, n)["2026-10-24"]) for n in ("trades", "orders")} == before
    assert sorted(reports.glob("*/report.json")) == before_reports
    assert read_holder(lock_path(cfg, "trades", DAYS[0])) is None


def test_sigterm_mid_run_leaves_no_spool_behind(setup, tmp_path):
    import time

    spools = tmp_path / "spools"
    cfg_file = tmp_path / "recon.yaml"
    tree = yaml.safe_load(setup.read_text())
    tree["api"]["spool_dir"] = str(spools)
    cfg_file.write_text(yaml.safe_dump(tree))
    proc = subprocess.Popen([RECON, "run", "--day", "2026-10-25", "--dataset", "orders", "--no-alert", "-c",
                             str(cfg_file)], cwd=setup.parent, env=_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(spools.glob("recon-replay-*")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert list(spools.glob("recon-replay-*")), "the replay never started"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM  # ended by the signal, as without the handler
    assert list(spools.iterdir()) == []
