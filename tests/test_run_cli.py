"""`recon run` and the spark-submit application, end to end as separate processes against the
bundled API on loopback: exit codes, one-line errors, and the API key never printed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import pytest

from api_server.testing import serve
from jobs.seed import seed_day

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAY = date(2026, 3, 29)
KEY = "cli-secret-key-4411"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("clistore")
    seed_day(root, DAY, 250, 600, seed=4)
    return root


def write_config(tmp_path: Path, store: Path, base_url: str) -> Path:
    cfg = tmp_path / "recon.yaml"
    cfg.write_text(
        "env: clitest\n"
        f"store: {{path: '{store}'}}\n"
        f"api: {{base_url: '{base_url}', api_key: {{env: RECON_CLI_KEY}}, page_size: 100, window_minutes: 120,"
        " retry: {backoff_s: 0.01, backoff_max_s: 0.05}}\n"
        f"report: {{dir: '{tmp_path / 'reports'}'}}\n"
        "alerts: {enabled: false}\n"
        "expectations: {enabled: false}\n"
    )
    return cfg


def env(with_key: bool = True, extra: dict | None = None) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("TRADE_RECON", "PYSPARK_GATEWAY"))}
    e["PYSPARK_PYTHON"] = sys.executable
    if with_key:
        e["RECON_CLI_KEY"] = KEY
    else:
        e.pop("RECON_CLI_KEY", None)
    return {**e, **(extra or {})}


def recon(*args, cwd: Path, with_key: bool = True, timeout: int = 600, extra_env: dict | None = None):
    return subprocess.run([str(BIN / "recon"), *args], cwd=cwd, env=env(with_key, extra_env), capture_output=True,
                          text=True, timeout=timeout)


def test_recon_run_clean_day_exits_0_and_never_prints_the_key(tmp_path, store):
    with serve(store, api_keys=(KEY,)) as api:
        cfg = write_config(tmp_path, store, api.base_url)
        p = recon("run", "--day", DAY.isoformat(), "--config", str(cfg), cwd=tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    final = p.stdout.strip().splitlines()[-1]
    assert "CLEAN trades 2026-03-29" in final and "CLEAN orders 2026-03-29" in final
    assert KEY not in out
    reports = list((tmp_path / "reports").rglob("report.json"))
    assert len(reports) == 2 and not any(KEY in r.read_text() for r in reports)
    assert "Traceback" not in out
    # Spark's JVM logs errors only, from its first line (jobs/log4j2.properties): no banner, no notices.
    assert "log4j profile" not in out and "Setting default log level" not in out and " WARN " not in out


def test_recon_run_missing_partition_exits_2_naming_it(tmp_path, store):
    with serve(store, api_keys=(KEY,)) as api:
        cfg = write_config(tmp_path, store, api.base_url)
        p = recon("run", "--day", "2026-03-30", "--dataset", "trades", "--config", str(cfg), cwd=tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode == 2, out[-3000:]
    assert f"trades: store partition {store}/trades/delivery_day=2026-03-30 does not exist" in out
    assert "Traceback" not in out and KEY not in out


@pytest.mark.parametrize("args, says", [
    (["--day", "2026-02-30"], "2026-02-30"),
    (["--day", "2026-03-29", "--dataset", "fills"], "fills"),
])
def test_recon_run_bad_usage_exits_3(tmp_path, store, args, says):
    cfg = write_config(tmp_path, store, "http://127.0.0.1:9")
    p = recon("run", *args, "--config", str(cfg), cwd=tmp_path)
    assert p.returncode == 3 and says in p.stdout + p.stderr


def test_recon_run_without_the_key_exits_3_before_spark(tmp_path, store):
    cfg = write_config(tmp_path, store, "http://127.0.0.1:9")
    p = recon("run", "--day", DAY.isoformat(), "--config", str(cfg), cwd=tmp_path, with_key=False)
    out = p.stdout + p.stderr
    assert p.returncode == 3, out[-2000:]
    assert "RECON_CLI_KEY is not set" in out and "starting Spark" not in out


def test_spark_submit_runs_the_job_and_returns_its_exit_code(tmp_path, store):
    bundle = tmp_path / "trade_recon.zip"
    with zipfile.ZipFile(bundle, "w") as z:
        for pkg in ("jobs", "reconcilers", "expectations", "api_server"):
            for f in (ROOT / pkg).rglob("*"):
                if f.is_file() and "__pycache__" not in f.parts:
                    z.write(f, f.relative_to(ROOT))
    with serve(store, faults=("drop-records:rate=0.05",), fault_seed=2, api_keys=(KEY,)) as api:
        cfg = write_config(tmp_path, store, api.base_url)
        p = subprocess.run(
            [str(BIN / "spark-submit"), "--master", "local[2]", "--py-files", str(bundle), str(ROOT / "jobs" / "spark_app.py"),
             "--day", DAY.isoformat(), "--dataset", "trades", "--config", str(cfg)],
            cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600)
        want = api.manifest_data()["expected"]["trades"][DAY.isoformat()]["missing_in_api"]["*"]
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-3000:]
    final = p.stdout.strip().splitlines()[-1]
    assert final.startswith(f"FINDINGS trades 2026-03-29: {want} finding") and "missing_in_api" in final
    assert KEY not in out


def test_exit_code_does_not_depend_on_alert_delivery(tmp_path, store):
    """PagerDuty unreachable: the run still exits with its verdict (1 findings, 0 clean) and the
    events wait in the outbox, in order, until `recon alerts flush` reaches the service."""
    from jobs.pagerduty_standin import serve as serve_pagerduty

    def config(api_url: str, pd_url: str) -> Path:
        cfg = write_config(tmp_path, store, api_url)
        cfg.write_text(cfg.read_text().replace(
            "alerts: {enabled: false}\n",
            f"alerts: {{base_url: '{pd_url}', routing_key: {{env: RECON_CLI_ROUTING}}, outbox: '{tmp_path / 'outbox'}',"
            " retry: {sleep_s: 0.01, max_network_attempts: 1}}\n"))
        return cfg

    routing = {"RECON_CLI_ROUTING": "r" * 32}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket closes
    day = ["--day", DAY.isoformat(), "--dataset", "trades"]
    with serve(store, faults=("drop-records:rate=0.05",), fault_seed=2, api_keys=(KEY,)) as api:
        p = recon("run", *day, "--config", str(config(api.base_url, down)), cwd=tmp_path, extra_env=routing)
    assert p.returncode == 1, (p.stdout + p.stderr)[-3000:]
    with serve(store, api_keys=(KEY,)) as api:
        q = recon("run", *day, "--config", str(config(api.base_url, down)), cwd=tmp_path, extra_env=routing)
    assert q.returncode == 0, (q.stdout + q.stderr)[-3000:]
    queued = sorted((tmp_path / "outbox").glob("*.json"))
    assert len(queued) >= 2, [f.name for f in (tmp_path / "outbox").rglob("*")]

    with serve_pagerduty() as pd:
        f = recon("alerts", "flush", "--config", str(config("http://127.0.0.1:9", pd.base_url)), cwd=tmp_path,
                  extra_env=routing)
        assert f.returncode == 0, (f.stdout + f.stderr)[-3000:]
        incidents = {i["dedup_key"]: i["status"] for i in pd.incidents()}
    # The findings run's trigger went first, the clean run's resolve after it: the incident ends resolved.
    assert incidents[f"trade-recon/clitest/trades/{DAY}"] == "resolved"
    assert not list((tmp_path / "outbox").glob("*.json"))
