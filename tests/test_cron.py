"""deploy/cron: the crontab parses, and the wrapper maps recon's exit codes to who hears about it
(run against a fake `recon` on PATH that exits with each code)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parent.parent
CRON_DIR = ROOT / "deploy" / "cron"
WRAPPER = CRON_DIR / "recon-nightly.sh"

# (lowest, highest) per crontab field: minute, hour, day of month, month, day of week.
FIELD_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")


def _valid_field(text: str, lo: int, hi: int) -> bool:
    for part in text.split(","):
        rng, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return False
        if rng == "*":
            continue
        bounds = rng.split("-")
        if len(bounds) > 2 or not all(b.isdigit() and lo <= int(b) <= hi for b in bounds):
            return False
        if len(bounds) == 2 and int(bounds[0]) > int(bounds[1]):
            return False
    return True


def _job_lines() -> list[str]:
    lines = (CRON_DIR / "trade-recon.crontab").read_text().splitlines()
    return [l for l in lines if l.strip() and not l.lstrip().startswith("#") and not ENV_LINE.match(l)]


def test_crontab_has_one_line_of_five_fields_and_the_wrapper():
    jobs = _job_lines()
    assert len(jobs) == 1
    parts = jobs[0].split(None, 5)
    assert len(parts) == 6, "five schedule fields and a command"
    for text, (lo, hi) in zip(parts[:5], FIELD_RANGES):
        assert _valid_field(text, lo, hi), f"bad crontab field {text!r}"
    assert _valid_field("1-5/2", 0, 59) and not _valid_field("61", 0, 59) and not _valid_field("5-1", 0, 59)
    command = parts[5]
    assert "%" not in command, "cron turns % into a newline"
    words = shlex.split(command)
    script = next(w for w in words if w.endswith("recon-nightly.sh"))
    assert (ROOT / script).resolve() == WRAPPER
    assert os.access(WRAPPER, os.X_OK)
    env = dict(l.split("=", 1) for l in (CRON_DIR / "trade-recon.crontab").read_text().splitlines() if ENV_LINE.match(l))
    assert env.get("MAILTO") and env.get("TRADE_RECON_LOG_DIR")


@pytest.fixture
def fake_recon(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "recon"
    fake.write_text('#!/usr/bin/env bash\necho "fake recon got: $*"\necho "some stderr" >&2\nexit "$FAKE_RC"\n')
    fake.chmod(0o755)
    return bin_dir


def _run(fake_recon: Path, tmp_path: Path, rc: int, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("RECON", "RECON_DAY", "RECON_CONFIG")}
    full_env.update(PATH=f"{fake_recon}:{os.environ['PATH']}", FAKE_RC=str(rc), TRADE_RECON_LOG_DIR=str(tmp_path / "logs"))
    full_env.update(env)
    return subprocess.run(["bash", str(WRAPPER), *args], env=full_env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "rc, wrapper_rc, mails, note",
    [
        (0, 0, False, "clean"),
        (1, 0, False, "findings; PagerDuty alerted"),
        (2, 0, False, "incomplete; PagerDuty alerted"),
        (3, 3, True, "configuration or usage error"),
        (4, 0, False, "locked: the previous run"),
        (137, 137, True, "crashed or killed (exit 137)"),
    ],
)
def test_wrapper_maps_exit_codes(fake_recon, tmp_path, rc, wrapper_rc, mails, note):
    out = _run(fake_recon, tmp_path, rc, "--recheck", "2", RECON_CONFIG="/etc/recon.yaml")
    assert out.returncode == wrapper_rc
    # cron mails any output: only a configuration error or a crash may produce some.
    assert bool(out.stdout + out.stderr) is mails
    yesterday = (datetime.now(ZoneInfo("Europe/Amsterdam")) - timedelta(days=1)).date().isoformat()
    log = (tmp_path / "logs" / f"recon-{yesterday}.log").read_text()
    assert f"fake recon got: run --day {yesterday} --config /etc/recon.yaml --recheck 2" in log
    assert "some stderr" in log
    assert f"end: exit {rc}: {note}" in log
    if mails:
        assert note in out.stdout and "fake recon got" in out.stdout


def test_wrapper_honours_explicit_day_and_recon_path(fake_recon, tmp_path):
    out = _run(fake_recon, tmp_path, 0, RECON=str(fake_recon / "recon"), RECON_DAY="2026-03-29")
    assert out.returncode == 0
    assert "run --day 2026-03-29" in (tmp_path / "logs" / "recon-2026-03-29.log").read_text()


def test_wrapper_mails_when_it_cannot_log(fake_recon, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    out = _run(fake_recon, tmp_path, 0, TRADE_RECON_LOG_DIR=str(blocker / "logs"))
    assert out.returncode == 3
    assert "cannot write to log directory" in out.stdout
