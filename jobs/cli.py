"""`recon`: the command line. Exit codes: 0 clean, 1 findings, 2 incomplete/failed, 3 bad
configuration or usage, 4 locked by another run."""

from __future__ import annotations

import os
import sys
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer._click import exceptions as click_exc  # typer vendors click

from jobs.config import ConfigError, load_config, parse_day
from reconcilers.result import Outcome

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="trade-recon: reconcile the public trading API against the internal store.")



class LogFormat(str, Enum):
    text = "text"
    json = "json"


@app.callback()
def _root(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final line (for cron)")] = False,
    log_format: Annotated[LogFormat, typer.Option("--log-format", help="json: one JSON object per line")] = LogFormat.text,
    debug: Annotated[bool, typer.Option("--debug", help="Debug logs, and stack traces on errors")] = False,
) -> None:
    """trade-recon: reconcile the public trading API against the internal store."""
    from jobs import console

    console.configure(quiet=quiet, log_format=log_format.value, debug=debug)


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (default conf/default.yaml)")]


def _fail(message: str, hint: str | None = None, code: int = Outcome.CONFIG) -> None:
    from jobs import console

    raise typer.Exit(console.error(message, hint, code))


@app.command()
def seed(
    day: Annotated[str, typer.Option("--day", help="Delivery day YYYY-MM-DD (Europe/Amsterdam)")],
    trades: Annotated[int, typer.Option(min=0, help="Trade revisions to generate")] = 10_000,
    orders: Annotated[int, typer.Option(min=0, help="Order events to generate")] = 50_000,
    seed_: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives identical data")] = 7,
    config: ConfigOpt = None,
) -> None:
    """Generate a realistic delivery day into the Parquet store."""
    from jobs.seed import seed_day

    cfg = load_config(config)
    store = cfg.resolve(cfg.store.path)
    for r in seed_day(store, parse_day(day), trades, orders, seed_):
        typer.echo(f"seeded {r.rows:>9,} {r.dataset:<6} for {r.day} -> {r.path}")


class DatasetChoice(str, Enum):
    trades = "trades"
    orders = "orders"
    all = "all"


def with_alert_mode(cfg, *, no_alert: bool, dry_run: bool):
    if not (no_alert or dry_run):
        return cfg
    update = {"dry_run": True, **({"enabled": False} if no_alert else {})}
    return cfg.model_copy(update={"alerts": cfg.alerts.model_copy(update=update)})


@app.command("run")
def run_cmd(
    day: Annotated[str, typer.Option("--day", help="Delivery day YYYY-MM-DD (Europe/Amsterdam)")],
    dataset_: Annotated[DatasetChoice, typer.Option("--dataset", help="Dataset to reconcile")] = DatasetChoice.all,
    recheck: Annotated[int, typer.Option("--recheck", min=0, max=14, help="Also re-check the K days before (trades get cancelled after the nightly run)")] = 0,
    no_alert: Annotated[bool, typer.Option("--no-alert", help="Send no PagerDuty event (no routing key needed); print what would be sent")] = False,
    alert_dry_run: Annotated[bool, typer.Option("--alert-dry-run", help="Print the PagerDuty events instead of sending them")] = False,
    config: ConfigOpt = None,
) -> None:
    """Reconcile the API against the store for one delivery day (exit 0 clean, 1 findings, 2 incomplete)."""
    from jobs.run import dataset_names, run

    cfg = with_alert_mode(load_config(config), no_alert=no_alert, dry_run=alert_dry_run)
    if recheck:
        from jobs.backfill import recheck_days

        raise typer.Exit(recheck_days(cfg, parse_day(day), recheck, dataset_names(cfg, dataset_.value)))
    raise typer.Exit(run(cfg, parse_day(day), dataset_names(cfg, dataset_.value)))


from jobs.alerts_cli import alerts_app, fake_pagerduty  # noqa: E402 - the alert commands live with the alerts

app.add_typer(alerts_app, name="alerts")
app.command("fake-pagerduty")(fake_pagerduty)

from jobs.report_cli import history_cmd, report_app  # noqa: E402 - the report commands live with the reports

app.add_typer(report_app, name="report")
app.command("history")(history_cmd)

from jobs.ops_cli import backfill_cmd, pg_load_cmd  # noqa: E402 - the operations commands live with backfill

app.command("backfill")(backfill_cmd)
app.command("pg-load")(pg_load_cmd)

from api_server.cli import serve_api  # noqa: E402 - the API command lives with the API
from jobs.demo import demo_cmd  # noqa: E402

app.command("demo")(demo_cmd)

app.command("serve-api")(serve_api)


def main(argv: list[str] | None = None) -> int:
    # Whatever umask cron or a shell hands us, reports, ledger, outbox and locks are never
    # writable (or readable) by others; a stricter umask stays as it is.
    os.umask(os.umask(0o027) | 0o027)
    try:
        rv = app(args=argv, standalone_mode=False)
    except ConfigError as e:
        from jobs import console

        return console.error(str(e), code=Outcome.CONFIG)
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except click_exc.UsageError as e:
        e.show()
        return int(Outcome.CONFIG)
    except Exception as e:  # not expected: still one line (the stack trace with --debug), exit 2
        from jobs import console

        return console.unexpected(e)
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
