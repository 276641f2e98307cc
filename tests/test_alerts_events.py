"""Event building: dedup keys, severity, what each outcome sends, PagerDuty's size limits."""

from __future__ import annotations

import itertools
import json

import pytest

from jobs.alert_events import (
    EVENT_LIMIT,
    SUMMARY_LIMIT,
    clip,
    config_key,
    data_key,
    event_bytes,
    plan,
    run_failure_key,
)
from jobs.config import Alerts
from reconcilers.result import DatasetResult, ExpectationResult, Outcome, Sample

ALERTS = Alerts()


def result(**kw) -> DatasetResult:
    base = dict(dataset="trades", day="2026-10-25", env="prod", run_id="run-1", store_rows=1000, api_rows=990)
    return DatasetResult(**{**base, **kw})


def findings() -> DatasetResult:
    return result(
        outcome=Outcome.FINDINGS,
        counts={"missing_in_api": {"*": 10}, "value_mismatch": {"price": 7, "volume": 2}, "null_dropped": {"text": 40}},
        samples=[Sample("value_mismatch", "price", {"trade_id": "T1", "revision_no": 2}, "12.30", "12.3"),
                 Sample("value_mismatch", "price", {"trade_id": "T2", "revision_no": 1}, "1.00", "1"),
                 Sample("missing_in_api", None, {"trade_id": "T9", "revision_no": 1}, {"trade_id": "T9"}, None),
                 Sample("value_nulled", "text", {"trade_id": "T3", "revision_no": 1}, "x", None)],
    )


def test_keys_are_per_env_dataset_and_day_and_never_collide():
    assert data_key("prod", "trades", "2026-10-25") == "trade-recon/prod/trades/2026-10-25"
    assert run_failure_key("prod", "trades", "2026-10-25") == "trade-recon/prod/trades/2026-10-25/run-failure"
    assert config_key("prod", "orders") == "trade-recon/prod/orders/config"
    keys = [f(env, ds, day) for env, ds, day in itertools.product(["prod", "test"], ["trades", "orders"],
                                                                  ["2026-03-29", "2026-10-25", "2026-10-26"])
            for f in (data_key, run_failure_key)]
    keys += [config_key(env, ds) for env, ds in itertools.product(["prod", "test"], ["trades", "orders"])]
    assert len(keys) == len(set(keys)) == 28
    assert all(len(k) <= 255 for k in keys)


def test_findings_trigger_critical_on_the_data_key_and_resolve_the_failure_keys():
    events = plan(ALERTS, findings(), "https://reports.example/trades/2026-10-25.html")
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [
        ("trigger", "trade-recon/prod/trades/2026-10-25"),
        ("resolve", "trade-recon/prod/trades/2026-10-25/run-failure"),
        ("resolve", "trade-recon/prod/trades/config"),
    ]
    p = events[0]["payload"]
    assert p["severity"] == "critical" and p["source"] == "trade-recon" and p["component"] == "trades"
    assert p["summary"] == ("trades 2026-10-25 (prod): 59 findings (missing_in_api 10, value_mismatch 9, "
                            "null_dropped 40); store 1,000 rows, API 990")
    d = p["custom_details"]
    assert d["counts_by_kind"] == {"missing_in_api": 10, "value_mismatch": 9, "null_dropped": 40}
    assert d["top_fields"][:2] == [{"kind": "null_dropped", "field": "text", "count": 40},
                                   {"kind": "missing_in_api", "field": "*", "count": 10}]
    assert d["run_id"] == "run-1" and d["store_rows"] == 1000 and d["api_rows"] == 990 and d["findings_total"] == 59
    # Round-robin over kinds: the first samples show three different kinds, not two of one kind.
    assert [s["kind"] for s in d["samples"]][:3] == ["missing_in_api", "value_mismatch", "value_nulled"]
    nulled = next(s for s in d["samples"] if s["kind"] == "value_nulled")
    assert nulled["api"] is None and "api" in nulled  # the explicit null is the finding
    assert events[0]["links"] == [{"href": "https://reports.example/trades/2026-10-25.html",
                                   "text": "reconciliation report"}]
    assert "payload" not in events[1] and "routing_key" not in events[0]


def test_severities_come_from_config():
    custom = Alerts(severities={"findings": "error", "expectations_only": "info", "incomplete": "critical"})
    assert plan(custom, findings(), None)[0]["payload"]["severity"] == "error"
    assert "links" not in plan(custom, findings(), None)[0]


def test_expectations_only_is_a_warning_on_the_data_key():
    r = result(outcome=Outcome.FINDINGS, counts={"expectation_failed": {"price": 1}},
               expectations=[ExpectationResult("api", "expect_column_values_to_be_between", "price", False,
                                               unexpected_count=3),
                             ExpectationResult("store", "expect_column_values_to_not_be_null", "trade_id", True)])
    e = plan(ALERTS, r, None)[0]
    assert e["event_action"] == "trigger" and e["dedup_key"] == "trade-recon/prod/trades/2026-10-25"
    assert e["payload"]["severity"] == "warning"
    assert "1 data-quality expectations failed" in e["payload"]["summary"]
    assert "expect_column_values_to_be_between(price) on api" in e["payload"]["summary"]
    assert e["payload"]["custom_details"]["failed_expectations"] == [
        {"side": "api", "expectation": "expect_column_values_to_be_between", "column": "price",
         "unexpected_count": 3, "observed": None}]


