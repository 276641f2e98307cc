"""The acceptance test of the job: against the bundled API, every fault profile's manifest (what
the server injected) equals what the job found, on a normal day and on both DST days; transport
faults are retried through or make the run incomplete, never findings."""

from __future__ import annotations

from datetime import date

import pytest

from api_server.testing import serve
from jobs.config import Config
from jobs.run import new_run_id, run_day
from jobs.seed import seed_day
from reconcilers.contract import DATASETS, ORDERS, TRADES
from reconcilers.result import Outcome

pytestmark = pytest.mark.slow

NORMAL, SHORT, LONG = date(2026, 10, 24), date(2026, 3, 29), date(2026, 10, 25)
ALL_DATA = ("drop-nulls:rate=0.3", "omitempty:rate=0.05", "drop-records:rate=0.02", "duplicate-records:rate=0.03",
            "change-values:rate=0.03", "null-values:rate=0.03", "wrong-type:rate=0.03")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    for d in (NORMAL, SHORT, LONG):
        seed_day(root, d, 300, 900, seed=21)
    return root


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("RECON_FAULTS_KEY", "k")


def config(store, base_url: str, gx: bool = False, **api) -> Config:
    return Config.model_validate({
        "env": "test",
        "store": {"path": str(store)},
        "api": {"base_url": base_url, "api_key": {"env": "RECON_FAULTS_KEY"}, "page_size": 40, "window_minutes": 180,
                "retry": {"backoff_s": 0.01, "backoff_max_s": 0.05, "retry_after_cap_s": 5}, **api},
        "expectations": {"enabled": gx},
    })


def reconcile(spark, store, faults, day, datasets=(TRADES, ORDERS), gx: bool = False, **api):
    with serve(store, faults=faults, fault_seed=13) as srv:
        cfg = config(store, srv.base_url, gx, **api)
        results = {ds.name: run_day(spark, cfg, ds, day, new_run_id()) for ds in datasets}
        manifest = srv.manifest_data()
    return results, manifest


def expected(manifest, name, day):
    return manifest["expected"].get(name, {}).get(day.isoformat(), {})


@pytest.mark.parametrize("profile", ["drop-nulls", "omitempty", "drop-records:rate=0.03", "duplicate-records:rate=0.05",
                                     "change-values:rate=0.05", "null-values:rate=0.05", "wrong-type:rate=0.05"])
def test_each_data_fault_profile_is_found_exactly(spark, store, profile):
    results, manifest = reconcile(spark, store, [profile], NORMAL)
    for name, r in results.items():
        want = expected(manifest, name, NORMAL)
        assert want, f"{profile} injected nothing into {name}: the test would prove nothing"
        assert r.outcome == Outcome.FINDINGS and r.error is None
        assert r.counts == want, name
        assert r.store_rows == 300 if name == "trades" else 900


@pytest.mark.parametrize("day", [NORMAL, SHORT, LONG], ids=["24h", "23h", "25h"])
def test_all_data_faults_at_once_on_normal_and_dst_days(spark, store, day):
    results, manifest = reconcile(spark, store, ALL_DATA, day)
    for name, r in results.items():
        assert r.outcome == Outcome.FINDINGS and r.error is None
        assert r.counts == expected(manifest, name, day), name
        hours = {NORMAL: 24, SHORT: 23, LONG: 25}[day]
        assert len(r.hourly) == hours
        assert sum(h.store for h in r.hourly) == r.store_rows


@pytest.mark.parametrize("day", [NORMAL, SHORT, LONG], ids=["24h", "23h", "25h"])
def test_clean_server_is_clean(spark, store, day):
    results, manifest = reconcile(spark, store, (), day)
    for name, r in results.items():
        assert (r.outcome, r.counts, r.error) == (Outcome.CLEAN, {}, None)
        assert r.store_rows == r.api_rows == r.api_stats.records > 0
        assert r.api_stats.windows_failed == 0 and r.api_stats.retries == 0
        assert all(h.store == h.api for h in r.hourly)
        assert r.metadata["run_id"] == r.run_id and r.metadata["config_fingerprint"]
        assert {"store_read", "api_replay", "compare", "total"} <= set(r.timings_s)


def test_expectations_run_on_both_sides(spark, store):
    results, _ = reconcile(spark, store, (), LONG, datasets=(TRADES,), gx=True)
    r = results["trades"]
    assert {e.side for e in r.expectations} == {"store", "api"}
    assert "expectations" in r.timings_s
    # The seeded trades satisfy every trade expectation on both sides.
    assert [e.expectation for e in r.expectations if not e.success] == []
    assert (r.outcome, r.counts) == (Outcome.CLEAN, {})


