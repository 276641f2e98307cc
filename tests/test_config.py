import subprocess
import sys
from pathlib import Path

import pytest

from jobs.config import ConfigError, load_config, parse_day


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_default_config_loads():
    cfg = load_config(environ={})
    assert cfg.store.format == "parquet" and cfg.api.page_size == 2000


@pytest.mark.parametrize("text", ["", "# only a comment\n"], ids=["empty", "comments"])
def test_a_config_file_with_no_settings_is_refused(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"config file {path} holds no settings"):
        load_config(path, environ={})


def test_a_config_file_that_is_not_text_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match=f"config file {path} is not UTF-8 text"):
        load_config(path, environ={})


def test_no_datasets_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="'datasets': List should have at least 1 item"):
        load_config(write(tmp_path, "datasets: []\n"), environ={})


@pytest.mark.parametrize("text, env", [
    ("api: {api_key: s3cr3t-literal-value}\n", {}),
    ("", {"TRADE_RECON__API__API_KEY": "s3cr3t-literal-value"}),
    ("alerts: {routing_key: s3cr3t-literal-value}\n", {}),
    ("store: {jdbc: {password: s3cr3t-literal-value}}\n", {}),
], ids=["api-key-yaml", "api-key-env", "routing-key", "jdbc-password"])
def test_a_secret_written_as_a_value_is_refused_without_echoing_it(tmp_path, text, env):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text or "env: local\n"), environ=env)
    assert "a secret is never written in the config: give {env: VARIABLE} or {file: PATH}" in str(e.value)
    assert "s3cr3t" not in str(e.value)


@pytest.mark.parametrize("url, says", [
    ("http://user:pw-s3cr3t@127.0.0.1:8765", "credentials never go in the URL"),
    ("http://127.0.0.1:8765/?apikey=q-s3cr3t", "a base URL takes no query or fragment"),
    ("http://127.0.0.1:8765/#x", "a base URL takes no query or fragment"),
])
@pytest.mark.parametrize("section", ["api", "alerts"])
def test_a_base_url_with_credentials_or_a_query_is_refused(tmp_path, url, says, section):
    with pytest.raises(ConfigError, match=says) as e:
        load_config(write(tmp_path, f"{section}: {{base_url: '{url}'}}\n"), environ={})
    assert "pw-s3cr3t" not in str(e.value)


def test_environment_overrides_file(tmp_path):
    cfg = load_config(write(tmp_path, "api: {page_size: 100}\n"), environ={"TRADE_RECON__API__PAGE_SIZE": "500",
                                                                          "TRADE_RECON__ALERTS__ENABLED": "false"})
    assert cfg.api.page_size == 500 and cfg.alerts.enabled is False


@pytest.mark.parametrize(
    "text, env, named",
    [
        ("api: {pagesize: 10}\n", {}, "api.pagesize"),
        ("api: {page_size: lots}\n", {}, "api.page_size"),
        ("api: {page_size: 5000}\n", {}, "api.page_size"),
        ("api: {base_url: 'ftp://x'}\n", {}, "api.base_url"),
        ("api: {base_url: 'http://127.0.0.1:99999'}\n", {}, "the port of 'http://127.0.0.1:99999' is not a number"),
        ("", {"TRADE_RECON__API__BASE_URL": "http://127.0.0.1:abc"}, "api.base_url"),
        ("alerts: {base_url: 'http://127.0.0.1:0'}\n", {}, "alerts.base_url"),
        ("store: {format: csv}\n", {}, "store.format"),
        ("api: [1, 2\n", {}, "not valid YAML at line 2"),
        ("", {"TRADE_RECON__ALERTS__NOPE": "1"}, "unknown key 'alerts.nope' (from TRADE_RECON__ALERTS__NOPE)"),
        ("", {"TRADE_RECON__API__PAGE_SIZE": "abc"}, "(got 'abc') (from TRADE_RECON__API__PAGE_SIZE)"),
        ("expectations: {price_limits: [{segment: X, effective_from: 2026-02-30, min: 1, max: 2}]}\n", {}, "effective_from"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, env, named):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), environ=env)
    assert named in str(e.value)


def test_impossible_day():
    with pytest.raises(ConfigError, match="2026-02-30"):
        parse_day("2026-02-30")


def test_secrets_are_references_and_missing_ones_are_named(tmp_path):
    cfg = load_config(write(tmp_path, "api: {api_key: {env: MY_KEY}}\n"), environ={})
    with pytest.raises(ConfigError, match="MY_KEY"):
        cfg.api.api_key.read("api.api_key")
    keyfile = tmp_path / "key"
    keyfile.write_text("s3cret\n")
    cfg = load_config(write(tmp_path, f"api: {{api_key: {{file: {keyfile}}}}}\n"), environ={})
    assert cfg.api.api_key.read("api.api_key") == "s3cret"
    assert "s3cret" not in cfg.model_dump_json()


def test_an_empty_secret_variable_is_called_empty_not_unset(monkeypatch):
    cfg = load_config(environ={})
    monkeypatch.setenv("TRADE_RECON_API_KEY", "")
    with pytest.raises(ConfigError, match="environment variable TRADE_RECON_API_KEY is empty"):
        cfg.api.api_key.read("api.api_key")
    monkeypatch.delenv("TRADE_RECON_API_KEY")
    with pytest.raises(ConfigError, match="environment variable TRADE_RECON_API_KEY is not set"):
        cfg.api.api_key.read("api.api_key")


@pytest.mark.parametrize("args, needle", [
    (["seed", "--day", "2026-02-30"], "2026-02-30"),
    (["seed", "--day", "2026-12-02", "--config", "/nonexistent.yaml"], "/nonexistent.yaml"),
    (["seed", "--bogus"], "--bogus"),
])
def test_cli_exits_3_on_bad_config_or_usage(args, needle):
    r = subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True)
    assert r.returncode == 3, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


PRELOAD = """
import sys, threading
from jobs.config import Config, Expectations
from jobs.run import preload_expectations
preload_expectations(Config(expectations=Expectations(enabled={enabled})))
threads = [t for t in threading.enumerate() if t.name == "preload-expectations"]
for t in threads:
    t.join()
print(len(threads), "great_expectations" in sys.modules)
"""


@pytest.mark.parametrize("enabled, expected", [(True, "1 True"), (False, "0 False")])
def test_expectations_are_imported_in_the_background_only_when_enabled(enabled, expected):
    out = subprocess.run([sys.executable, "-c", PRELOAD.format(enabled=enabled)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip().splitlines()[-1] == expected
