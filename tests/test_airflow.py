"""The Airflow DAG in a real Apache Airflow 3 (the pinned `.venv-airflow`, `make airflow-venv`):
it imports with no errors, exit codes decide failure and retries, and `airflow dags test` runs a
real day against a seeded store and the bundled API."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import need

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_BIN = ROOT / ".venv-airflow" / "bin"
DAGS = ROOT / "deploy" / "airflow"
# `airflow dags test` ignores SIGTERM while it waits; subprocess timeouts kill it outright.
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    need((AIRFLOW_BIN / "airflow").exists(), "the Airflow venv (make airflow-venv)")
    home = tmp_path_factory.mktemp("airflow")
    out = subprocess.run([str(AIRFLOW_BIN / "airflow"), "db", "migrate"], env=_env(home), capture_output=True,
                         text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-3000:]
    return home


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRADE_RECON"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
    )
    env.update(extra)
    return env


def _dags_test(home: Path, day: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(AIRFLOW_BIN / "airflow"), "dags", "test", "trade_recon", day, "-c", json.dumps({"recheck": 0})],
        env=_env(home, **extra), capture_output=True, text=True, timeout=TIMEOUT_S,
    )


def _task(home: Path, day: str) -> tuple[str, int, dict | None]:
    """State and tries of `reconcile` in the run for `day`, and its `reports` XCom."""
    with sqlite3.connect(home / "airflow.db") as db:
        run_id, = db.execute("SELECT run_id FROM dag_run WHERE dag_id = 'trade_recon' AND logical_date LIKE ? "
                             "ORDER BY id DESC LIMIT 1", (f"{day}%",)).fetchone()
        state, tries = db.execute("SELECT state, try_number FROM task_instance WHERE run_id = ? AND task_id = "
                                  "'reconcile'", (run_id,)).fetchone()
        row = db.execute("SELECT value FROM xcom WHERE run_id = ? AND task_id = 'reconcile' AND key = 'reports'",
                         (run_id,)).fetchone()
    return state, tries, json.loads(row[0]) if row else None


def test_dag_imports_without_errors(airflow_home):
    script = textwrap.dedent("""
        import json, sys
        from airflow.models.dagbag import DagBag
        bag = DagBag(dag_folder=sys.argv[1])
        dag = bag.dags.get("trade_recon")
        print(json.dumps({
            "errors": {k: str(v) for k, v in bag.import_errors.items()},
            "dags": sorted(bag.dag_ids),
            "catchup": dag and dag.catchup,
            "schedule": dag and [type(dag.timetable).__name__, dag.timetable.expression, str(dag.timetable.timezone)],
            "retries": dag and dag.get_task("reconcile").retries,
        }))
    """)
    out = subprocess.run([str(AIRFLOW_BIN / "python"), "-c", script, str(DAGS)], env=_env(airflow_home),
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["errors"] == {}
    assert doc["dags"] == ["trade_recon"]
    assert doc["catchup"] is True
    assert doc["schedule"] == ["CronDataIntervalTimetable", "0 4 * * *", "Europe/Amsterdam"]
    assert doc["retries"] == 3


def test_exit_codes_map_to_retry_or_not(airflow_home):
    script = textwrap.dedent("""
        import importlib.util, json, sys
        from datetime import date
        spec = importlib.util.spec_from_file_location("trade_recon_dag", sys.argv[1])
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        seen = {}
        for rc in (0, 1, 2, 3, 4, 137):
            try:
                mod.check_exit(rc, date(2026, 10, 25))
                seen[rc] = None
            except Exception as e:
                seen[rc] = type(e).__name__
        print(json.dumps(seen))
    """)
    out = subprocess.run([str(AIRFLOW_BIN / "python"), "-c", script, str(DAGS / "trade_recon_dag.py")],
                         env=_env(airflow_home), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "0": None, "1": "AirflowFailException", "2": "AirflowException", "3": "AirflowFailException",
        "4": "AirflowFailException", "137": "AirflowFailException",
    }


FINAL = {"event": "final", "verdict": "findings", "exit_code": 1,
         "runs": [{"dataset": "trades", "day": "x", "verdict": "findings", "summary": "3", "report": "/r/r.html"}]}
FAKE_RECON = f"#!/usr/bin/env bash\necho '{json.dumps(FINAL)}'\nexit \"$FAKE_RC\"\n"


@pytest.mark.parametrize("rc, tries", [(1, 1), (2, 2)], ids=["findings-not-retried", "incomplete-retried"])
def test_failed_runs_retry_only_when_incomplete(airflow_home, tmp_path, rc, tries):
    fake = tmp_path / "recon"
    fake.write_text(FAKE_RECON)
    fake.chmod(0o755)
    day = f"2026-01-0{rc}"
    out = _dags_test(airflow_home, day, TRADE_RECON_BIN=str(fake), FAKE_RC=str(rc),
                     TRADE_RECON_RETRIES="1", TRADE_RECON_RETRY_DELAY_S="0")
    assert out.returncode != 0  # the DAG run failed
    state, try_number, reports = _task(airflow_home, day)
    assert (state, try_number) == ("failed", tries)
    assert reports["runs"][0]["report"] == "/r/r.html"  # passed on even when the task fails


def test_dags_test_runs_a_real_day(airflow_home, tmp_path):
    from api_server.testing import serve
    from jobs.seed import seed_day

    day = "2026-10-25"
    seed_day(tmp_path / "store", __import__("datetime").date.fromisoformat(day), 50, 100, seed=6)
    with serve(tmp_path / "store") as api:
        out = _dags_test(
            airflow_home, day,
            TRADE_RECON_HOME=str(ROOT),
            TRADE_RECON_BIN=str(Path(sys.executable).with_name("recon")),
            TRADE_RECON_ARGS="--dataset trades",
            TRADE_RECON__ENV="airflow",
            TRADE_RECON__STORE__PATH=str(tmp_path / "store"),
            TRADE_RECON__REPORT__DIR=str(tmp_path / "reports"),
            TRADE_RECON__API__BASE_URL=api.base_url,
            TRADE_RECON__API__API_KEY__ENV="AIRFLOW_TEST_KEY",
            AIRFLOW_TEST_KEY="k",
            TRADE_RECON__ALERTS__ENABLED="false",
            TRADE_RECON__EXPECTATIONS__ENABLED="false",
            SPARK_LOCAL_IP="127.0.0.1",
        )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    state, tries, reports = _task(airflow_home, day)
    assert (state, tries) == ("success", 1)
    assert reports["verdict"] == "clean" and reports["exit_code"] == 0
    (run,) = reports["runs"]
    assert (run["dataset"], run["day"], run["verdict"]) == ("trades", day, "clean")
    html = Path(run["report"])
    assert html.is_file() and html.is_relative_to(tmp_path / "reports" / "airflow" / "trades" / day)
    assert json.loads((html.parent / "report.json").read_text())["rows"]["store"] == 50
