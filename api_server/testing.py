"""A real bundled API on loopback for tests and the demo:

    with serve(store, faults=("drop-nulls",), fault_seed=3) as api:
        requests.get(f"{api.base_url}/v1/trades", params=..., headers={"X-API-Key": "k"})
        api.manifest_data()  # what the faults injected, for the days loaded so far

uvicorn runs in a background thread on 127.0.0.1, port 0 (a free port), and stops on exit.
"""

from __future__ import annotations

import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterator

import orjson

from api_server.auth import ApiKeys
from api_server.faults import parse_faults
from api_server.server import build, uvicorn_server
from api_server.service import ApiService
from api_server.source import DataSource, ParquetSource
from reconcilers.contract import dataset


@dataclass
class RunningApi:
    base_url: str
    manifest: Path
    service: ApiService

    def manifest_data(self) -> dict:
        """The manifest as it stands (the file is rewritten as days load and on stop)."""
        return self.service.manifest.to_dict()

    def load_day(self, dataset_name: str, day: date) -> None:
        """Load a day now, so the manifest covers it before any request does."""
        self.service.day(dataset(dataset_name), day)

    def read_manifest(self) -> dict:
        return orjson.loads(self.manifest.read_bytes())


@contextmanager
def serve(store_path: Path | str | DataSource, *, faults=(), fault_seed: int = 0, api_keys=("k",),
          manifest: Path | None = None, startup_timeout_s: float = 20.0,
          tls: tuple[Path, Path] | None = None) -> Iterator[RunningApi]:
    """`tls`: (certificate, key) PEM files; the API then answers on https://127.0.0.1:PORT."""
    source = store_path if not isinstance(store_path, (str, Path)) else ParquetSource(store_path)
    specs = parse_faults(list(faults)) if faults and isinstance(next(iter(faults)), str) else tuple(faults)
    with tempfile.TemporaryDirectory(prefix="recon-api-") as tmp:
        manifest_path = Path(manifest) if manifest else Path(tmp) / "manifest.json"
        app, service = build(source, ApiKeys(list(api_keys)), specs, fault_seed, manifest_path)
        server = uvicorn_server(app, "127.0.0.1", 0, tls)
        thread = threading.Thread(target=server.run, name="recon-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError("the bundled API did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield RunningApi(f"{'https' if tls else 'http'}://127.0.0.1:{port}", manifest_path, service)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
