"""The cluster path: the README's build-and-submit lines, run exactly (with the venv's own
spark-submit and `--master local[2]`) against a seeded day and the bundled API."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pyspark
import pytest

from api_server.testing import serve
from jobs.seed import seed_day

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# The venv's own pyspark distribution ships the launcher.
SPARK_SUBMIT = Path(pyspark.__file__).parent / "bin" / "spark-submit"


def readme_commands() -> list[str]:
    """The bash block of README 'Running in production' that builds the zip and submits."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Running in production"):]
    block = next(b for b in re.findall(r"```bash\n(.*?)```", section, re.S) if "spark-submit" in b)
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_readme_submits_with_a_master_a_zip_and_a_config():
    cmds = readme_commands()
    submit = shlex.split(cmds[-1])
    assert submit[0] == "spark-submit"
    assert submit[submit.index("--master") + 1] == "local[2]"
    assert submit[submit.index("--py-files") + 1] == "dist/trade_recon.zip"
    assert "--config" in submit and "--day" in submit
    assert any(c.startswith("zip ") for c in cmds)


def test_spark_submit_of_the_zip_reconciles_a_day(tmp_path):
    assert SPARK_SUBMIT.is_file(), SPARK_SUBMIT
    from conftest import need

    need(shutil.which("zip") is not None, "the zip command (Debian: zip)")
    # A copy of the checkout's code and config, so the build writes nowhere in the repo.
    work = tmp_path / "checkout"
    for part in ("jobs", "reconcilers", "expectations", "api_server", "conf"):
        shutil.copytree(ROOT / part, work / part, ignore=shutil.ignore_patterns("__pycache__"))
    cmds = readme_commands()
    submit = shlex.split(cmds[-1])
    day = date.fromisoformat(submit[submit.index("--day") + 1])
    seed_day(tmp_path / "store", day, 60, 150, seed=4)
    with serve(tmp_path / "store") as api:
        env = {
            **os.environ,
            "PATH": f"{SPARK_SUBMIT.parent}:{os.environ['PATH']}",
            # Executors must run an interpreter that has the job's dependencies.
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "TRADE_RECON__ENV": "submit",
            "TRADE_RECON__STORE__PATH": str(tmp_path / "store"),
            "TRADE_RECON__REPORT__DIR": str(tmp_path / "reports"),
            "TRADE_RECON__API__BASE_URL": api.base_url,
            "TRADE_RECON__API__API_KEY__ENV": "SUBMIT_TEST_KEY",
            "SUBMIT_TEST_KEY": "k",
            "TRADE_RECON__ALERTS__ENABLED": "false",
            "TRADE_RECON__EXPECTATIONS__ENABLED": "false",
        }
        for cmd in cmds[:-1]:
            subprocess.run(cmd, shell=True, cwd=work, env=env, check=True, timeout=120)
        assert (work / "dist" / "trade_recon.zip").is_file()
        out = subprocess.run(submit, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for name, rows in (("trades", 60), ("orders", 150)):
        latest = tmp_path / "reports" / "submit" / name / day.isoformat() / "latest"
        doc = json.loads((latest / "report.json").read_text())
        assert doc["verdict"] == "clean"
        assert doc["rows"]["store"] == rows and doc["rows"]["api"] == rows
        assert (latest / "report.html").is_file()
