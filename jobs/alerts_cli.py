"""`recon alerts ...` (the outbox) and `recon fake-pagerduty` (the local Events API stand-in)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (default conf/default.yaml)")]

alerts_app = typer.Typer(no_args_is_help=True, help="PagerDuty events waiting in the outbox: show, flush, requeue.")


@alerts_app.command("flush")
def flush(config: ConfigOpt = None) -> None:
    """Send the queued events now, oldest first (even with alerts disabled).
    Exit 0 when all were delivered, 2 when some still wait or were rejected."""
    from jobs.alerts import flush_outbox
    from jobs.config import load_config

    res = flush_outbox(load_config(config), force=True)
    typer.echo(f"delivered {res.sent}, still queued {res.pending}, rejected now {res.dead}")
    if res.error:
        typer.echo(f"stopped: {res.error}", err=True)
    raise typer.Exit(0 if res.ok else 2)


@alerts_app.command("status")
def status(config: ConfigOpt = None) -> None:
    """List the queued and the dead (rejected) events."""
    from jobs.alerts import describe, outbox_entries
    from jobs.config import load_config

    pending, dead = outbox_entries(load_config(config))
    typer.echo(f"{len(pending)} queued, {len(dead)} dead")
    for e in pending:
        last = e.record.get("last_error")
        typer.echo(f"  queued #{e.seq} {describe(e)} attempts={e.record.get('attempts', 0)}"
                   + (f" last error: {last}" if last else ""))
    for e in dead:
        why = e.record.get("rejected") or {}
        typer.echo(f"  dead   #{e.seq} {describe(e)} HTTP {why.get('status')}: {why.get('body')}")


@alerts_app.command("requeue")
def requeue(
    seqs: Annotated[Optional[list[int]], typer.Argument(help="Sequence numbers; all dead events when none")] = None,
    config: ConfigOpt = None,
) -> None:
    """Put dead events back at the end of the queue (after fixing why PagerDuty rejected them).
    Exit 3 when a sequence number named is not a dead event (the others are requeued)."""
    from jobs.alerts import requeue_dead
    from jobs.config import load_config

    moved = requeue_dead(load_config(config), seqs or None)
    for old, new in moved:
        typer.echo(f"requeued #{old} as #{new}")
    unknown = sorted(set(seqs or ()) - {old for old, _ in moved})
    if moved or not unknown:
        typer.echo(f"{len(moved)} requeued; `recon alerts flush` sends them now")
    if unknown:
        typer.echo(f"error: no dead event {', '.join(f'#{n}' for n in unknown)} in the outbox", err=True)
        raise typer.Exit(3)


def fake_pagerduty(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one)")] = 8766,
    state: Annotated[Optional[Path], typer.Option(help="JSON file keeping events and incidents across restarts")] = None,
) -> None:
    """Run a local PagerDuty Events API v2 stand-in (POST /v2/enqueue) until interrupted."""
    from jobs.pagerduty_standin import make_server

    try:
        server = make_server(host, port, state, quiet=False)
    except OSError as e:
        typer.echo(f"error: cannot listen on {host}:{port}: {e.strerror}", err=True)
        raise typer.Exit(3) from None
    bound = server.server_address[1]
    typer.echo(f"PagerDuty Events API v2 stand-in on http://{host}:{bound} "
               f"(POST /v2/enqueue; GET /_control/events, /_control/incidents)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
