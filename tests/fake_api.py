"""A small loopback API for the replay tests (stdlib http.server, HTTP/1.1 keep-alive).

It serves records with the real envelope, filtered to the requested delivery window and paged
with an opaque cursor, and lets a test change exactly one thing: `fault(req)` may answer a
request itself, `edit(req, envelope)` may alter (or replace with raw bytes) a normal answer.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import orjson
import pyarrow as pa

from reconcilers.contract import DATASETS, Dataset


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def to_json(table: pa.Table, ds: Dataset, day: date) -> list[dict]:
    """Store rows -> API records as the contract says: camelCase keys, decimals as JSON numbers,
    timestamps as ISO UTC with Z at the field's precision, explicit nulls."""
    cols = []
    for f in ds.fields:
        if f.name == ds.day_field:
            cols.append([day.isoformat()] * table.num_rows)
            continue
        vals = table.column(f.name).to_pylist()
        if f.kind == "decimal":
            vals = [None if v is None else float(v) for v in vals]
        elif f.kind == "timestamp":
            def fmt(v, ms=f.unit == "ms"):
                if v is None:
                    return None
                text = v.strftime("%Y-%m-%dT%H:%M:%S")
                return text + (f".{v.microsecond // 1000:03d}Z" if ms else "Z")
            vals = [fmt(v) for v in vals]
        elif f.kind == "date":
            vals = [None if v is None else v.isoformat() for v in vals]
        cols.append(vals)
    names = [f.json for f in ds.fields]
    return [dict(zip(names, row)) for row in zip(*cols)]


@dataclass
class Req:
    n: int  # 1-based number of this request on the server
    dataset: str
    params: dict[str, str]
    headers: dict[str, str]
    offset: int = 0
    page_size: int = 0


Answer = tuple[int, dict[str, str], bytes]


def problem(status: int, title: str, headers: dict | None = None) -> Answer:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status})
    return status, {"Content-Type": "application/problem+json", **(headers or {})}, body


@dataclass
class FakeApi:
    records: dict[str, list[dict]]
    api_key: str = "k"
    fault: Callable[[Req], Answer | None] | None = None
    edit: Callable[[Req, dict], dict | bytes] | None = None
    requests: list[Req] = field(default_factory=list)
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, query: str, headers: dict[str, str]) -> Answer:
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        name = path.removeprefix("/v1/")
        with self._lock:
            req = Req(len(self.requests) + 1, name, params, headers)
            self.requests.append(req)
        if name not in self.records:
            return problem(404, "no such dataset")
        if headers.get("x-api-key") != self.api_key:
            return problem(401, "missing or wrong API key")
        try:
            start, end = _instant(params["deliveryStartFrom"]), _instant(params["deliveryStartTo"])
            req.page_size = int(params.get("pageSize", "100"))
            # Cursors are "o<offset>", optionally with a "-suffix" a test uses to fake a new cursor.
            req.offset = int(params.get("cursor", "o0")[1:].split("-")[0])
        except (KeyError, ValueError):
            return problem(400, "bad query")
        if self.fault and (custom := self.fault(req)) is not None:
            return custom
        ds = DATASETS[name]
        key = ds.by_name[ds.window_field].json
        rows = [r for r in self.records[name] if start <= _instant(r[key]) < end]
        page = rows[req.offset : req.offset + req.page_size]
        more = req.offset + req.page_size < len(rows)
        env = {"data": page, "pagination": {"nextCursor": f"o{req.offset + req.page_size}" if more else None,
                                            "pageSize": req.page_size}, "meta": {"dataset": name}}
        out = self.edit(req, env) if self.edit else env
        body = out if isinstance(out, bytes) else orjson.dumps(out)
        return 200, {"Content-Type": "application/json"}, body


@contextmanager
def serve(records: dict[str, list[dict]], **kw):
    api = FakeApi(records, **kw)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - the stdlib's name
            parts = urlsplit(self.path)
            status, headers, body = api.answer(parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