@pytest.mark.parametrize("profile", ["503-burst", "429-burst:retry_after=1", "truncate-body:count=2", "slow-pages:delay=0.01"])
def test_transport_faults_that_a_retry_gets_through_are_clean(spark, store, profile):
    results, manifest = reconcile(spark, store, [profile], LONG, datasets=(TRADES,), page_size=10)
    r = results["trades"]
    assert (r.outcome, r.counts, r.error) == (Outcome.CLEAN, {}, None)
    shaped = sum(t["served"] for t in manifest["transport"] if t["fault"] != "slow-pages")
    assert r.api_stats.retries == shaped
    assert profile.startswith("slow") or shaped > 0


@pytest.mark.parametrize("profile, says", [
    ("stuck-cursor", "the cursor did not advance"),
    ("repeat-last-page", "record for record"),
    ("429-burst:retry_after=3600", "Retry-After 3600 s, above the cap of 5 s"),
    ("503-burst:count=9,pages=all", "HTTP 503"),
    ("truncate-body:count=9", "the body is not valid JSON"),
])
def test_unreadable_paging_makes_the_run_incomplete(spark, store, profile, says):
    # Pages of 10: every window has several, so cursors are followed.
    results, _ = reconcile(spark, store, [profile], LONG, datasets=(TRADES,), page_size=10)
    r = results["trades"]
    assert r.outcome == Outcome.INCOMPLETE and r.counts == {}
    assert r.error.startswith("trades") and says in r.error
    assert r.api_stats.windows_failed >= 1


def test_missing_partition_is_incomplete_naming_the_path(spark, store):
    with serve(store) as srv:
        r = run_day(spark, config(store, srv.base_url), DATASETS["orders"], date(2026, 1, 5), new_run_id())
    assert r.outcome == Outcome.INCOMPLETE
    assert r.error == f"orders: store partition {store}/orders/delivery_day=2026-01-05 does not exist"


def test_missing_api_key_is_a_config_outcome(spark, store, monkeypatch):
    monkeypatch.delenv("RECON_FAULTS_KEY")
    r = run_day(spark, config(store, "http://127.0.0.1:9"), TRADES, NORMAL, new_run_id())
    assert r.outcome == Outcome.CONFIG and "RECON_FAULTS_KEY is not set" in r.error


def test_spark_is_asked_for_only_once_the_api_and_the_store_partition_passed_their_checks(spark, store):
    asked = []

    def session():
        asked.append(1)
        return spark

    down = run_day(session, config(store, "http://127.0.0.1:9"), TRADES, NORMAL, new_run_id())
    assert down.outcome == Outcome.INCOMPLETE and "the API preflight request failed" in down.error
    assert asked == [] and "store_read" not in down.timings_s and down.api_stats.windows_failed == 8
    with serve(store) as srv:
        never_seeded = date(2026, 1, 1)
        unseeded = run_day(session, config(store, srv.base_url), TRADES, never_seeded, new_run_id())
        assert unseeded.outcome == Outcome.INCOMPLETE and unseeded.error.endswith("does not exist") and asked == []
        up = run_day(session, config(store, srv.base_url), TRADES, NORMAL, new_run_id())
    assert up.outcome == Outcome.CLEAN and up.store_rows == 300 and asked == [1]


def test_store_file_corrupt_inside_is_incomplete_naming_the_file(spark, tmp_path):
    # The footer is intact, so only Spark's read of the data pages finds the damage.
    from jobs.seed import partition_dir

    store, served = tmp_path / "store", tmp_path / "served"  # the API serves an intact copy
    for root in (store, served):
        seed_day(root, NORMAL, 300, 0, seed=21)
    part = partition_dir(store, TRADES, NORMAL) / "part-00000.parquet"
    data = bytearray(part.read_bytes())
    for i in range(200, len(data) // 2, 97):
        data[i] ^= 0x5A
    part.write_bytes(bytes(data))
    with serve(served) as srv:
        r = run_day(spark, config(store, srv.base_url), TRADES, NORMAL, new_run_id())
    assert r.outcome == Outcome.INCOMPLETE and r.counts == {}
    assert r.error.startswith(f"trades: store file {part} could not be read")
    assert "\n" not in r.error and "at org.apache" not in r.error
