"""The OpenAPI document, generated from the dataset contract; `python -m api_server.openapi`
rewrites the committed `api_server/openapi.json` (a test fails when they differ).

Record schemas come field by field from the contract: JSON name, type, format, nullability,
enums, decimal steps (`multipleOf` 0.01 for a 0.01 tick) and timestamp precision (a pattern
for whole seconds or milliseconds).
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import orjson

from api_server.auth import HEADER
from api_server.problems import PROBLEM_JSON
from api_server.query import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from reconcilers.contract import DATASETS, Dataset, Field

API_VERSION = "1.0"  # major.minor: a major bump breaks clients
DATA_RETENTION = "P5Y"  # REMIT record keeping: five years
PATH = Path(__file__).resolve().parent / "openapi.json"

_TS_PATTERNS = {
    "s": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
    "ms": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
}
_TS_WORDS = {"s": "whole seconds", "ms": "milliseconds"}


def _title(ds: Dataset) -> str:
    return ds.name[:-1].capitalize() if ds.name.endswith("s") else ds.name.capitalize()


def field_schema(f: Field) -> dict:
    """JSON Schema of one contract field as served."""
    if f.kind == "string":
        s: dict = {"type": "string"}
    elif f.kind == "int":
        s = {"type": "integer", "format": "int64"}
    elif f.kind == "decimal":
        step = Decimal(1).scaleb(-f.scale)
        bound = Decimal(10) ** (f.precision - f.scale) - step
        s = {"type": "number", "multipleOf": float(step), "minimum": float(-bound), "maximum": float(bound)}
    elif f.kind == "bool":
        s = {"type": "boolean"}
    elif f.kind == "timestamp":
        s = {"type": "string", "format": "date-time", "pattern": _TS_PATTERNS[f.unit]}
    elif f.kind == "date":
        s = {"type": "string", "format": "date"}
    else:
        raise ValueError(f"{f.name}: no schema for kind {f.kind!r}")
    if f.enum:
        s["enum"] = list(f.enum)
    notes = [f.description] if f.description else []
    if f.kind == "decimal":
        notes.append(f"exact decimal with {f.scale} decimals, written as a JSON number")
    if f.kind == "timestamp":
        notes.append(f"UTC instant, {_TS_WORDS[f.unit]}")
    if f.nullable:
        s["type"] = [s["type"], "null"]
        if "enum" in s:
            s["enum"].append(None)
        notes.append("null when not applicable (sent as an explicit null, never left out)")
    if notes:
        s["description"] = "; ".join(notes)
    return s


def record_schema(ds: Dataset) -> dict:
    return {
        "type": "object",
        "description": ds.description,
        "properties": {f.json: field_schema(f) for f in ds.fields},
        "required": [f.json for f in ds.fields],
        "additionalProperties": False,
    }


def _problem_response(description: str, headers: dict | None = None) -> dict:
    return {
        "description": description,
        "headers": {"Cache-Control": {"$ref": "#/components/headers/NoStore"}, **(headers or {})},
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _param(name: str) -> dict:
    return {"$ref": f"#/components/parameters/{name}"}


def _operation(ds: Dataset) -> dict:
    title = _title(ds)
    return {
        "operationId": f"list{ds.name.capitalize()}",
        "summary": f"{ds.name.capitalize()} of a delivery day or delivery-time window",
        "description": (
            f"{ds.description} Filtered by `deliveryDay` (a Europe/Amsterdam day: 23, 24 or 25 hours) or by "
            f"a window `[deliveryStartFrom, deliveryStartTo)` on `deliveryStart` within one delivery day. "
            f"Paged by an opaque cursor over the key ({', '.join(ds.by_name[k].json for k in ds.key)}), so pages "
            "never shift or repeat while data changes; follow `nextCursor` until it is null."
        ),
        "tags": ["market-data"],
        "x-regulatory": True,
        "x-data-retention": DATA_RETENTION,
        "parameters": [_param(p) for p in ("DeliveryDay", "DeliveryStartFrom", "DeliveryStartTo", "PageSize", "Cursor")],
        "responses": {
            "200": {
                "description": f"One page of {ds.name}; `data` is empty and `nextCursor` null for an empty window.",
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{title}Page"}}},
            },
            "400": _problem_response("Invalid query, page size above the maximum, or a bad cursor."),
            "401": _problem_response("No API key sent.", {"WWW-Authenticate": {"schema": {"type": "string"}}}),
            "403": _problem_response("The API key is not valid."),
            "429": _problem_response("Rate limited; retry after `Retry-After` seconds.",
                                     {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}),
            "503": _problem_response("Temporarily unavailable; retry later.",
                                     {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}),
        },
    }


def _page_schema(ds: Dataset) -> dict:
    return {
        "type": "object",
        "required": ["data", "pagination", "meta"],
        "additionalProperties": False,
        "properties": {
            "data": {"type": "array", "items": {"$ref": f"#/components/schemas/{_title(ds)}"}},
            "pagination": {"$ref": "#/components/schemas/Pagination"},
            "meta": {"$ref": "#/components/schemas/Meta"},
        },
    }


def build() -> dict:
    instant = {"type": "string", "format": "date-time"}
    schemas: dict = {}
    for ds in DATASETS.values():
        schemas[_title(ds)] = record_schema(ds)
        schemas[f"{_title(ds)}Page"] = _page_schema(ds)
    schemas["Pagination"] = {
        "type": "object",
        "required": ["nextCursor", "pageSize"],
        "additionalProperties": False,
        "properties": {
            "nextCursor": {"type": ["string", "null"], "description": "Opaque; null on the last page."},
            "pageSize": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
        },
    }
    schemas["Meta"] = {
        "type": "object",
        "required": ["dataset", "asOf", "deliveryStartFrom", "deliveryStartTo"],
        "additionalProperties": False,
        "properties": {
            "dataset": {"type": "string", "enum": list(DATASETS)},
            "asOf": {**instant, "description": "When the served snapshot of the day was read."},
            "deliveryStartFrom": {**instant, "description": "Window start (inclusive), UTC."},
            "deliveryStartTo": {**instant, "description": "Window end (exclusive), UTC."},
        },
    }
    schemas["Problem"] = {
        "type": "object",
        "description": "RFC 7807 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "maxPageSize": {"type": "integer", "description": "The page size limit, on a page-size problem."},
        },
    }
    health_op = {
        "operationId": "health",
        "summary": "Liveness",
        "description": "Answers while the server runs; needs no API key.",
        "tags": ["operations"],
        "x-regulatory": True,
        "x-data-retention": DATA_RETENTION,
        "security": [],
        "responses": {
            "200": {
                "description": "The server is up.",
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}},
                }}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trade-recon bundled market-data API",
            "version": API_VERSION,
            "description": "Intraday power trades and order events as served to the public, generated from the "
            "trade-recon dataset contract. Times are UTC instants; delivery days are Europe/Amsterdam days.",
            "contact": {"name": "trade-recon maintainers"},
            "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
        },
        "servers": [{"url": "http://127.0.0.1:8765", "description": "bundled API on loopback (default port)"}],
        "security": [{"ApiKey": []}],
        "tags": [
            {"name": "market-data", "description": "Trades and order events by delivery day or window."},
            {"name": "operations", "description": "Health of the service."},
        ],
        "paths": {
            **{f"/v1/{ds.path}": {"get": _operation(ds)} for ds in DATASETS.values()},
            "/healthz": {"get": health_op},
        },
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": HEADER}},
            "parameters": {
                "DeliveryDay": {"name": "deliveryDay", "in": "query", "description":
                                "Europe/Amsterdam delivery day; excludes the window parameters.",
                                "schema": {"type": "string", "format": "date"}, "example": "2026-10-25"},
                "DeliveryStartFrom": {"name": "deliveryStartFrom", "in": "query", "description":
                                      "Window start on deliveryStart (inclusive), an instant with offset.",
                                      "schema": instant},
                "DeliveryStartTo": {"name": "deliveryStartTo", "in": "query", "description":
                                    "Window end on deliveryStart (exclusive), within the same delivery day.",
                                    "schema": instant},
                "PageSize": {"name": "pageSize", "in": "query", "description":
                             f"Records per page; more than {MAX_PAGE_SIZE} is refused, never capped.",
                             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE,
                                        "default": DEFAULT_PAGE_SIZE}, "example": MAX_PAGE_SIZE},
                "Cursor": {"name": "cursor", "in": "query", "description":
                           "The previous page's nextCursor; leave out for the first page.",
                           "schema": {"type": "string", "minLength": 1}},
            },
            "headers": {
                "NoStore": {"description": "Errors are never cached.", "schema": {"type": "string", "enum": ["no-store"]}},
                "RetryAfter": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}},
            },
            "schemas": schemas,
        },
    }


def render(doc: dict | None = None) -> bytes:
    return orjson.dumps(doc or build(), option=orjson.OPT_INDENT_2) + b"\n"


def write(path: Path | None = None) -> Path:
    path = path or PATH
    path.write_bytes(render())
    return path


def main(argv: list[str] | None = None) -> int:
    print(f"wrote {write()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
