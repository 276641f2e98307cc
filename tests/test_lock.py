"""The per-dataset-and-day lock, against real second processes (one polite, one SIGKILLed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jobs.config import Config
from jobs.lock import LockHeld, day_lock, lock_path, read_holder

ROOT = Path(__file__).resolve().parent.parent

HOLDER = """
import sys
from jobs.config import Config
from jobs.lock import day_lock
cfg = Config.model_validate({"env": "test", "report": {"dir": sys.argv[1]}})
with day_lock(cfg, "trades", "2026-10-25", run_id="holder-run"):
    print("held", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin (or kills us)
print("released", flush=True)
"""


@pytest.fixture
def cfg(tmp_path) -> Config:
    return Config.model_validate({"env": "test", "report": {"dir": str(tmp_path / "reports")}})


def _start_holder(cfg: Config) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cfg.report.dir)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_file_lives_under_report_dir_env_locks(cfg):
    assert lock_path(cfg, "orders", "2026-03-29") == Path(cfg.report.dir) / "test" / "locks" / "orders-2026-03-29.lock"


def test_second_process_is_refused_with_holder_details_until_released(cfg):
    proc = _start_holder(cfg)
    try:
        with pytest.raises(LockHeld) as exc:
            with day_lock(cfg, "trades", "2026-10-25", run_id="second"):
                pytest.fail("acquired a lock another process holds")
        held = exc.value
        assert held.holder.pid == proc.pid
        assert held.holder.run_id == "holder-run"
        assert f"pid {proc.pid}" in str(held) and "trades 2026-10-25" in str(held)
        # Another day and another dataset are independent.
        with day_lock(cfg, "trades", "2026-10-24", run_id="second"):
            pass
        with day_lock(cfg, "orders", "2026-10-25", run_id="second"):
            pass
    finally:
        proc.stdin.close()
        assert proc.stdout.readline().strip() == "released"
        assert proc.wait(timeout=30) == 0
    with day_lock(cfg, "trades", "2026-10-25", run_id="third") as lock:
        # A clean release leaves no details behind, so nothing was taken over.
        assert lock.taken_over_from is None
        assert read_holder(lock.path).run_id == "third"
    assert read_holder(lock_path(cfg, "trades", "2026-10-25")) is None


def test_lock_of_a_sigkilled_holder_is_taken_over(cfg):
    proc = _start_holder(cfg)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    # The dead holder's details are still in the file; the kernel has dropped its flock.
    assert read_holder(lock_path(cfg, "trades", "2026-10-25")).pid == proc.pid
    with day_lock(cfg, "trades", "2026-10-25", run_id="after-kill") as lock:
        assert lock.taken_over_from is not None
        assert lock.taken_over_from.pid == proc.pid
        assert lock.taken_over_from.run_id == "holder-run"
        assert read_holder(lock.path).pid == os.getpid()


def test_threads_of_one_process_exclude_each_other(cfg):
    inside = threading.Event()
    leave = threading.Event()

    def hold():
        with day_lock(cfg, "orders", "2026-10-25", run_id="thread-a"):
            inside.set()
            leave.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert inside.wait(30)
        with pytest.raises(LockHeld) as exc:
            with day_lock(cfg, "orders", "2026-10-25", run_id="thread-b"):
                pass
        assert exc.value.holder.run_id == "thread-a"
    finally:
        leave.set()
        t.join(30)
    with day_lock(cfg, "orders", "2026-10-25", run_id="thread-b"):
        pass


@pytest.mark.slow
def test_recon_run_on_a_locked_day_exits_4_naming_the_holder(cfg, tmp_path):
    proc = _start_holder(cfg)
    try:
        env = {
            **os.environ,
            "TRADE_RECON__ENV": "test",
            "TRADE_RECON__REPORT__DIR": str(cfg.report.dir),
            "TRADE_RECON__STORE__PATH": str(tmp_path / "store"),
            "TRADE_RECON__ALERTS__ENABLED": "false",
            "TRADE_RECON_API_KEY": "k",
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
        out = subprocess.run([str(Path(sys.executable).with_name("recon")), "run", "--day", "2026-10-25",
                              "--dataset", "trades"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert out.returncode == 4, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "LOCKED trades 2026-10-25" in text
    assert f"pid {proc.pid}" in text and "holder-run" in text
    assert "Traceback" not in text
    # The locked run wrote nothing for that day.
    assert not (Path(cfg.report.dir) / "test" / "trades").exists()
