"""Shared parts of the fault suite (`test_faults_*.py`, `test_security.py`).

A small seeded store, the PagerDuty stand-in, a config with short timeouts, and the two outcomes
every case must end in:
(a) exactly the right findings (or clean), with the data incident triggered or resolved; or
(b) exit 2 with one line naming what failed, a trigger on the run-failure key at severity error,
    and no event at all on the data key.
Either way the report written before the run is byte for byte unchanged and the alert outbox
holds nothing pending or dead afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from jobs.alert_events import data_key, run_failure_key
from jobs.alert_outbox import Outbox
from jobs.config import Config
from jobs.pagerduty_standin import StandIn
from jobs.pagerduty_standin import serve as serve_pagerduty
from jobs.report import day_dir_of, latest_report, load_report, write_report
from jobs.seed import partition_dir, seed_day
from reconcilers.contract import DATASETS
from reconcilers.result import DatasetResult, Outcome

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 10, 24)  # 24 hours: 4 windows of 6 h
EMPTY_DAY = date(2026, 10, 20)  # a partition with 0 rows
MISSING_DAY = date(2026, 10, 19)  # never seeded
ROWS = {"trades": 120, "orders": 240}
PAGE_SIZE = 25  # every 6 h window of trades needs 2 pages or more
API_KEY_ENV, ROUTING_KEY_ENV = "RECON_FAULT_SUITE_API_KEY", "RECON_FAULT_SUITE_ROUTING_KEY"
API_KEY = "fault-suite-api-key-0001"
ROUTING_KEY = "R0utingKeyFaultSuite000000000001"  # the stand-in wants exactly 32 characters
EARLIER_RUN = "20000101T000000Z-earlier"


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fault-store")
    seed_day(root, DAY, ROWS["trades"], ROWS["orders"], seed=11)
    seed_day(root, EMPTY_DAY, 0, 0, seed=11)
    return root


@pytest.fixture(scope="module")
def pagerduty():
    with serve_pagerduty() as pd:
        yield pd


@pytest.fixture
def pd(pagerduty: StandIn) -> StandIn:
    pagerduty.reset()
    return pagerduty


@pytest.fixture(autouse=True)
def secrets_env(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    monkeypatch.setenv(ROUTING_KEY_ENV, ROUTING_KEY)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config_tree(tmp: Path, store_path: Path, api_url: str, pd_url: str, **over) -> dict:
    """Short timeouts and retries, so a case that must fail fails in seconds."""
    tree = {
        "env": "faults",
        "store": {"path": str(store_path)},
        "api": {"base_url": api_url, "api_key": {"env": API_KEY_ENV}, "page_size": PAGE_SIZE, "window_minutes": 360,
                "connect_timeout_s": 2, "read_timeout_s": 5, "run_budget_s": 90,
                "retry": {"max_attempts": 3, "backoff_s": 0.01, "backoff_max_s": 0.05, "retry_after_cap_s": 5}},
        "alerts": {"base_url": pd_url, "routing_key": {"env": ROUTING_KEY_ENV},
                   "outbox": str(tmp / "reports" / "alert-outbox"), "timeout_s": 5,
                   "retry": {"sleep_s": 0.05, "max_http_attempts": 2, "rate_limit_retries": 1, "max_network_attempts": 1}},
        "report": {"dir": str(tmp / "reports")},
        "expectations": {"enabled": False},
    }
    return _merge(tree, over)


def write_config(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def store_rows(store: Path, name: str, day: date = DAY) -> list[dict]:
    return pq.read_table(partition_dir(store, DATASETS[name], day)).to_pylist()


def copy_store(store: Path, dest: Path) -> Path:
    shutil.copytree(store, dest)
    return dest


# ---------------------------------------------------------------- running the job


@dataclass
class Case:
    """One case: its own report dir and outbox, the shared stand-in, the shared Spark session."""

    tmp: Path
    store: Path
    pd: StandIn
    spark: object
    capsys: pytest.CaptureFixture
    earlier: dict[Path, bytes] = field(default_factory=dict)
    out: str = ""
    events_before: int = 0  # events the stand-in had accepted before the last run

    def run_events(self, key: str) -> list[dict]:
        """The events of the last run on one dedup key."""
        return [e for e in self.pd.accepted()[self.events_before:] if e["dedup_key"] == key]

    def config(self, api_url: str, **over) -> Config:
        return Config.model_validate(config_tree(self.tmp, self.store, api_url, self.pd.base_url, **over))

    def run(self, cfg: Config, names=("trades",), day: date = DAY) -> int:
        """`recon run` in this process (the same `jobs.run.run` the CLI calls), after filing an
        earlier complete report for each dataset and day so the run can be checked not to touch it."""
        from jobs.run import run

        for name in names:
            self.file_earlier_report(cfg, name, day)
        self.capsys.readouterr()
        self.events_before = len(self.pd.accepted())
        code = run(cfg, day, list(names), spark=self.spark)
        captured = self.capsys.readouterr()
        self.out = captured.out + captured.err
        self.check_untouched(cfg)
        return code

    def file_earlier_report(self, cfg: Config, name: str, day: date) -> None:
        if (day_dir_of(cfg, name, day) / EARLIER_RUN).exists():
            return
        earlier = DatasetResult(name, day.isoformat(), cfg.env, EARLIER_RUN, outcome=Outcome.CLEAN,
                                store_rows=1, api_rows=1, started_at="2000-01-01T00:00:00Z",
                                finished_at="2000-01-01T00:00:01Z")
        paths = write_report(earlier, cfg)
        for p in sorted(paths.dir.rglob("*")):
            if p.is_file():
                self.earlier[p] = p.read_bytes()

    def check_untouched(self, cfg: Config) -> None:
        for p, blob in self.earlier.items():
            assert p.read_bytes() == blob, f"the run changed the earlier report file {p}"
        box = Outbox(cfg.resolve(cfg.alerts.outbox))
        assert [e.seq for e in box.pending()] == [], "alerts stuck in the outbox"
        assert [e.seq for e in box.dead()] == [], "alerts rejected by the stand-in"


@pytest.fixture
def case(tmp_path, store, pd, spark, capsys) -> Case:
    return Case(tmp_path, store, pd, spark, capsys)


def latest_doc(cfg: Config, name: str, day: date = DAY) -> dict:
    path = latest_report(cfg, name, day)
    assert path is not None, f"no report for {name} {day}"
    doc = load_report(path)
    assert doc["run_id"] != EARLIER_RUN, "the run wrote no report of its own"
    return doc


def expect_incomplete(case: Case, code: int, cfg: Config, name: str, *says: str, day: date = DAY) -> str:
    """Outcome (b); returns the error line."""
    assert code == Outcome.INCOMPLETE, case.out
    doc = latest_doc(cfg, name, day)
    assert (doc["verdict"], doc["exit_code"]) == ("incomplete", 2)
    error = doc["error"]
    assert error and "\n" not in error and "Traceback" not in error
    for part in says:
        assert part in error, f"{part!r} not in: {error}"
    assert doc["totals"]["findings"] == 0 and doc["counts"] == {}, "findings from a partial read"
    # The final line of the console says it once, whole, on one line.
    assert any(error in line for line in case.out.splitlines()), case.out
    assert not job_traceback(case.out), case.out
    fail = case.run_events(run_failure_key(cfg.env, name, day.isoformat()))
    assert [(e["event_action"], e["payload"]["severity"]) for e in fail] == [("trigger", "error")]
    assert "could not complete" in fail[0]["payload"]["summary"]
    assert case.run_events(data_key(cfg.env, name, day.isoformat())) == [], "a failed run touched the data incident"
    return error


def job_traceback(text: str) -> bool:
    """A stack trace through the job's code. (In-process, the output also holds the test servers'
    own noise, e.g. a broken pipe after the client gave up on a stalled answer.)"""
    return bool(re.search(r'File "[^"]*/(jobs|reconcilers|expectations)/', text))


def expect_verdict(case: Case, code: int, cfg: Config, name: str, counts: dict, day: date = DAY) -> dict:
    """Outcome (a): exactly `counts` (kind -> field -> n); {} means clean."""
    want = Outcome.FINDINGS if counts else Outcome.CLEAN
    assert code == want, case.out
    doc = latest_doc(cfg, name, day)
    assert doc["error"] is None
    assert doc["counts"] == counts
    data = case.run_events(data_key(cfg.env, name, day.isoformat()))
    if counts:
        assert [(e["event_action"], e["payload"]["severity"]) for e in data] == [("trigger", "critical")]
    else:
        assert [e["event_action"] for e in data] == ["resolve"]
    fail = case.run_events(run_failure_key(cfg.env, name, day.isoformat()))
    assert [e["event_action"] for e in fail] == ["resolve"]
    return doc


# ---------------------------------------------------------------- the CLI as a subprocess


def recon(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
          **kw) -> subprocess.CompletedProcess:
    """`recon ARGS` in a fresh interpreter, as cron would run it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADE_RECON__")}
    full_env.update(PYSPARK_PYTHON=sys.executable, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, **kw)
