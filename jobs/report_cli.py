"""`recon history` (the run ledger) and `recon report show` (a report in the terminal)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from jobs.config import ConfigError, load_config, parse_day

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (default conf/default.yaml)")]
DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", "-d", help="trades or orders (default: all)")]

report_app = typer.Typer(no_args_is_help=True, help="Read the reports of earlier runs.")


def _check_dataset(name: str | None) -> None:
    from reconcilers.contract import DATASETS

    if name is not None and name not in DATASETS:
        raise ConfigError(f"--dataset: unknown dataset {name!r}; expected one of {sorted(DATASETS)}")


def history_cmd(
    dataset: DatasetOpt = None,
    day: Annotated[Optional[str], typer.Option("--day", help="Only runs for this delivery day YYYY-MM-DD")] = None,
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="How many runs to show")] = 20,
    config: ConfigOpt = None,
) -> None:
    """The most recent runs from the run ledger, newest first, with the trend in findings."""
    from jobs import console
    from jobs.ledger import history, ledger_path

    cfg = load_config(config)
    _check_dataset(dataset)
    day_s = parse_day(day).isoformat() if day else None
    rows = history(cfg, dataset=dataset, day=day_s, last=last)
    if not rows:
        console.info(f"no runs recorded in {ledger_path(cfg)}" + (" for that filter" if dataset or day else ""))
        return
    console.print_history(rows)


@report_app.command("show")
def show(
    day: Annotated[str, typer.Argument(help="Delivery day YYYY-MM-DD")],
    dataset: DatasetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The latest report of a delivery day, summarised in the terminal."""
    from jobs import console
    from jobs.report import HTML_NAME, ReportError, env_dir, latest_report, load_report

    cfg = load_config(config)
    _check_dataset(dataset)
    d = parse_day(day, "DAY")
    datasets = [dataset] if dataset else list(cfg.datasets)
    shown = 0
    for ds in datasets:
        path = latest_report(cfg, ds, d)
        if path is None:
            if dataset is None:
                console.info(f"no report for {ds} on {d}")
            continue
        try:
            doc = load_report(path)
        except ReportError as e:
            raise typer.Exit(console.error(str(e), "the file was written by another trade-recon version or damaged"))
        shown += 1
        html = path.with_name(HTML_NAME)
        if console.settings.json:
            console.emit_json("report", stream=sys.stdout, path=str(path), html=str(html),
                              **{k: doc[k] for k in ("run_id", "dataset", "day", "verdict", "exit_code", "summary",
                                                     "error", "rows", "totals", "counts")})
        else:
            console.print_report_summary(doc, html)
    if not shown:
        raise typer.Exit(console.error(
            f"no report for {', '.join(datasets)} on {d} under {env_dir(cfg)}",
            f"run `recon run --day {d}` first, or check --config and env ({cfg.env})",
        ))
