"""The OpenAPI document as a contract: Spectral lints it with the project ruleset, and schemathesis
checks that the live server conforms to it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from api_server import openapi
from api_server.testing import serve
from jobs.seed import seed_day
from conftest import need

ROOT = Path(__file__).resolve().parent.parent
RULESET = ROOT / ".spectral.yaml"


def spectral(doc: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("spectral")
    need(exe is not None, "spectral CLI not installed (deploy/system-deps.sh installs @stoplight/spectral-cli)")
    return subprocess.run([exe, "lint", str(doc), "--ruleset", str(RULESET), "--fail-severity", "warn"],
                          capture_output=True, text=True, timeout=120)


def test_spectral_passes_the_committed_document():
    r = spectral(openapi.PATH)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("break_it,rule", [
    (lambda d: d["paths"]["/v1/trades"]["get"].pop("x-regulatory"), "recon-operation-regulatory"),
    (lambda d: d["paths"]["/healthz"]["get"].update({"x-regulatory": False}), "recon-operation-regulatory"),
    (lambda d: d["paths"]["/v1/orders"]["get"].pop("x-data-retention"), "recon-operation-retention-present"),
    (lambda d: d["paths"]["/v1/orders"]["get"].update({"x-data-retention": "5 years"}), "recon-operation-retention"),
    (lambda d: d["info"].update({"version": "1.0.0"}), "recon-info-version-major-minor"),
])
def test_spectral_fails_a_document_missing_the_project_rules(tmp_path, break_it, rule):
    doc = json.loads(openapi.PATH.read_text())
    break_it(doc)
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(doc, indent=2))
    r = spectral(path)
    assert r.returncode != 0
    assert rule in r.stdout


def test_the_live_server_conforms_to_its_document(tmp_path):
    store = tmp_path / "store"
    seed_day(store, date(2026, 10, 25), 3_000, 3_000, seed=2)  # the document's example day
    st = Path(sys.executable).with_name("schemathesis")
    need(st.exists(), "schemathesis not installed (pip install -e '.[test]')")
    with serve(store, api_keys=("st-key",)) as api:
        r = subprocess.run(
            [str(st), "run", f"{api.base_url}/openapi.json", "--url", api.base_url, "-H", "X-API-Key: st-key",
             "--checks", "all",
             # Which query parameters go together (a day or a window, from < to, one delivery day,
             # a cursor of this window) cannot be said in OpenAPI parameters, so a request that
             # looks schema-valid may rightly be a 400; every other check stays on.
             "--exclude-checks", "positive_data_acceptance",
             "--max-examples", "40", "--seed", "7", "--generation-database", "none", "--workers", "1",
             "--no-color", "--report-dir", str(tmp_path / "st-report")],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )
        log = r.stdout + r.stderr
        assert r.returncode == 0, log[-5000:]
        assert "passed" in log and "0 passed" not in log
        # The document's example day was really requested, so full pages were checked, not only errors.
        assert set(api.manifest_data()["expected"]) == {"trades", "orders"}
        assert "2026-10-25" in api.manifest_data()["expected"]["trades"]
