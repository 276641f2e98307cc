"""Fault suite, the process: `recon run` killed with SIGKILL in the middle of the API replay.

Nothing half-written becomes visible, `latest` keeps pointing at the last complete report, the
lock is taken over by the next run, and every alert is delivered exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from api_server.testing import serve
from fault_helpers import (API_KEY, API_KEY_ENV, DAY, EARLIER_RUN, ROOT, ROUTING_KEY, ROUTING_KEY_ENV, case,  # noqa: F401
                           config_tree, expect_verdict, latest_doc, pagerduty, pd, secrets_env, store, write_config)
from jobs.alert_events import config_key, data_key, run_failure_key
from jobs.lock import lock_path, read_holder
from jobs.report import day_dir_of

pytestmark = pytest.mark.slow

CLEAN_RUN_EVENTS = [("resolve", data_key("faults", "trades", DAY.isoformat())),
                    ("resolve", run_failure_key("faults", "trades", DAY.isoformat())),
                    ("resolve", config_key("faults", "trades"))]


def accepted(pd) -> list[tuple[str, str]]:
    return [(e["event_action"], e["dedup_key"]) for e in pd.accepted()]


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"recon run ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_9_during_the_api_replay_then_rerun(case, tmp_path):
    # 1. A complete run: the report that must survive.
    with serve(case.store, api_keys=(API_KEY,)) as api:
        cfg = case.config(api.base_url)
        assert case.run(cfg) == 0
    first = latest_doc(cfg, "trades")["run_id"]
    assert accepted(case.pd) == CLEAN_RUN_EVENTS
    day_dir = day_dir_of(cfg, "trades", DAY)

    # 2. A second run as cron would start it, killed while it pages through a slow API.
    with serve(case.store, faults=["slow-pages:delay=1"], api_keys=(API_KEY,)) as slow:
        tree = config_tree(case.tmp, case.store, slow.base_url, case.pd.base_url, api={"page_size": 10})
        cfg_path = write_config(tmp_path / "recon.yaml", tree)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADE_RECON__")}
        env.update({API_KEY_ENV: API_KEY, ROUTING_KEY_ENV: ROUTING_KEY, "PYSPARK_PYTHON": sys.executable,
                    "PYTHONPATH": str(ROOT)})
        proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "run", "--day", DAY.isoformat(), "--dataset", "trades",
                                 "--config", str(cfg_path)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            # The preflight is one page; two more mean the Spark tasks are paging.
            wait_for(lambda: slow.service.transport.served["slow-pages"] >= 3, 600, "the API replay", proc)
            holder = read_holder(lock_path(cfg, "trades", DAY))
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL
        finally:
            try:  # the JVM it started (it exits by itself once its parent is gone)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert holder is not None and holder.pid == proc.pid  # it died holding the day's lock

    # 3. Nothing half-written is visible, and nothing was alerted by the killed run.
    assert sorted(p.name for p in day_dir.iterdir()) == sorted([EARLIER_RUN, first, "latest"])
    assert os.readlink(day_dir / "latest") == first
    assert latest_doc(cfg, "trades")["run_id"] == first
    assert accepted(case.pd) == CLEAN_RUN_EVENTS
    case.check_untouched(cfg)

    # 4. The next run takes the lock over, completes, and alerts exactly once more.
    with serve(case.store, api_keys=(API_KEY,)) as api:
        cfg = case.config(api.base_url)
        code = case.run(cfg)
    doc = expect_verdict(case, code, cfg, "trades", {})
    assert doc["run_id"] not in (first, holder.run_id)
    assert read_holder(lock_path(cfg, "trades", DAY)) is None  # released cleanly this time
    assert sorted(p.name for p in day_dir.iterdir()) == sorted([EARLIER_RUN, first, doc["run_id"], "latest"])
    assert accepted(case.pd) == CLEAN_RUN_EVENTS * 2