def test_data_findings_with_failed_expectations_stay_critical():
    r = findings()
    r.expectations = [ExpectationResult("api", "expect_x", "price", False)]
    e = plan(ALERTS, r, None)[0]
    assert e["payload"]["severity"] == "critical" and e["payload"]["summary"].endswith("; 1 expectations failed")


def test_clean_run_resolves_all_three_keys():
    events = plan(ALERTS, result(), None)
    assert events == [{"event_action": "resolve", "dedup_key": "trade-recon/prod/trades/2026-10-25"},
                      {"event_action": "resolve", "dedup_key": "trade-recon/prod/trades/2026-10-25/run-failure"},
                      {"event_action": "resolve", "dedup_key": "trade-recon/prod/trades/config"}]


def test_outcome_follows_the_contents_like_the_exit_code_does():
    # The job may hand over a result before decide(); counts still mean findings.
    r = findings()
    r.outcome = Outcome.CLEAN
    assert plan(ALERTS, r, None)[0]["event_action"] == "trigger"
    assert r.outcome is Outcome.CLEAN  # not changed behind the caller's back


def test_incomplete_run_triggers_its_own_key_and_never_touches_the_data_incident():
    r = result(outcome=Outcome.INCOMPLETE, error="API unreachable: 3 of 24 windows failed after 6 attempts",
               counts={"missing_in_api": {"*": 500}})
    events = plan(ALERTS, r, "file:///reports/x.html")
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [
        ("trigger", "trade-recon/prod/trades/2026-10-25/run-failure"),
        ("resolve", "trade-recon/prod/trades/config"),
    ]
    p = events[0]["payload"]
    assert p["severity"] == "error" and p["class"] == "run-failure"
    assert p["summary"] == ("reconciliation could not complete: trades 2026-10-25 (prod): "
                            "API unreachable: 3 of 24 windows failed after 6 attempts")
    assert p["custom_details"]["error"].startswith("API unreachable")


def test_config_error_triggers_the_config_key_only():
    events = plan(ALERTS, result(outcome=Outcome.CONFIG, error="unknown key 'api.pagesize'"), None)
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [("trigger", "trade-recon/prod/trades/config")]
    assert events[0]["payload"]["summary"] == "reconciliation configuration error: trades (prod): unknown key 'api.pagesize'"
    assert events[0]["payload"]["severity"] == "error"


def test_locked_run_sends_nothing():
    assert plan(ALERTS, result(outcome=Outcome.LOCKED), None) == []


def test_long_summary_is_cut_to_the_limit():
    r = result(outcome=Outcome.INCOMPLETE, error="connection reset " * 500)
    s = plan(ALERTS, r, None)[0]["payload"]["summary"]
    assert len(s) == SUMMARY_LIMIT and s.endswith("...")
    many = result(counts={f"kind_{i:04d}": {"f": i + 1} for i in range(400)})
    s = plan(ALERTS, many, None)[0]["payload"]["summary"]
    assert len(s) == SUMMARY_LIMIT and s.startswith("trades 2026-10-25 (prod): 80,200 findings (kind_0000 1, ")


def test_oversized_details_shrink_until_the_event_fits():
    huge = "x" * 300_000
    r = findings()
    r.samples = [Sample("value_mismatch", f"f{i}", {f"k{j}": huge for j in range(60)}, huge, huge) for i in range(30)]
    r.counts["value_mismatch"].update({f"field_{i}": 1 for i in range(5000)})
    r.expectations = [ExpectationResult("api", "expect_x", f"c{i}", False, observed=huge) for i in range(50)]
    r.error = huge
    e = plan(ALERTS, r, "file:///r.html")[0]
    size = event_bytes(e)
    body = json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(body) < size <= EVENT_LIMIT
    d = e["payload"]["custom_details"]
    assert d["details_shrunk"].startswith("level ")
    assert d["findings_total"] == 59 + 5000  # totals stay exact whatever is cut
    assert 0 < len(d["samples"]) < 30
    assert all(len(v) <= 4000 for s in d["samples"] for v in s["key"].values())


def test_pathological_details_fall_back_to_a_minimal_but_valid_event():
    r = findings()
    r.run_id = "r" * 10
    r.counts = {f"kind_{i}": {"*": 1} for i in range(5)}
    r.samples = []
    long_link = "https://reports.example/" + "a" * 600_000
    e = plan(ALERTS, r, long_link)[0]
    assert event_bytes(e) <= EVENT_LIMIT
    assert "links" not in e and e["payload"]["custom_details"]["findings_total"] == 5


def test_clip_keeps_json_shapes_and_says_what_was_cut():
    out = clip({"a": "y" * 50, "b": list(range(12)), "c": {str(i): i for i in range(12)}, "d": object()}, 10, 5)
    assert out["a"] == "yyyyyyy..." and out["b"][:5] == [0, 1, 2, 3, 4] and out["b"][5] == "... 7 more"
    assert out["c"]["..."] == "7 more" and isinstance(out["d"], str)
    json.dumps(out)


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_outcome_has_a_plan_within_limits(outcome):
    for e in plan(ALERTS, result(outcome=outcome, error="boom"), None):
        assert e["event_action"] in ("trigger", "resolve")
        assert event_bytes(e) <= EVENT_LIMIT
