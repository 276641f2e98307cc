"""Fault suite, configuration: `recon run` as a subprocess with a broken configuration exits 3,
names the key (or the place in the file) in one line on stderr, and prints no stack trace."""

from __future__ import annotations

import pytest

from fault_helpers import (API_KEY_ENV, DAY, ROUTING_KEY_ENV, config_tree, pagerduty, pd, recon, secrets_env,  # noqa: F401
                           store, write_config)
from jobs.alert_events import config_key

BAD_YAML = "env: faults\napi:\n  base_url: [http://127.0.0.1:1\n  page_size: 10\n"


def run_with(tmp_path, text: str | None = None, tree: dict | None = None, day: str = DAY.isoformat(),
             env: dict | None = None):
    path = tmp_path / "recon.yaml"
    if text is not None:
        path.write_text(text)
    else:
        write_config(path, tree)
    return recon(["run", "--day", day, "--dataset", "trades", "--config", str(path)], cwd=tmp_path, env=env,
                 timeout=120)


def one_error_line(p) -> str:
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "Traceback" not in p.stdout + p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, p.stderr
    return errors[0]


@pytest.fixture
def tree(tmp_path, store, pd):
    return config_tree(tmp_path, store, "http://127.0.0.1:9", pd.base_url)


def test_bad_yaml_names_the_file_and_the_place(tmp_path):
    p = run_with(tmp_path, text=BAD_YAML)
    line = one_error_line(p)
    assert f"config file {tmp_path / 'recon.yaml'} is not valid YAML at line 4" in line


def test_an_unknown_key_is_named(tmp_path, tree):
    tree["api"]["page_sise"] = 10
    line = one_error_line(run_with(tmp_path, tree=tree))
    assert "unknown key 'api.page_sise'" in line


def test_an_unknown_key_from_the_environment_is_named(tmp_path, tree):
    line = one_error_line(run_with(tmp_path, tree=tree, env={"TRADE_RECON__API__PAGESIZE": "10"}))
    assert "unknown key 'api.pagesize'" in line


def test_a_bad_url_is_named(tmp_path, tree):
    tree["api"]["base_url"] = "htp:/127.0.0.1:8765"
    line = one_error_line(run_with(tmp_path, tree=tree))
    assert "'api.base_url'" in line and "not an http(s) URL: 'htp:/127.0.0.1:8765'" in line


def test_an_impossible_day_on_the_command_line(tmp_path, tree):
    line = one_error_line(run_with(tmp_path, tree=tree, day="2026-02-30"))
    assert "--day: '2026-02-30' is not a calendar date" in line


@pytest.mark.parametrize("args, named", [
    (["backfill", "--from", "2026-12-01", "--to", "2026-12-32"], "--to: '2026-12-32'"),
    (["backfill", "--from", "2026-13-01", "--to", "2026-12-02"], "--from: '2026-13-01'"),
    (["report", "show", "2026-02-30"], "DAY: '2026-02-30'"),
], ids=["backfill-to", "backfill-from", "report-show"])
def test_an_impossible_day_is_named_by_its_option(tmp_path, tree, args, named):
    path = write_config(tmp_path / "recon.yaml", tree)
    line = one_error_line(recon([*args, "--config", str(path)], cwd=tmp_path, timeout=120))
    assert f"{named} is not a calendar date" in line


def test_an_impossible_date_in_the_config_is_named(tmp_path, tree):
    text = write_config(tmp_path / "base.yaml", tree).read_text()
    text += "expectations:\n  price_limits:\n    - {segment: CONTINUOUS, effective_from: 2026-02-30, min: -9999, max: 9999}\n"
    text = text.replace("expectations:\n  enabled: false\n", "", 1)
    line = one_error_line(run_with(tmp_path, text=text))
    assert "'expectations.price_limits.0.effective_from'" in line


def test_a_missing_api_key_is_named_and_alerted_on_the_config_key(tmp_path, tree, pd):
    p = run_with(tmp_path, tree=tree, env={API_KEY_ENV: ""})
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "Traceback" not in p.stdout + p.stderr
    line = one_error_line(p)
    assert f"api.api_key: environment variable {API_KEY_ENV} is empty" in line
    events = [e for e in pd.accepted() if e["dedup_key"] == config_key("faults", "trades")]
    assert [(e["event_action"], e["payload"]["severity"]) for e in events] == [("trigger", "error")]
    assert API_KEY_ENV in events[0]["payload"]["summary"]


def test_a_missing_routing_key_still_exits_3_naming_it(tmp_path, tree):
    p = run_with(tmp_path, tree=tree, env={ROUTING_KEY_ENV: ""})
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "Traceback" not in p.stdout + p.stderr
    line = one_error_line(p)
    assert f"alerts.routing_key: environment variable {ROUTING_KEY_ENV} is empty" in line
