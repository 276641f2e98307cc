"""`recon demo`: the whole product on one machine, from nothing.

Seeds a delivery day into the Parquet store, starts the bundled API with a null-dropping
serializer fault and the local PagerDuty stand-in (both on loopback), runs the nightly job for
every dataset, then shows the incident it opened and checks the job found exactly what the API
injected. Demo secrets are generated per run and only ever passed through the environment.
"""

from __future__ import annotations

import os
import secrets
from datetime import date

import typer

from jobs.config import load_config
from reconcilers.result import Outcome

DEMO_DAY = date(2026, 10, 25)  # the 25-hour day: the repeated hour must survive the round trip
DEMO_FAULTS = ("drop-nulls:fields=trader_id,aggressor_side,text", "drop-records:rate=0.0005")


def _expected(manifest: dict, dataset: str, day: date) -> dict[str, dict[str, int]]:
    return manifest.get("expected", {}).get(dataset, {}).get(day.isoformat(), {})


def run_demo(day: date = DEMO_DAY, trades: int = 20_000, orders: int = 60_000, seed: int = 7) -> int:
    from api_server.testing import serve as serve_api
    from jobs import console
    from jobs.pagerduty_standin import serve as serve_pagerduty
    from jobs.run import dataset_names, run
    from jobs.seed import seed_day

    base = load_config()
    store = base.resolve(base.store.path)
    console.info(f"1/4 seeding {day} (Europe/Amsterdam, 25 hours) into {store}")
    for r in seed_day(store, day, trades, orders, seed):
        console.info(f"    {r.rows:>7,} {r.dataset:<6} -> {r.path}")

    api_key = secrets.token_urlsafe(24)
    routing_key = secrets.token_hex(16)  # 32 characters, as PagerDuty requires
    with serve_api(store, faults=DEMO_FAULTS, fault_seed=seed, api_keys=(api_key,)) as api, serve_pagerduty() as pd:
        console.info(f"2/4 bundled API on {api.base_url} with faults: {', '.join(DEMO_FAULTS)}")
        console.info(f"    PagerDuty Events API v2 stand-in on {pd.base_url}")
        environ = {
            **os.environ,
            "TRADE_RECON_API_KEY": api_key,
            "TRADE_RECON_ROUTING_KEY": routing_key,
            "TRADE_RECON__API__BASE_URL": api.base_url,
            "TRADE_RECON__ALERTS__BASE_URL": pd.base_url,
        }
        cfg = load_config(environ=environ)
        os.environ["TRADE_RECON_API_KEY"] = api_key
        os.environ["TRADE_RECON_ROUTING_KEY"] = routing_key
        try:
            console.info("3/4 running the reconciliation job (Spark) ...")
            code = run(cfg, day, dataset_names(cfg, "all"))
        finally:
            os.environ.pop("TRADE_RECON_API_KEY", None)
            os.environ.pop("TRADE_RECON_ROUTING_KEY", None)
        manifest = api.manifest_data()
        incidents = pd.incidents()

    console.info("4/4 PagerDuty incidents opened by this run (stand-in):")
    for inc in incidents:
        console.info(f"    [{inc.get('status')}] {inc.get('severity', '')} {inc['dedup_key']}: {inc.get('summary', '')}")

    from jobs.report import latest_report, load_report

    ok = code == Outcome.FINDINGS
    for name in dataset_names(cfg, "all"):
        path = latest_report(cfg, name, day)
        found = load_report(path)["counts"] if path else {}
        expected = _expected(manifest, name, day)
        same = {k: v for k, v in found.items() if k != "expectation_failed"} == expected
        ok &= same
        console.info(f"    {name}: findings {'match' if same else 'DO NOT match'} what the API injected")
    if ok:
        console.info("demo: the job caught exactly the faults the API injected (exit code 1 = findings, as expected)")
        return 0
    console.error("the demo did not end as expected; see the report above", code=2)
    return 2


def demo_cmd(
    day: str = typer.Option(DEMO_DAY.isoformat(), "--day", help="Delivery day to seed and reconcile"),
    trades: int = typer.Option(20_000, min=0, help="Trade revisions to seed"),
    orders: int = typer.Option(60_000, min=0, help="Order events to seed"),
) -> None:
    """Seed a day, serve it with a null-dropping fault, run the job, alert the local PagerDuty stand-in."""
    from jobs.config import parse_day

    raise typer.Exit(run_demo(parse_day(day), trades, orders))
