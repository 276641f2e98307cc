"""Render the HTML report from the report JSON. One self-contained page: inline CSS and SVG,
no scripts, no external assets, so it works offline and as an alert's link target.

Sample values come from an untrusted API, so autoescaping is on for every value, and the page's
Content-Security-Policy forbids scripts in case anything ever slips through.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2

from reconcilers.contract import MARKET_TZ
from reconcilers.result import ABSENT, FINDING_KINDS


# Chart geometry, in SVG user units (the SVG scales to the page width).
BAR_W = 11
GROUP_W = 30
PLOT_H = 160
LEFT = 64
TOP = 12
BOTTOM = 40


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        # From the package, not the file system: under spark-submit the code runs from a zip.
        loader=jinja2.PackageLoader("jobs", "templates"),
        # Explicitly on: select_autoescape would not match the ".html.j2" name.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["value"] = show_value
    env.filters["n"] = lambda v: f"{v:,}" if isinstance(v, int) else ("" if v is None else v)
    return env


def render_html(doc: dict[str, Any]) -> str:
    kinds = list(doc["totals"]["by_kind"])
    return _env().get_template("report.html.j2").render(
        r=doc,
        chart=hour_chart(doc["hourly"]),
        field_table=field_table(doc["counts"], kinds),
        samples=sample_groups(doc["samples"], kinds),
        meanings={k: doc.get("explanations", {}).get(k) or FINDING_KINDS.get(k, "") for k in kinds},
        absent=ABSENT,
    )


def show_value(v: Any) -> str:
    """JSON spelling, so that "" and null, "87.45" and 87.45 look different."""
    if v == ABSENT:
        return "(key absent)"
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def hour_chart(hourly: list[dict[str, Any]]) -> dict[str, Any]:
    """Bar geometry for the per-hour chart: two bars (store, API) per hour, gaps marked."""
    top = max([max(h["store"], h["api"]) for h in hourly] + [1])
    scale = PLOT_H / top
    hours = []
    for i, h in enumerate(hourly):
        x = LEFT + i * GROUP_W
        state = "short" if h["api"] < h["store"] else "extra" if h["api"] > h["store"] else "ok"
        hours.append(
            {
                **h,
                "state": state,
                "label": h["hour_utc"][11:13],
                # The date under the first bar and at each UTC midnight.
                "date_label": h["hour_utc"][5:10] if i == 0 or h["hour_utc"][11:13] == "00" else "",
                "local": _local_label(h["hour_utc"]),
                "x": x,
                "store_bar": _bar(x + 3, h["store"], scale),
                "api_bar": _bar(x + 4 + BAR_W, h["api"], scale),
            }
        )
    ticks = [{"y": TOP + PLOT_H - round(v * scale, 1), "label": f"{v:,}"} for v in sorted({0, top // 2, top})]
    return {
        "hours": hours,
        "ticks": ticks,
        "width": LEFT + max(len(hours), 1) * GROUP_W + 10,
        "height": TOP + PLOT_H + BOTTOM,
        "plot_top": TOP,
        "plot_h": PLOT_H,
        "base_y": TOP + PLOT_H,
        "left": LEFT,
        "group_w": GROUP_W,
        "short": [h for h in hours if h["state"] == "short"],
        "extra": [h for h in hours if h["state"] == "extra"],
    }


def _bar(x: int, value: int, scale: float) -> dict[str, float]:
    h = round(value * scale, 1)
    return {"x": x, "y": TOP + PLOT_H - h, "w": BAR_W, "h": h}


def _local_label(hour_utc: str) -> str:
    try:
        t = datetime.fromisoformat(hour_utc.replace("Z", "+00:00")).astimezone(MARKET_TZ)
    except ValueError:
        return ""
    # The offset tells the two 02:00 hours of the October DST day apart.
    return t.strftime("%H:%M %Z (UTC%z)")


def field_table(counts: dict[str, dict[str, int]], kinds: list[str]) -> dict[str, Any]:
    """Rows are fields (record-level first), columns are finding kinds."""
    fields: list[str] = []
    for k in kinds:
        for f in counts.get(k, {}):
            if f not in fields:
                fields.append(f)
    fields.sort(key=lambda f: f != "*")
    top = max([n for k in kinds for n in counts.get(k, {}).values()] + [1])
    rows = []
    for f in fields:
        cells = [counts.get(k, {}).get(f, 0) for k in kinds]
        rows.append(
            {
                "field": "(whole record)" if f == "*" else f,
                "cells": [{"n": n, "heat": round(0.12 + 0.6 * n / top, 2) if n else 0} for n in cells],
                "total": sum(cells),
            }
        )
    return {"kinds": kinds, "rows": rows}


def sample_groups(samples: list[dict[str, Any]], kinds: list[str]) -> list[dict[str, Any]]:
    """Samples grouped by kind. Field-level samples become rows of one table per kind (key,
    field, store, API); whole-record samples become one field-by-field comparison each."""
    order = {k: i for i, k in enumerate(kinds)}
    groups: dict[str, dict[str, list]] = {}
    for s in sorted(samples, key=lambda s: order.get(s["kind"], len(order))):
        g = groups.setdefault(s["kind"], {"fields": [], "records": []})
        store, api = s.get("store"), s.get("api")
        key = " · ".join(f"{k}={v}" for k, v in (s.get("key") or {}).items())
        if s.get("field") is not None or not (isinstance(store, dict) or isinstance(api, dict)):
            g["fields"].append({"key": key, "field": s.get("field") or "(record)", "side": s.get("side"),
                                "store": store, "api": api})
            continue
        item = {"key": key, "side": s.get("side"), "only": None}
        if isinstance(store, dict) and isinstance(api, dict):
            names = list(store) + [n for n in api if n not in store]
            item["rows"] = [
                {"field": n, "store": store.get(n, ABSENT), "api": api.get(n, ABSENT),
                 "differs": store.get(n, ABSENT) != api.get(n, ABSENT)}
                for n in names
            ]
        else:
            # A whole record on one side only (missing_in_api, unexpected_in_api): the other
            # side is said once, not repeated on every field's row.
            item["only"] = "store" if isinstance(store, dict) else "api"
            record, item["other"] = (store, api) if item["only"] == "store" else (api, store)
            item["rows"] = [{"field": n, "value": v} for n, v in record.items()]
        g["records"].append(item)
    return [{"kind": k, **v, "count": len(v["fields"]) + len(v["records"])} for k, v in groups.items()]
