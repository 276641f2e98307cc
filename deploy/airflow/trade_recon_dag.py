"""Airflow 3 DAG: the nightly trade-recon run, one DAG run per delivery day.

The job runs as the `recon` command of the project's own virtual environment; Airflow lives in a
separate one (deploy/airflow/requirements-airflow.txt), so neither pins the other's packages.

- Schedule: 04:00 Europe/Amsterdam (clear of both DST switches), for the delivery day that ended at the midnight before; the
  run's data interval starts on that day, so its logical date is the delivery day. `catchup`
  is on: a paused or new deployment catches up day by day, which is how Airflow backfills.
- Exit codes of `recon run` decide what Airflow does:
  0 clean          -> success
  1 findings       -> failed, never retried (PagerDuty is already alerted; a retry finds the same)
  2 incomplete     -> failed and retried (the API or the store may be back)
  3 configuration  -> failed, never retried (a person must fix the config)
  4 locked         -> failed, never retried (another run, a backfill say, owns this day's report and
                      incident; clear the task once it has finished)
  anything else    -> failed, never retried (killed, crashed: a person looks first)
- The verdict and report paths go to XCom under the key `reports` whatever the outcome (and as
  the return value on success), for a downstream notifier to pull.

Retries (exit 2 only): TRADE_RECON_RETRIES (default 3) and TRADE_RECON_RETRY_DELAY_S (default
900, doubling), read when the DAG file is parsed. The other settings come from the worker's
environment, read when the task runs: TRADE_RECON_HOME (the checkout, working directory of the job; default: two levels above
this file), TRADE_RECON_BIN (default $TRADE_RECON_HOME/.venv/bin/recon), TRADE_RECON_CONFIG
(config file), TRADE_RECON_ARGS (extra `recon run` arguments, e.g. "--dataset trades").
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

log = logging.getLogger(__name__)

MARKET_TZ = "Europe/Amsterdam"
CLEAN, FINDINGS, INCOMPLETE, CONFIG, LOCKED = range(5)
# How long `recon` gets to stop cleanly (finish or abandon the day, release its locks) after
# Airflow stops the task, before it is killed.
STOP_GRACE_S = 120


def recon_command(day: date, recheck: int, env: dict[str, str]) -> tuple[list[str], Path]:
    home = Path(env.get("TRADE_RECON_HOME") or Path(__file__).resolve().parents[2])
    recon = env.get("TRADE_RECON_BIN") or str(home / ".venv" / "bin" / "recon")
    # JSON lines: the final event names each dataset's report, parsed below.
    cmd = [recon, "--log-format", "json", "run", "--day", day.isoformat()]
    if env.get("TRADE_RECON_CONFIG"):
        cmd += ["--config", env["TRADE_RECON_CONFIG"]]
    if recheck:
        cmd += ["--recheck", str(recheck)]
    cmd += shlex.split(env.get("TRADE_RECON_ARGS", ""))
    return cmd, home


def final_event(lines: list[str]) -> dict[str, Any] | None:
    for line in reversed(lines):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("event") == "final":
            return doc
    return None


def reports_of(final: dict[str, Any] | None) -> dict[str, Any]:
    if not final:
        return {}
    return {
        "verdict": final.get("verdict"),
        "exit_code": final.get("exit_code"),
        "runs": [
            {k: r.get(k) for k in ("dataset", "day", "verdict", "summary", "report")} for r in final.get("runs", [])
        ],
    }


def check_exit(rc: int, day: date) -> None:
    """Raise what tells Airflow to retry (AirflowException) or not (AirflowFailException)."""
    if rc == CLEAN:
        return
    if rc == FINDINGS:
        raise AirflowFailException(f"trade-recon {day}: findings (PagerDuty alerted); not retried")
    if rc == CONFIG:
        raise AirflowFailException(f"trade-recon {day}: configuration or usage error; fix it, then clear the task")
    if rc == INCOMPLETE:
        raise AirflowException(f"trade-recon {day}: incomplete run (API or store unavailable); will retry")
    if rc == LOCKED:
        raise AirflowFailException(f"trade-recon {day}: another run holds the lock for this day; "
                                   "clear the task once it has finished")
    raise AirflowFailException(f"trade-recon {day}: recon ended with exit code {rc}; not retried, see the task log")


def run_recon(day: date, recheck: int, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    cmd, home = recon_command(day, recheck, env)
    log.info("running %s in %s", shlex.join(cmd), home)
    lines: list[str] = []
    proc = subprocess.Popen(
        cmd, cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            log.info("recon: %s", line)
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            # Airflow is stopping this task: ask recon to stop the way Ctrl-C does.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return rc, reports_of(final_event(lines))


def delivery_day(context: dict[str, Any]) -> date:
    explicit = (context.get("params") or {}).get("day")
    if explicit:
        return date.fromisoformat(explicit)
    # A manual run may have no logical date in Airflow 3; it then checks the day before it runs.
    when = context.get("logical_date")
    if when is None:
        return (pendulum.instance(context["dag_run"].run_after).in_timezone(MARKET_TZ) - timedelta(days=1)).date()
    return pendulum.instance(when).in_timezone(MARKET_TZ).date()


@dag(
    dag_id="trade_recon",
    schedule=CronDataIntervalTimetable("0 4 * * *", timezone=MARKET_TZ),
    start_date=pendulum.datetime(2026, 1, 1, tz=MARKET_TZ),
    catchup=True,
    max_active_runs=2,
    default_args={
        "owner": "trade-recon",
        "retries": int(os.environ.get("TRADE_RECON_RETRIES", "3")),
        "retry_delay": timedelta(seconds=float(os.environ.get("TRADE_RECON_RETRY_DELAY_S", "900"))),
        "retry_exponential_backoff": 2.0,
        "execution_timeout": timedelta(hours=6),
    },
    params={
        "day": Param(None, type=["null", "string"], format="date", description="Delivery day; default: the run's"),
        "recheck": Param(2, type="integer", minimum=0, maximum=14, description="Also re-check this many days before"),
    },
    tags=["trade-recon", "data-quality"],
    doc_md=__doc__,
)
def trade_recon():
    @task
    def reconcile() -> dict[str, Any]:
        context = get_current_context()
        day = delivery_day(context)
        rc, reports = run_recon(day, int(context["params"]["recheck"]), dict(os.environ))
        context["ti"].xcom_push(key="reports", value=reports)
        check_exit(rc, day)
        return reports

    reconcile()


trade_recon()
