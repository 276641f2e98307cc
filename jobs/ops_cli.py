"""Operations commands: `recon backfill` and `recon pg-load`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from jobs.config import load_config, parse_day
from reconcilers.contract import DATASETS

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (default conf/default.yaml)")]


DatasetChoice = Enum("DatasetChoice", {n: n for n in [*DATASETS, "all"]}, type=str)


def backfill_cmd(
    from_: Annotated[str, typer.Option("--from", help="First delivery day YYYY-MM-DD")],
    to: Annotated[str, typer.Option("--to", help="Last delivery day YYYY-MM-DD (included)")],
    dataset_: Annotated[DatasetChoice, typer.Option("--dataset", help="Dataset to reconcile")] = DatasetChoice["all"],
    force: Annotated[bool, typer.Option("--force", help="Re-run days whose latest run was clean too")] = False,
    parallel_days: Annotated[int, typer.Option("--parallel-days", min=1, max=8, help="Days run at once (threads sharing one Spark session)")] = 1,
    config: ConfigOpt = None,
) -> None:
    """Reconcile a range of days with one Spark session; resumes, skipping days already clean.
    Exit code: the worst day's; 130 when stopped with Ctrl-C (a re-run continues)."""
    from jobs.backfill import backfill
    from jobs.run import dataset_names

    cfg = load_config(config)
    code = backfill(cfg, parse_day(from_, "--from"), parse_day(to, "--to"), dataset_names(cfg, dataset_.value),
                    force=force, parallel_days=parallel_days)
    raise typer.Exit(code)


def pg_load_cmd(
    day: Annotated[str, typer.Option("--day", help="Delivery day YYYY-MM-DD already seeded in the Parquet store")],
    dataset_: Annotated[DatasetChoice, typer.Option("--dataset", help="Dataset to load")] = DatasetChoice["all"],
    create_db: Annotated[bool, typer.Option("--create-db/--no-create-db", help="Create the database if missing")] = True,
    config: ConfigOpt = None,
) -> None:
    """Load a seeded day from the Parquet store into PostgreSQL (store.jdbc), replacing that day."""
    from jobs import console, pg_store
    from jobs.run import dataset_names
    from reconcilers.contract import dataset
    from reconcilers.result import Outcome

    cfg = load_config(config)
    the_day = parse_day(day)
    tgt = pg_store.target(cfg.store.jdbc)
    store = cfg.resolve(cfg.store.path)
    try:
        if create_db and pg_store.ensure_database(tgt):
            typer.echo(f"created database {tgt.dbname}")
        for name in dataset_names(cfg, dataset_.value):
            rows = pg_store.load_day(tgt, store, dataset(name), the_day)
            typer.echo(f"loaded {rows:>9,} {name:<6} for {the_day} into {tgt!r}")
    except pg_store.PgStoreError as e:
        raise typer.Exit(console.error(str(e), "is PostgreSQL running, and store.jdbc.url right?", Outcome.INCOMPLETE))
