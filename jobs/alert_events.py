"""What PagerDuty is told about one reconciliation run: dedup keys, severity, the events.

Pure functions: a `DatasetResult` in, a list of Events API v2 event bodies out (without the
routing key, which the client adds when it sends). Nothing here does I/O.

Incident keys (one incident per key at a time):
- `trade-recon/<env>/<dataset>/<day>`             the data: findings trigger it, a clean run resolves it
- `trade-recon/<env>/<dataset>/<day>/run-failure` the run could not complete; any completed run resolves it
- `trade-recon/<env>/<dataset>/config`            the dataset's configuration is unusable; any run that got
                                                   past configuration resolves it
Separate keys keep a failed run from ever resolving (or merging into) a data incident.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import datetime, timezone
from typing import Any

from jobs.config import Alerts
from reconcilers.result import FINDING_KINDS, DatasetResult, Outcome

SUMMARY_LIMIT = 1024  # characters, enforced by PagerDuty
EVENT_LIMIT = 512 * 1024  # bytes of the whole request body, enforced by PagerDuty
# The client adds `"routing_key": "<32 chars>"` to the body after we measure it.
_ROUTING_KEY_ALLOWANCE = 64
ELLIPSIS = "..."

# Detail levels, tried in order until the event fits: (samples, top fields, expectations, string cap,
# items per list or mapping). The first one holds in practice; the rest keep a pathological result
# (huge keys, thousands of fields) from ever costing the alert.
_LEVELS = [
    (10, 25, 10, 4000, 50),
    (5, 10, 5, 500, 20),
    (3, 5, 3, 120, 10),
    (1, 3, 1, 60, 5),
    (0, 0, 0, 60, 5),
]


def prefix(env: str, dataset: str) -> str:
    return f"trade-recon/{env}/{dataset}"


def data_key(env: str, dataset: str, day: str) -> str:
    return f"{prefix(env, dataset)}/{day}"


def run_failure_key(env: str, dataset: str, day: str) -> str:
    return f"{data_key(env, dataset, day)}/run-failure"


def config_key(env: str, dataset: str) -> str:
    return f"{prefix(env, dataset)}/config"


def effective_outcome(result: DatasetResult) -> Outcome:
    """The outcome the result's own contents imply, as the exit code does, without changing `result`."""
    return replace(result).decide()


def is_expectations_only(result: DatasetResult) -> bool:
    return result.data_findings == 0 and (result.expectation_failures > 0 or result.total("expectation_failed") > 0)


def severity(alerts: Alerts, result: DatasetResult) -> str | None:
    """The trigger severity for the result, or None when the run triggers nothing (clean, locked)."""
    outcome = effective_outcome(result)
    if outcome is Outcome.FINDINGS:
        return alerts.severities.expectations_only if is_expectations_only(result) else alerts.severities.findings
    if outcome in (Outcome.INCOMPLETE, Outcome.CONFIG):
        return alerts.severities.incomplete
    return None


def plan(alerts: Alerts, result: DatasetResult, report_link: str | None, now: datetime | None = None) -> list[dict]:
    """The events one run sends, in the order they must arrive.

    A locked run sends nothing: the run holding the lock alerts for that dataset and day.
    """
    outcome = effective_outcome(result)
    env, ds, day = result.env, result.dataset, str(result.day)
    sev = severity(alerts, result)
    data, failure, config = data_key(env, ds, day), run_failure_key(env, ds, day), config_key(env, ds)
    if outcome is Outcome.LOCKED:
        return []
    if outcome is Outcome.CONFIG:
        return [_trigger(alerts, result, config, sev, _config_summary(result), "configuration", report_link, now)]
    if outcome is Outcome.INCOMPLETE:
        return [
            _trigger(alerts, result, failure, sev, _failure_summary(result), "run-failure", report_link, now),
            _resolve(config),
        ]
    first = (
        _trigger(alerts, result, data, sev, _findings_summary(result), "data-reconciliation", report_link, now)
        if outcome is Outcome.FINDINGS
        else _resolve(data)
    )
    return [first, _resolve(failure), _resolve(config)]


def _resolve(key: str) -> dict:
    return {"event_action": "resolve", "dedup_key": key}


def _trigger(alerts: Alerts, result: DatasetResult, key: str, sev: str, summary: str, klass: str,
             report_link: str | None, now: datetime | None) -> dict:
    stamp = result.finished_at or (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    event: dict[str, Any] = {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": clip_text(summary, SUMMARY_LIMIT),
            "source": alerts.source,
            "severity": sev,
            "timestamp": stamp,
            "component": result.dataset,
            "group": result.env,
            "class": klass,
        },
    }
    if report_link:
        event["links"] = [{"href": report_link, "text": "reconciliation report"}]
    return fit(event, result, report_link)


def _where(result: DatasetResult) -> str:
    return f"{result.dataset} {result.day} ({result.env})"


def _kinds_in_order(result: DatasetResult) -> list[str]:
    known = [k for k in FINDING_KINDS if result.total(k)]
    return known + sorted(k for k in result.counts if k not in FINDING_KINDS and result.total(k))


