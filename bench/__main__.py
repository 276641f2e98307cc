"""Run benchmarks: `python -m bench` (all) or `python -m bench seed serve ...`."""

from __future__ import annotations

import importlib
import sys

from bench.table import render, save

# name -> module with run() -> list[Row]. Each bench measures its peer in the same run.
BENCHES = {
    "seed": "bench.seed_bench",
    "alerts": "bench.alerts_bench",
    "report": "bench.report_bench",
    "serve": "bench.serve_bench",
    "compare": "bench.compare_bench",
    "gx": "bench.gx_bench",
    "e2e": "bench.e2e_bench",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown bench {unknown}; choose from {list(BENCHES)}", file=sys.stderr)
        return 3
    rows = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += importlib.import_module(BENCHES[name]).run()
    print(render(rows))
    path = save(rows, "latest" if not argv else "-".join(names))
    print(f"\nwritten to {path}")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
