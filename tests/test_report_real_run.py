"""The report, the ledger and the console from a real run: the job against the bundled API with
data faults on the 25-hour DST day, through `jobs.run.run` (publish included)."""

from __future__ import annotations

import shutil
from datetime import date

import pytest

from api_server.testing import serve
from jobs import console
from jobs.config import Config
from jobs.ledger import history
from jobs.report import latest_report, load_report
from jobs.run import run
from jobs.seed import seed_day
from test_report_browser import Dom, chromium

pytestmark = pytest.mark.slow

DAY = date(2026, 10, 25)
FAULTS = ("drop-nulls:rate=0.3", "drop-records:rate=0.05", "change-values:rate=0.03")


def test_real_run_report_matches_what_the_server_injected(spark, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECON_REPORT_KEY", "k")
    store = tmp_path / "store"
    seed_day(store, DAY, 400, 0, seed=5)
    with serve(store, faults=FAULTS, fault_seed=3) as srv:
        cfg = Config.model_validate({
            "env": "test",
            "datasets": ["trades"],
            "store": {"path": str(store)},
            "api": {"base_url": srv.base_url, "api_key": {"env": "RECON_REPORT_KEY"}, "page_size": 50,
                    "window_minutes": 180, "retry": {"backoff_s": 0.01, "backoff_max_s": 0.05}},
            "alerts": {"enabled": False},
            "expectations": {"enabled": False},
            "report": {"dir": str(tmp_path / "reports")},
        })
        console.configure(quiet=True)
        try:
            code = run(cfg, DAY, ["trades"], spark=spark)
        finally:
            console.configure()
        want = srv.manifest_data()["expected"]["trades"][DAY.isoformat()]

    assert code == 1
    final = capsys.readouterr().out.strip()
    assert final.startswith("FINDINGS trades 2026-10-25: ") and "\n" not in final  # quiet: one line

    path = latest_report(cfg, "trades", DAY)
    doc = load_report(path)
    assert final.endswith(f"· report: {path.with_name('report.html').resolve()}")
    assert doc["schema_version"] == 1 and (doc["verdict"], doc["exit_code"]) == ("findings", 1)
    assert doc["counts"] == {k: want[k] for k in doc["counts"]} and set(doc["counts"]) == set(want)
    assert doc["rows"]["store"] == 400 == sum(h["store"] for h in doc["hourly"])
    assert len(doc["hourly"]) == 25
    missing = want["missing_in_api"]["*"]
    assert sum(h["gap"] for h in doc["hourly"]) == missing == doc["rows"]["store"] - doc["rows"]["api"]
    assert doc["run"]["config_hash"] == cfg.fingerprint()
    assert doc["api_stats"]["pages"] > 0 and doc["timings_s"]["api_replay"] > 0
    assert any(s["kind"] == "value_mismatch" and s["store"] != s["api"] for s in doc["samples"])

    rows = history(cfg)
    assert len(rows) == 1
    assert rows[0]["report_path"] == str(path) and rows[0]["verdict"] == "findings"
    assert rows[0]["findings"] == doc["totals"]["findings"] and rows[0]["counts"] == doc["totals"]["by_kind"]

    if shutil.which("chromium"):  # the browser test proper lives in test_report_browser.py
        dom = Dom(chromium(tmp_path, path.with_name("report.html").as_uri(), "--dump-dom").stdout)
        assert "FINDINGS" in dom.find(id="verdict")[0]["text"]
        assert len(dom.find("rect", cls=("bar", "api"))) == 25
        short = {g["attrs"]["data-hour"] for g in dom.find("g", cls=("hour", "short"))}
        assert short == {h["hour_utc"] for h in doc["hourly"] if h["gap"] > 0}