def _findings_summary(result: DatasetResult) -> str:
    rows = f"store {result.store_rows:,} rows, API {result.api_rows:,}"
    if is_expectations_only(result):
        failed = [e for e in result.expectations if not e.success]
        n = len(failed) or result.total("expectation_failed")
        names = ", ".join(
            f"{e.expectation}({e.column}) on {e.side}" if e.column else f"{e.expectation} on {e.side}" for e in failed
        )
        return f"{_where(result)}: {n:,} data-quality expectations failed, store and API agree; {rows}" + (
            f": {names}" if names else ""
        )
    kinds = ", ".join(f"{k} {result.total(k):,}" for k in _kinds_in_order(result) if k != "expectation_failed")
    text = f"{_where(result)}: {result.data_findings:,} findings ({kinds}); {rows}"
    if result.expectation_failures:
        text += f"; {result.expectation_failures:,} expectations failed"
    return text


def _failure_summary(result: DatasetResult) -> str:
    return f"reconciliation could not complete: {_where(result)}: {result.error or 'no reason recorded'}"


def _config_summary(result: DatasetResult) -> str:
    return f"reconciliation configuration error: {result.dataset} ({result.env}): {result.error or 'no reason recorded'}"


def clip_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def clip(value: Any, cap: int, items: int) -> Any:
    """A JSON-safe copy of `value` with long strings cut and long lists and mappings shortened."""
    if isinstance(value, str):
        return clip_text(value, cap)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, dict):
        kept = list(value.items())[:items]
        out = {clip_text(str(k), cap): clip(v, cap, items) for k, v in kept}
        if len(value) > items:
            out[ELLIPSIS] = f"{len(value) - items:,} more"
        return out
    if isinstance(value, (list, tuple)):
        out = [clip(v, cap, items) for v in list(value)[:items]]
        if len(value) > items:
            out.append(f"{ELLIPSIS} {len(value) - items:,} more")
        return out
    return clip_text(str(value), cap)


def _top_fields(result: DatasetResult, n: int) -> list[dict]:
    rows = [
        {"kind": kind, "field": fld, "count": count}
        for kind, fields in result.counts.items()
        for fld, count in fields.items()
        if count
    ]
    rows.sort(key=lambda r: (-r["count"], r["kind"], r["field"]))
    return rows[:n]


def _samples(result: DatasetResult, n: int) -> list[dict]:
    """Up to n samples, taken round-robin across kinds so one noisy kind does not hide the others."""
    by_kind: dict[str, list] = {}
    for s in result.samples:
        by_kind.setdefault(s.kind, []).append(s)
    counted = [k for k in _kinds_in_order(result) if k in by_kind]
    order = counted + [k for k in by_kind if k not in counted]
    picked: list = []
    depth = 0
    while len(picked) < n and any(depth < len(by_kind[k]) for k in order):
        picked += [by_kind[k][depth] for k in order if depth < len(by_kind[k])][: n - len(picked)]
        depth += 1
    # store/api stay even when null: an explicit null is what value_nulled is about.
    return [
        {"kind": s.kind, **({"field": s.field} if s.field else {}), **({"side": s.side} if s.side else {}),
         "key": s.key, "store": s.store, "api": s.api}
        for s in picked
    ]


def details(result: DatasetResult, report_link: str | None, level: int) -> dict:
    n_samples, n_fields, n_expect, cap, items = _LEVELS[level]
    failed = [e for e in result.expectations if not e.success]
    d: dict[str, Any] = {
        "env": result.env,
        "dataset": result.dataset,
        "day": str(result.day),
        "run_id": result.run_id,
        "verdict": effective_outcome(result).verdict,
        "store_rows": result.store_rows,
        "api_rows": result.api_rows,
        "findings_total": result.data_findings,
        "counts_by_kind": {k: result.total(k) for k in _kinds_in_order(result)},
        "top_fields": _top_fields(result, n_fields),
        "expectations_failed": len(failed),
        "failed_expectations": [
            {"side": e.side, "expectation": e.expectation, "column": e.column,
             "unexpected_count": e.unexpected_count, "observed": e.observed}
            for e in failed[:n_expect]
        ],
        "samples": _samples(result, n_samples),
        "api_stats": asdict(result.api_stats),
    }
    if result.error:
        d["error"] = result.error
    if report_link:
        d["report"] = report_link
    if level:
        d["details_shrunk"] = f"level {level}: fewer samples and fields, shorter strings; the report has all"
    return {k: clip(v, cap, items) for k, v in d.items()}


def _minimal_details(result: DatasetResult) -> dict:
    return {
        "run_id": clip_text(str(result.run_id), 200),
        "findings_total": result.data_findings,
        "details_shrunk": "too large for PagerDuty even when shrunk; see the report",
    }


def event_bytes(event: dict) -> int:
    """Upper bound of the body the client sends: ASCII-escaped with spaces is never shorter than
    the compact UTF-8 JSON it actually writes."""
    return len(json.dumps(event, ensure_ascii=True)) + _ROUTING_KEY_ALLOWANCE


def fit(event: dict, result: DatasetResult, report_link: str | None) -> dict:
    """Attach the most detailed custom_details that keep the event under PagerDuty's size limit."""
    for level in range(len(_LEVELS)):
        event["payload"]["custom_details"] = details(result, report_link, level)
        if event_bytes(event) <= EVENT_LIMIT:
            return event
    event["payload"]["custom_details"] = _minimal_details(result)
    if event_bytes(event) > EVENT_LIMIT:
        # Only an absurd report link can get here; the incident matters more than the link.
        event.pop("links", None)
    return event
