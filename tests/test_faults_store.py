"""Fault suite, the store: a missing partition, an empty day, corrupt Parquet files."""

from __future__ import annotations

import pytest

from api_server.testing import serve
from fault_helpers import (API_KEY, DAY, EMPTY_DAY, MISSING_DAY, case, copy_store, expect_incomplete,  # noqa: F401
                           expect_verdict, pagerduty, pd, secrets_env, store)
from jobs.seed import partition_dir
from reconcilers.contract import TRADES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(store):
    with serve(store, api_keys=(API_KEY,)) as running:
        yield running


def test_a_missing_partition_names_the_path(case, api):
    cfg = case.config(api.base_url)
    code = case.run(cfg, day=MISSING_DAY)
    expect_incomplete(case, code, cfg, "trades",
                      f"trades: store partition {partition_dir(case.store, TRADES, MISSING_DAY)} does not exist",
                      day=MISSING_DAY)


def test_an_empty_day_is_a_clean_verdict_that_says_zero(case, api):
    cfg = case.config(api.base_url)
    code = case.run(cfg, day=EMPTY_DAY)
    doc = expect_verdict(case, code, cfg, "trades", {}, day=EMPTY_DAY)
    assert doc["rows"] == {"store": 0, "api": 0}
    assert doc["summary"] == "all 0 store rows served complete and unaltered"
    assert doc["api_stats"]["windows_failed"] == 0 and doc["api_stats"]["windows"] == 4


def test_an_empty_day_is_incomplete_when_configured_so(case, api):
    cfg = case.config(api.base_url, store={"allow_empty_day": False})
    code = case.run(cfg, day=EMPTY_DAY)
    expect_incomplete(case, code, cfg, "trades", f"trades: the store holds 0 rows for {EMPTY_DAY} at "
                      f"{partition_dir(case.store, TRADES, EMPTY_DAY)} and store.allow_empty_day is false", day=EMPTY_DAY)


def _one_file(store, day=DAY):
    files = sorted(partition_dir(store, TRADES, day).glob("*.parquet"))
    assert len(files) == 1
    return files[0]


def test_a_truncated_parquet_file_is_named(case, api, tmp_path):
    case.store = copy_store(case.store, tmp_path / "store")
    bad = _one_file(case.store)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    cfg = case.config(api.base_url)
    code = case.run(cfg)
    expect_incomplete(case, code, cfg, "trades", f"trades: store file {bad} is not readable Parquet")


def test_a_parquet_file_with_garbage_in_its_data_pages_is_named(case, api, tmp_path):
    # The footer is intact, so only reading the data finds the damage (inside a Spark task).
    case.store = copy_store(case.store, tmp_path / "store")
    bad = _one_file(case.store)
    blob = bytearray(bad.read_bytes())
    for i in range(8, len(blob) // 2):
        blob[i] = 0xA5
    bad.write_bytes(bytes(blob))
    cfg = case.config(api.base_url)
    code = case.run(cfg)
    error = expect_incomplete(case, code, cfg, "trades", f"trades: store file {bad} could not be read")
    assert "An error occurred while calling" not in error  # the root cause, not the py4j call
