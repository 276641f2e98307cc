"""Alert delivery cost of one run (3 events: trigger + 2 resolves) through `send_for`: durable
outbox (write, fsync, send, delete) and a fresh pagerduty client, to the local stand-in on loopback.

Peer, measured in the same run: the bare pagerduty client sending the same 3 events on a
client that is already open (no outbox, no client set-up), i.e. the floor of the HTTP part.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.table import Row, timed
from jobs.alerts import _client, send_for
from jobs.config import load_config
from jobs.pagerduty_standin import serve
from reconcilers.result import DatasetResult, Outcome

RUNS = 30
_KEY_ENV = "TRADE_RECON_BENCH_ROUTING_KEY"


def run(repeat: int = 3) -> list[Row]:
    os.environ.setdefault(_KEY_ENV, "0123456789abcdef0123456789abcdef")
    result = DatasetResult("trades", "2026-10-25", "bench", "r", outcome=Outcome.FINDINGS, store_rows=10, api_rows=9,
                           counts={"missing_in_api": {"*": 1}})
    with tempfile.TemporaryDirectory() as tmp, serve() as pd:
        cfg = load_config(environ={"TRADE_RECON__ALERTS__BASE_URL": pd.base_url,
                                   "TRADE_RECON__ALERTS__ROUTING_KEY__ENV": _KEY_ENV,
                                   "TRADE_RECON__ALERTS__OUTBOX": str(Path(tmp) / "outbox")})
        events = send_for(cfg, result, None).events

        def durable():
            for _ in range(RUNS):
                assert send_for(cfg, result, None).status == "delivered"

        client = _client(cfg, cfg.alerts.routing_key.read("bench"))

        def bare():
            for _ in range(RUNS):
                for e in events:
                    rest = {k: v for k, v in e.items() if k not in ("event_action", "dedup_key")}
                    client.send_event(e["event_action"], dedup_key=e["dedup_key"], **rest)

        try:
            durable_s, _, _ = timed(durable, repeat)
            bare_s, _, _ = timed(bare, repeat)
        finally:
            client.close()
    per_run, per_bare = durable_s / RUNS * 1000, bare_s / RUNS * 1000
    return [
        Row("alerts", "one run's 3 events via send_for (outbox + new client)", per_run, "ms", repeat, "<= 500 ms",
            "bare client, 3 sends", per_run / per_bare, per_run <= 500),
        Row("alerts", "bare pagerduty client, 3 sends on an open client", per_bare, "ms", repeat),
    ]
