"""`recon demo` (what `make demo` runs after the install), as a new user runs it, in an empty
working directory: it seeds, serves with faults, runs the job, shows the incident it opened and
checks the findings against what the API injected."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
DAY = "2026-10-25"


def test_demo_finds_exactly_the_injected_faults_and_opens_the_incidents(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADE_RECON", "PYSPARK_GATEWAY"))}
    env["PYSPARK_PYTHON"] = sys.executable
    out = subprocess.run([str(BIN / "recon"), "demo", "--trades", "3000", "--orders", "6000"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]

    for dataset in ("trades", "orders"):
        assert f"{dataset}: findings match what the API injected" in text
        # The incident of this dataset and day, opened on the local PagerDuty stand-in.
        assert re.search(rf"\[triggered\] critical trade-recon/local/{dataset}/{DAY}: ", text), text[-3000:]

        # The report it points at is on disk, in the working directory, and names a dropped null.
        report = tmp_path / "reports" / "local" / dataset / DAY / "latest" / "report.json"
        doc = json.loads(report.read_text())
        assert doc["verdict"] == "findings"
        assert doc["counts"]["null_dropped"]["trader_id"] > 0
        assert (report.parent / "report.html").is_file()
    assert (tmp_path / "data" / "store" / "trades" / f"delivery_day={DAY}").is_dir()
