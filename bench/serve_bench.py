"""Serving speed of the bundled API: trades records/s in full 2000-record pages, one uvicorn worker
(`recon serve-api` in its own process), read by a minimal keep-alive client on loopback.
Target >= 50,000 records/s.

Peer: `orjson.dumps` of the same records, page by page, in-process (serialisation alone, no HTTP).
The first read of a day also encodes it; that is reported separately, the target is the warm read.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

import orjson

from bench.table import Row, timed
from jobs.seed import seed_day

N = 200_000
PAGE = 2000
DAY = date(2026, 10, 25)
KEY = "bench-key"
ROOT = Path(__file__).resolve().parent.parent


def _read_day(host: str, port: int) -> list[bytes]:
    """Every page of the day's trades, following cursors on one keep-alive connection."""
    conn = http.client.HTTPConnection(host, port, timeout=120)
    bodies, cursor = [], None
    try:
        while True:
            params = {"deliveryDay": DAY.isoformat(), "pageSize": PAGE, **({"cursor": cursor} if cursor else {})}
            conn.request("GET", f"/v1/trades?{urlencode(params)}", headers={"X-API-Key": KEY})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"bench read failed: HTTP {resp.status}")
            bodies.append(body)
            # The cursor sits in the small tail of the envelope; no need to parse the page.
            cursor = orjson.loads(body[body.rindex(b',"pagination":') + 14 : body.rindex(b',"meta":')])["nextCursor"]
            if cursor is None:
                return bodies
    finally:
        conn.close()


def run(repeat: int = 3) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        seed_day(store, DAY, N, 1, seed=7)  # (the seeder needs at least one order)
        env = {**os.environ, "TRADE_RECON_SERVER_API_KEYS": KEY, "TRADE_RECON__STORE__PATH": str(store),
               "TRADE_RECON__REPORT__DIR": str(Path(tmp) / "reports")}
        proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "--quiet", "serve-api", "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
        try:
            host, port = re.search(r"http://([\d.]+):(\d+)", proc.stdout.readline()).groups()
            t0 = time.perf_counter()
            bodies = _read_day(host, int(port))
            cold_s = time.perf_counter() - t0
            served = sum(len(orjson.loads(b)["data"]) for b in bodies)
            assert served == N, f"served {served} of {N} records"
            warm_s, _, _ = timed(lambda: _read_day(host, int(port)), repeat)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    pages = [json.loads(b)["data"] for b in bodies]
    peer_s, _, _ = timed(lambda: [orjson.dumps(p) for p in pages], repeat)
    rate, peer_rate = N / warm_s, N / peer_s
    return [
        Row("serve", f"trades served, {PAGE}-record pages, 1 worker", rate, "records/s", repeat, ">= 50,000",
            "orjson.dumps in-process", rate / peer_rate, rate >= 50_000),
        Row("serve", "orjson.dumps of the same pages in-process", peer_rate, "records/s", repeat),
        Row("serve", f"first read of a {N:,}-trade day (encoding included)", N / cold_s, "records/s", 1),
    ]
