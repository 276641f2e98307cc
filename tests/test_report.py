"""The JSON + HTML report: content, atomic and non-overwriting writes, the latest pointer,
permissions, escaping of hostile API values."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from jobs.config import load_config
from jobs.report import (
    JSON_NAME,
    LATEST,
    STAGING_PREFIX,
    ReportError,
    build_report,
    latest_report,
    load_report,
    report_url,
    write_report,
)
from reconcilers.result import Sample
from report_samples import DAY, HOSTILE, clean_result, findings_result, incomplete_result

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-live-DO-NOT-LEAK-42"


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADE_RECON_API_KEY", SECRET)
    return load_config(environ={"TRADE_RECON__ENV": "test", "TRADE_RECON__REPORT__DIR": str(tmp_path / "reports")})


def visible(day_dir: Path) -> list[str]:
    return sorted(p.name for p in day_dir.iterdir() if not p.name.startswith("."))


def test_json_report_holds_the_verdict_counts_hours_samples_and_run_metadata(cfg):
    paths = write_report(findings_result(), cfg)
    doc = load_report(paths.json)
    assert paths.dir == cfg.report.dir / "test" / "trades" / DAY / "20261026T030000Z-a1b2"
    assert doc["schema_version"] == 1
    assert (doc["verdict"], doc["exit_code"], doc["error"]) == ("findings", 1, None)
    assert doc["rows"] == {"store": 12026, "api": 11586}
    assert doc["totals"]["findings"] == 1643 and doc["totals"]["expectations_failed"] == 1
    # Severity order from FINDING_KINDS, record-level first then contract order within a kind.
    assert list(doc["totals"]["by_kind"]) == ["missing_in_api", "value_mismatch", "null_dropped", "expectation_failed"]
    assert list(doc["counts"]["null_dropped"]) == ["buy_order_id", "aggressor_side", "trader_id"]
    assert list(doc["counts"]["value_mismatch"]) == ["execution_time", "price"]
    assert doc["summary"] == "1,643 findings (null_dropped 1,200, missing_in_api 440, value_mismatch 3); 1 failed expectation"
    assert doc["explanations"]["null_dropped"].startswith("The store value is null and the API omitted the key")
    assert len(doc["hourly"]) == 25  # the October DST day
    assert doc["hourly"][3] == {"hour_utc": "2026-10-25T01:00:00Z", "store": 437, "api": 0, "gap": 437}
    assert doc["totals"]["hours_with_gaps"] == 2
    price = next(s for s in doc["samples"] if s["field"] == "price")
    assert (price["store"], price["api"], price["key"]) == ("87.45", "87.46", {"trade_id": "T-8", "revision_no": 1})
    assert [e["success"] for e in doc["expectations"]] == [True, False]
    assert doc["api_stats"] == {"windows": 25, "windows_failed": 0, "pages": 180, "records": 11586, "retries": 4,
                                "bytes": 9_812_345}
    assert doc["timings_s"]["api_read"] == 41.7
    run = doc["run"]
    assert run["config_hash"] == cfg.fingerprint() and len(run["config_hash"]) == 16
    assert run["versions"]["pyspark"] == "4.1.4" and run["versions"]["great-expectations"] == "1.24.1"
    assert run["versions"]["python"].startswith("3.") and run["versions"]["trade-recon"] != "not installed"
    assert (run["started_at"], run["finished_at"]) == ("2026-10-26T03:00:00Z", "2026-10-26T03:01:02Z")


def test_no_secret_value_reaches_the_report(cfg):
    paths = write_report(findings_result(), cfg)
    for p in (paths.json, paths.html):
        text = p.read_text()
        assert SECRET not in text
    # The config names where the key lives; that reference is what the hash covers.
    assert "TRADE_RECON_API_KEY" in json.dumps(cfg.model_dump(mode="json"))


def test_samples_are_capped_per_kind_and_field_and_huge_values_cut(tmp_path):
    cfg = load_config(environ={"TRADE_RECON__ENV": "test", "TRADE_RECON__REPORT__SAMPLES_PER_KIND_FIELD": "2",
                               "TRADE_RECON__REPORT__DIR": str(tmp_path)})
    r = findings_result()
    r.samples = [Sample("value_mismatch", "price", {"trade_id": f"T-{i}", "revision_no": 1}, store="1.00", api="1.01")
                 for i in range(5)]
    r.samples.append(Sample("value_mismatch", "text", {"trade_id": "T-big", "revision_no": 1}, store="a", api="x" * 50_000))
    doc = build_report(r, cfg)
    assert [s["key"]["trade_id"] for s in doc["samples"] if s["field"] == "price"] == ["T-0", "T-1"]
    big = next(s for s in doc["samples"] if s["field"] == "text")["api"]
    assert big.startswith("x" * 2000) and big.endswith("(48,000 more characters)")
    assert doc["samples_cap"] == 2


def test_incomplete_run_says_it_is_not_a_data_verdict(cfg):
    paths = write_report(incomplete_result(), cfg)
    doc = load_report(paths.dir)  # a run directory works as well as the file
    assert (doc["verdict"], doc["exit_code"]) == ("incomplete", 2)
    assert doc["error"].startswith("API window 2026-10-25T01:00Z..02:00Z failed after 6 attempts")
    html = paths.html.read_text()
    assert "The job could not complete — this is not a data verdict." in html
    assert "HTTP 503 Service Unavailable" in html
    assert "1 of 25 windows could not be read" in html
    assert "store rows not counted: the run stopped before the comparison" in html and "rows in the store" not in html
    # No data sections pretend to a verdict for an incomplete run.
    assert 'id="kinds"' not in html and 'id="hour-chart"' not in html


def test_clean_run(cfg):
    paths = write_report(clean_result(), cfg)
    doc = load_report(paths.json)
    assert (doc["verdict"], doc["exit_code"], doc["totals"]["findings"]) == ("clean", 0, 0)
    assert doc["summary"] == "all 12,026 store rows served complete and unaltered"
    html = paths.html.read_text()
    assert "not a data verdict" not in html and "Every hour has as many API records as store records." in html


def test_html_escapes_hostile_sample_values(cfg):
    r = findings_result()
    r.error = None
    r.metadata["note"] = HOSTILE
    r.samples.append(Sample("value_mismatch", "text", {"trade_id": "<b>T-1</b>", "revision_no": 1}, store="ok", api=HOSTILE))
    html = write_report(r, cfg).html.read_text()
    assert "<script>" not in html and "<img" not in html and "<b>T-1</b>" not in html
    assert "&lt;script&gt;document.title=" in html
    assert "onerror=" in html and "&lt;img src=x onerror=" in html  # shown as text, not as an element
    assert "default-src 'none'" in html  # CSP: no script would run even if escaping failed


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.css = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if self.tags and self.tags[-1][0] == "style":
            self.css += data


def test_html_is_self_contained(cfg):
    r = findings_result()
    r.samples.append(Sample("value_mismatch", "text", {"trade_id": "T-2", "revision_no": 1}, store="a", api=HOSTILE))
    parser = _Tags()
    parser.feed(write_report(r, cfg).html.read_text())
    names = {t for t, _ in parser.tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed"}
    assert {"svg", "rect", "table", "style"} <= names
    loading = [(t, a) for t, a in parser.tags if {"src", "href", "xlink:href"} & set(a)]
    assert loading == []
    assert "url(" not in parser.css and "@import" not in parser.css
    assert all("url(" not in a.get("style", "") for _, a in parser.tags)


def test_rerun_never_overwrites_and_latest_points_at_the_newest(cfg):
    first = write_report(findings_result(run_id="r1"), cfg)
    first_bytes = first.json.read_bytes()
    second = write_report(clean_result(run_id="r2"), cfg)
    # The same run id again (a retried job): a new directory, the first untouched.
    third = write_report(clean_result(run_id="r1"), cfg)
    assert third.dir.name == "r1.2" and first.json.read_bytes() == first_bytes
    assert visible(first.dir.parent) == [LATEST, "r1", "r1.2", "r2"]
    assert load_report(second.json)["verdict"] == "clean"
    link = first.dir.parent / LATEST
    assert os.readlink(link) == "r1.2"  # relative: the tree can be moved or served as is
    assert latest_report(cfg, "trades", DAY) == third.json
    assert load_report(latest_report(cfg, "trades", DAY))["run_id"] == "r1"
    assert latest_report(cfg, "orders", DAY) is None
    assert latest_report(cfg, "trades", "2026-10-26") is None


def test_failed_write_leaves_the_previous_report_and_no_partial_file(cfg, monkeypatch):
    prev = write_report(findings_result(run_id="r1"), cfg)
    prev_bytes = prev.json.read_bytes()
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(Path(dst).name)
        if Path(dst).name == "report.html":
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        write_report(clean_result(run_id="r2"), cfg)
    monkeypatch.setattr(os, "replace", real_replace)
    assert calls == ["report.json", "report.html"]
    day_dir = prev.dir.parent
    assert visible(day_dir) == [LATEST, "r1"]
    assert [p.name for p in day_dir.iterdir() if p.name.startswith(".")] == []  # staging removed
    assert prev.json.read_bytes() == prev_bytes
    assert latest_report(cfg, "trades", DAY) == prev.json


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from jobs.config import load_config
    from jobs.report import write_report
    from report_samples import clean_result
    cfg = load_config(environ={{"TRADE_RECON__ENV": "test", "TRADE_RECON__REPORT__DIR": {reports!r}}})
    # The hook: die by SIGKILL halfway through the HTML, after the JSON is on disk in staging.
    real_fsync = os.fsync
    count = [0]
    def fsync(fd):
        count[0] += 1
        if count[0] == 3:  # 1: report.json, 2: staging dir, 3: report.html
            os.kill(os.getpid(), signal.SIGKILL)
        return real_fsync(fd)
    os.fsync = fsync
    write_report(clean_result(run_id="r2"), cfg)
    print("not killed")
    """
)


