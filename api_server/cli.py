"""`recon serve-api`: the bundled API over the configured store, optionally with faults."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from jobs.config import load_config
from reconcilers.result import Outcome


def serve_api(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[Optional[int], typer.Option(min=0, max=65535, help="Port; default: the port of api.base_url; 0: any free port")] = None,
    fault: Annotated[Optional[list[str]], typer.Option("--fault", help="Fault profile, e.g. drop-nulls or 429-burst:retry_after=2,count=3 (repeatable)")] = None,
    fault_seed: Annotated[int, typer.Option("--fault-seed", help="Seed of the per-record fault decisions")] = 0,
    manifest: Annotated[Optional[Path], typer.Option(help="Where to write the ground-truth fault manifest (default <report.dir>/api-fault-manifest.json)")] = None,
    api_keys_file: Annotated[Optional[Path], typer.Option("--api-keys-file", help="Server API keys, one per line; default: env TRADE_RECON_SERVER_API_KEYS")] = None,
    write_openapi: Annotated[bool, typer.Option("--write-openapi", help="Write api_server/openapi.json from the contract and exit")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (default conf/default.yaml)")] = None,
) -> None:
    """Serve trades and orders from the store over HTTP (the stand-in for the public API)."""
    from urllib.parse import urlsplit

    from jobs import console

    if write_openapi:
        from api_server import openapi

        typer.echo(f"wrote {openapi.write()}")
        return

    from api_server.auth import ApiKeys, KeyConfigError, load_keys
    from api_server.faults import FaultError, parse_faults
    from api_server.server import build, uvicorn_server
    from api_server.source import source_from_config

    cfg = load_config(config)
    try:
        specs = parse_faults(fault or [])
    except FaultError as e:
        raise typer.Exit(console.error(str(e), "see the Bundled API section of the README for the profiles"))
    try:
        keys = ApiKeys(load_keys(api_keys_file))
    except KeyConfigError as e:
        raise typer.Exit(console.error(str(e), "set TRADE_RECON_SERVER_API_KEYS=key1,key2 or pass --api-keys-file"))
    if port is None:
        port = urlsplit(cfg.api.base_url).port or 8765
    manifest_path = manifest or cfg.resolve(cfg.report.dir) / "api-fault-manifest.json"
    app, _ = build(source_from_config(cfg), keys, specs, fault_seed, manifest_path)
    server = uvicorn_server(app, host, port)
    profiles = ", ".join(s.text() for s in specs) or "none"

    startup = server.startup

    async def announce(sockets=None):
        await startup(sockets)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname()
            typer.echo(f"serving on http://{bound[0]}:{bound[1]} (faults: {profiles}; seed {fault_seed}; "
                       f"manifest: {manifest_path})")

    server.startup = announce

    def stop(sig, frame):
        # A stop request ends the service normally (exit 0); uvicorn would re-raise the signal.
        server.force_exit = server.should_exit and sig == signal.SIGINT
        server.should_exit = True

    server.handle_exit = stop
    try:
        server.run()
    except SystemExit:
        pass  # uvicorn exits when it cannot bind; reported below
    if not server.started:
        raise typer.Exit(console.error(f"could not serve on {host}:{port}", "is the port in use?", Outcome.CONFIG))
