"""Running the app under uvicorn: one worker, our own access log, no header ever logged."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from api_server.app import create_app
from api_server.auth import ApiKeys
from api_server.faults import FaultSpec
from api_server.service import ApiService
from api_server.source import DataSource


def build(source: DataSource, keys: ApiKeys, faults: tuple[FaultSpec, ...] = (), seed: int = 0,
          manifest: Path | None = None):
    service = ApiService(source, faults, seed, manifest)
    return create_app(service, keys), service


def uvicorn_server(app, host: str = "127.0.0.1", port: int = 0, tls: tuple[Path, Path] | None = None) -> uvicorn.Server:
    """`tls`: (certificate, private key) PEM files to serve https instead of http."""
    # uvicorn's own access log is off (ours in app.AccessLog logs no headers); log_config=None
    # leaves logging to the caller instead of uvicorn's dictConfig.
    certfile, keyfile = tls if tls else (None, None)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_config=None, lifespan="on",
                            timeout_keep_alive=30, server_header=False, ssl_certfile=certfile, ssl_keyfile=keyfile)
    return uvicorn.Server(config)


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
