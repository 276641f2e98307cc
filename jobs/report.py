"""The run report: a versioned JSON record per run, and the HTML page rendered from it.

Layout: `<report.dir>/<env>/<dataset>/<day>/<run-id>/report.json|report.html`, plus a `latest`
symlink per dataset and day. A run's directory is assembled in a hidden staging directory and
renamed into place in one step, so a reader (or the `latest` pointer) never sees half a report,
and a re-run never replaces an earlier run's report.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import socket
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jobs.config import Config
from jobs.files import FILE_MODE, atomic_write, fsync_dir
from reconcilers.result import FINDING_KINDS, DatasetResult

SCHEMA_VERSION = 1
JSON_NAME = "report.json"
HTML_NAME = "report.html"
LATEST = "latest"
STAGING_PREFIX = ".staging-"
# A staging directory this old belongs to a writer that died (a report is written in
# milliseconds), so the next writer removes it.
STALE_STAGING_S = 3600
# Sample values come from an untrusted API; one huge value must not bloat the report.
MAX_VALUE_CHARS = 2000
RECORD_LEVEL = "*"

DIR_MODE = 0o750

_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ReportError(Exception):
    """A report cannot be written or read."""


@dataclass(frozen=True)
class ReportPaths:
    dir: Path
    json: Path
    html: Path


# ---------------------------------------------------------------- the JSON document


def core_fields(result: DatasetResult) -> dict[str, Any]:
    """What the verdict, the summary line and the console need; the report adds the detail."""
    by_kind = {k: result.total(k) for k in _kinds_in_order(result.counts)}
    hourly = sorted(result.hourly, key=lambda h: h.hour_utc)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "run_id": result.run_id,
        "env": result.env,
        "dataset": result.dataset,
        "day": result.day,
        "verdict": result.verdict,
        "exit_code": int(result.outcome),
        "error": result.error,
        "rows": {"store": result.store_rows, "api": result.api_rows},
        "totals": {
            "findings": result.data_findings,
            "expectations_failed": result.expectation_failures,
            "by_kind": by_kind,
            "hours_with_gaps": sum(1 for h in hourly if h.api < h.store),
        },
        "counts": {k: dict(sorted(result.counts[k].items(), key=_field_order(result.dataset))) for k in by_kind},
        "hourly": [{"hour_utc": h.hour_utc, "store": h.store, "api": h.api, "gap": h.store - h.api} for h in hourly],
        "expectations": [asdict(e) for e in result.expectations],
        "api_stats": asdict(result.api_stats),
    }
    doc["summary"] = summary_line(doc)
    return _jsonable(doc)


def build_report(result: DatasetResult, cfg: Config) -> dict[str, Any]:
    """The report document (schema version 1). Pure: nothing is written."""
    doc = core_fields(result)
    doc.update({
        "explanations": {k: FINDING_KINDS[k] for k in doc["totals"]["by_kind"] if k in FINDING_KINDS},
        "samples": _capped_samples(result, cfg.report.samples_per_kind_field),
        "samples_cap": cfg.report.samples_per_kind_field,
        "timings_s": {k: round(float(v), 3) for k, v in result.timings_s.items()},
        "run": {
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "written_at": _utc_now(),
            "config_hash": cfg.fingerprint(),
            "versions": versions(),
            "host": socket.gethostname(),
            "metadata": result.metadata,
        },
    })
    return _jsonable(doc)


def summary_line(doc: dict[str, Any]) -> str:
    """One plain sentence under the verdict: the first thing the on-call engineer reads."""
    verdict = doc["verdict"]
    if verdict == "clean":
        return f"all {doc['rows']['store']:,} store rows served complete and unaltered"
    if verdict != "findings":
        return f"the job could not complete (not a data verdict): {doc.get('error') or verdict}"
    parts = []
    findings = doc["totals"]["findings"]
    if findings:
        # Largest first: the headline answers "how bad, and mostly what".
        ranked = sorted(((n, k) for k, n in doc["totals"]["by_kind"].items() if n and k != "expectation_failed"),
                        key=lambda nk: -nk[0])
        kinds = ", ".join(f"{k} {n:,}" for n, k in ranked)
        parts.append(f"{findings:,} finding{'s' * (findings != 1)} ({kinds})")
    failed = doc["totals"]["expectations_failed"]
    if failed:
        parts.append(f"{failed} failed expectation{'s' * (failed != 1)}")
    return "; ".join(parts) or "findings"


def _kinds_in_order(counts: dict[str, dict[str, int]]) -> list[str]:
    known = [k for k in FINDING_KINDS if k in counts]
    return known + sorted(k for k in counts if k not in FINDING_KINDS)


def _field_order(dataset: str):
    """Sort key: record-level first, then contract order, then anything unknown by name."""
    from reconcilers.contract import DATASETS  # pyarrow: imported only when a report is built

    names = DATASETS[dataset].names if dataset in DATASETS else []

    def key(item: tuple[str, int]):
        name = item[0]
        if name == RECORD_LEVEL:
            return (0, 0, "")
        return (1, names.index(name), "") if name in names else (2, 0, name)

    return key


def _capped_samples(result: DatasetResult, cap: int) -> list[dict[str, Any]]:
    taken: dict[tuple[str, str | None], int] = defaultdict(int)
    out = []
    for s in result.samples:
        slot = (s.kind, s.field)
        if taken[slot] >= cap:
            continue
        taken[slot] += 1
        out.append(asdict(s))
    return out


def _jsonable(v: Any) -> Any:
    """Plain JSON: exact decimals as strings, instants as ISO text, long strings cut."""
    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, str):
        if len(v) > MAX_VALUE_CHARS:
            return v[:MAX_VALUE_CHARS] + f"... ({len(v) - MAX_VALUE_CHARS:,} more characters)"
        return v
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x) for x in v]
    if isinstance(v, bytes):
        return _jsonable(v.decode("utf-8", "backslashreplace"))
    return _jsonable(str(v))


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("trade-recon", "pyspark", "great-expectations"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- writing


def write_report(result: DatasetResult, cfg: Config) -> ReportPaths:
    """Write report.json and report.html for one run and point `latest` at it."""
    from jobs.report_html import render_html

    if result.env != cfg.env:
        raise ReportError(f"result of env {result.env!r} cannot be filed under env {cfg.env!r}")
    day_dir = day_dir_of(cfg, result.dataset, result.day)
    run_id = _part("run id", result.run_id)
    doc = build_report(result, cfg)
    blob = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False).encode()
    # Rendered from the serialized JSON, not from the result: the page shows exactly the record.
    html = render_html(json.loads(blob)).encode()

    make_dirs(day_dir)
    _sweep_stale_staging(day_dir)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{run_id}-", dir=day_dir))
    try:
        os.chmod(staging, DIR_MODE)
        atomic_write(staging / JSON_NAME, blob)
        atomic_write(staging / HTML_NAME, html)
        run_dir = _publish(staging, day_dir, run_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _point_latest(day_dir, run_dir.name)
    return ReportPaths(dir=run_dir, json=run_dir / JSON_NAME, html=run_dir / HTML_NAME)


def _publish(staging: Path, day_dir: Path, run_id: str) -> Path:
    """Rename the finished staging directory to the run's name. rename(2) refuses to replace a
    non-empty directory, so an earlier report under the same run id is never overwritten: the
    later one gets a suffix instead."""
    for n in range(1, 1000):
        target = day_dir / (run_id if n == 1 else f"{run_id}.{n}")
        if target.exists() or target.is_symlink():
            continue
        try:
            os.rename(staging, target)
        except OSError as e:
            if target.exists():
                continue  # lost a race to another writer of the same run id
            raise ReportError(f"cannot publish report in {day_dir}: {e.strerror}") from None
        fsync_dir(day_dir)
        return target
    raise ReportError(f"too many reports named {run_id!r} in {day_dir}")


def _point_latest(day_dir: Path, name: str) -> None:
    tmp = day_dir / f".{LATEST}.{os.getpid()}.{time.monotonic_ns()}"
    os.symlink(name, tmp)
    try:
        os.replace(tmp, day_dir / LATEST)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_dir(day_dir)


def _sweep_stale_staging(day_dir: Path) -> None:
    cutoff = time.time() - STALE_STAGING_S
    for p in day_dir.glob(f"{STAGING_PREFIX}*"):
        try:
            if p.is_dir() and p.stat().st_mtime < cutoff:
                shutil.rmtree(p, ignore_errors=True)
        except FileNotFoundError:
            pass


def make_dirs(path: Path) -> None:
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass


# ---------------------------------------------------------------- finding and reading


def root_dir(cfg: Config) -> Path:
    return cfg.resolve(cfg.report.dir)


def env_dir(cfg: Config) -> Path:
    return root_dir(cfg) / _part("env", cfg.env)


def day_dir_of(cfg: Config, dataset: str, day: str | date) -> Path:
    day_s = day.isoformat() if isinstance(day, date) else str(day)
    try:
        date.fromisoformat(day_s)
    except ValueError:
        raise ReportError(f"day {day_s!r} is not a calendar date (YYYY-MM-DD)") from None
    return env_dir(cfg) / _part("dataset", dataset) / day_s


def latest_report(cfg: Config, dataset: str, day: str | date) -> Path | None:
    """The report.json of the most recent run for this dataset and day, or None."""
    link = day_dir_of(cfg, dataset, day) / LATEST
    try:
        target = link.parent / os.readlink(link)
    except OSError:  # no pointer yet
        return None
    path = target / JSON_NAME
    return path if path.is_file() else None


def load_report(path: Path | str) -> dict[str, Any]:
    """Read a report.json (or the run directory holding one) and check its schema version."""
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"no report at {path}") from None
    except OSError as e:
        raise ReportError(f"cannot read report {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"report {path} is not valid JSON (line {e.lineno})") from None
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version != SCHEMA_VERSION:
        raise ReportError(f"report {path} has schema_version {version!r}; this trade-recon reads {SCHEMA_VERSION}")
    return doc


def report_url(cfg: Config, path: Path) -> str:
    """A link to a report file: under `report.link_base_url` when set, else a file:// URI."""
    path = Path(path).resolve()
    base = cfg.report.link_base_url
    root = root_dir(cfg).resolve()
    if not base or not path.is_relative_to(root):
        return path.as_uri()
    return base.rstrip("/") + "/" + quote(path.relative_to(root).as_posix())


def _part(what: str, value: str) -> str:
    """Names that become path components: no separators, no '..', no hidden names."""
    if not isinstance(value, str) or not _SAFE_PART.match(value) or value == LATEST:
        raise ReportError(f"{what} {value!r} cannot be used in a report path (letters, digits, . _ - only)")
    return value
