"""One row per measured quantity, printed as one table and saved under bench/results/."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    bench: str
    metric: str
    median: float
    unit: str
    runs: int
    target: str = ""
    peer: str = ""  # what the ratio compares against, measured in the same run
    ratio: float | None = None
    ok: bool | None = None


def timed(fn, repeat: int = 3) -> tuple[float, list[float], object]:
    """Median wall time of `fn()` over `repeat` runs, all times, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def render(rows: list[Row]) -> str:
    head = "| bench | metric | median | unit | runs | target | peer | ratio | ok |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        ok = {True: "yes", False: "NO", None: ""}[r.ok]
        lines.append(f"| {r.bench} | {r.metric} | {r.median:,.2f} | {r.unit} | {r.runs} | {r.target} | {r.peer} | {ratio} | {ok} |")
    return "\n".join(lines)


def save(rows: list[Row], name: str = "latest") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    (RESULTS / f"{name}.json").write_text(json.dumps({"at": stamp, "rows": [asdict(r) for r in rows]}, indent=2))
    md = RESULTS / f"{name}.md"
    md.write_text(f"# bench results ({stamp})\n\n{render(rows)}\n")
    return md
