"""The job as a Spark application, for spark-submit:

    spark-submit --master local[2] --py-files dist/trade_recon.zip jobs/spark_app.py \\
        --day 2026-10-25 [--dataset trades|orders|all] --config conf/prod.yaml

The master and resources come from spark-submit; everything else is the same run as
`recon run`, with the same exit codes (0 clean, 1 findings, 2 incomplete, 3 config/usage,
4 locked). `--py-files` carries the `jobs`, `reconcilers`, `expectations` and `api_server`
packages (see the README for the zip command); the config file is read from disk, so pass
`--config` when the packages come from a zip.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__" and sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    # Run as a script, Python puts jobs/ first on sys.path, where config.py, errors.py and
    # spark.py would shadow any top-level module of those names; the packages come from
    # --py-files or the installed distribution instead.
    sys.path.pop(0)

from reconcilers.result import Outcome  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spark_app.py", description="trade-recon: reconcile one delivery day")
    p.add_argument("--day", required=True, help="delivery day YYYY-MM-DD (Europe/Amsterdam)")
    p.add_argument("--dataset", default="all", choices=["trades", "orders", "all"])
    p.add_argument("--config", default=None, help="YAML config (default conf/default.yaml)")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true", help="debug logs, and stack traces on errors")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        # argparse exits 2 on bad usage, which would read as "incomplete" here.
        return int(Outcome.CONFIG) if e.code else 0

    from jobs import console
    from jobs.config import ConfigError, load_config, parse_day
    from jobs.run import dataset_names, run

    console.configure(quiet=args.quiet, log_format=args.log_format, debug=args.debug)
    try:
        cfg = load_config(args.config)
        return run(cfg, parse_day(args.day), dataset_names(cfg, args.dataset))
    except ConfigError as e:
        return console.error(str(e), code=Outcome.CONFIG)
    except Exception as e:  # noqa: BLE001 - still one line; the stack trace with --debug
        return console.unexpected(e)


if __name__ == "__main__":
    sys.exit(main())
