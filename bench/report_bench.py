"""Report writing at its largest: every finding kind on every trades field, each with the full
sample cap (20), plus the 25-hour DST day. Target: <= 2 s for JSON + HTML, fsynced and published.

Peer: serializing the same document to JSON alone (the floor of the write).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench.table import Row, timed
from jobs.config import load_config
from jobs.report import build_report, write_report
from reconcilers.contract import TRADES
from reconcilers.result import ABSENT, FINDING_KINDS, Sample

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from report_samples import findings_result, trade  # noqa: E402

RECORD_KINDS = ("missing_in_api", "unexpected_in_api", "duplicate_key", "null_key")


def worst_case():
    r = findings_result(env="bench")
    r.counts, r.samples = {}, []
    for kind in FINDING_KINDS:
        fields = ["*"] if kind in RECORD_KINDS else TRADES.names
        r.counts[kind] = {f: 1000 + i for i, f in enumerate(fields)}
        for f in fields:
            for i in range(20):
                key = {"trade_id": f"T-{kind}-{f}-{i}", "revision_no": 1}
                if f == "*":
                    r.samples.append(Sample(kind, None, key, store=trade(key["trade_id"]), api=ABSENT))
                else:
                    r.samples.append(Sample(kind, f, key, store=f"store value {i}", api=f"api value {i}"))
    return r


def run(repeat: int = 5) -> list[Row]:
    result = worst_case()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(environ={"TRADE_RECON__ENV": "bench", "TRADE_RECON__REPORT__DIR": tmp})
        counter = iter(range(10_000))

        def write():
            result.run_id = f"bench-{next(counter)}"
            return write_report(result, cfg)

        write_s, _, paths = timed(write, repeat)
        html_mb = paths.html.stat().st_size / 1e6
        doc = build_report(result, cfg)
        floor_s, _, _ = timed(lambda: json.dumps(doc, indent=1, ensure_ascii=False), repeat)
    n = len(result.samples)
    return [
        Row("report", f"write report, {n:,} samples (JSON + HTML, fsync, publish)", write_s, "s", repeat, "<= 2 s",
            "json.dumps only", write_s / floor_s, write_s <= 2),
        Row("report", "HTML size of that report", html_mb, "MB", 1),
        Row("report", "json.dumps of the same document", floor_s, "s", repeat),
    ]