def test_writer_killed_mid_write_leaves_no_visible_partial_report(cfg, tmp_path):
    prev = write_report(findings_result(run_id="r1"), cfg)
    script = KILLER.format(root=str(ROOT), tests=str(ROOT / "tests"), reports=str(cfg.report.dir))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    day_dir = prev.dir.parent
    assert visible(day_dir) == [LATEST, "r1"]
    assert latest_report(cfg, "trades", DAY) == prev.json
    assert load_report(prev.json)["run_id"] == "r1"
    leftovers = [p for p in day_dir.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert len(leftovers) == 1 and (leftovers[0] / JSON_NAME).exists()
    # A later writer clears a dead writer's staging once it is clearly stale.
    old = time.time() - 2 * 3600
    os.utime(leftovers[0], (old, old))
    write_report(clean_result(run_id="r3"), cfg)
    assert not leftovers[0].exists()
    assert visible(day_dir) == [LATEST, "r1", "r3"]


def test_files_and_directories_are_not_world_writable_whatever_the_umask(cfg):
    old = os.umask(0)
    try:
        paths = write_report(findings_result(), cfg)
    finally:
        os.umask(old)
    assert stat.S_IMODE(paths.json.stat().st_mode) == 0o640
    assert stat.S_IMODE(paths.html.stat().st_mode) == 0o640
    for d in (paths.dir, paths.dir.parent, paths.dir.parent.parent, paths.dir.parent.parent.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o750, d


@pytest.mark.parametrize("run_id", ["../evil", "a/b", ".hidden", "latest", ""])
def test_run_ids_that_would_escape_the_layout_are_refused(cfg, run_id):
    with pytest.raises(ReportError, match="cannot be used in a report path"):
        write_report(findings_result(run_id=run_id), cfg)


def test_a_result_of_another_env_is_refused(cfg):
    with pytest.raises(ReportError, match="env 'prod' cannot be filed under env 'test'"):
        write_report(findings_result(env="prod"), cfg)


def test_load_report_rejects_unknown_schema_and_garbage(tmp_path):
    p = tmp_path / "report.json"
    p.write_text(json.dumps({"schema_version": 2}))
    with pytest.raises(ReportError, match="schema_version 2; this trade-recon reads 1"):
        load_report(p)
    p.write_text('{"schema_version": 1, ')
    with pytest.raises(ReportError, match="not valid JSON"):
        load_report(p)
    with pytest.raises(ReportError, match="no report at"):
        load_report(tmp_path / "nope.json")


def test_report_url(cfg, tmp_path):
    paths = write_report(findings_result(), cfg)
    assert report_url(cfg, paths.html) == paths.html.resolve().as_uri()
    linked = cfg.model_copy(update={"report": cfg.report.model_copy(update={"link_base_url": "https://recon.example/r/"})})
    assert report_url(linked, paths.html) == (
        "https://recon.example/r/test/trades/2026-10-25/20261026T030000Z-a1b2/report.html")


def test_html_run_section_shows_each_fact_of_a_real_runs_metadata_once(cfg):
    from datetime import date

    from jobs.run import run_metadata
    from reconcilers.contract import TRADES

    r = clean_result()
    r.metadata = run_metadata(cfg, TRADES, date.fromisoformat(DAY), r.run_id)
    html = write_report(r, cfg).html.read_text()
    assert html.count(cfg.fingerprint()) == 1
    assert html.count(f"<code>{r.run_id}</code>") == 1
    assert html.count("<dt>pyspark</dt>") == 1
    assert "<dt>spark_master</dt>" in html and "<dt>api</dt>" in html  # the rest of the metadata is still shown
