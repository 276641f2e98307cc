"""The alert sender end to end: the real `pagerduty` client against the stand-in on loopback."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jobs import alerts
from jobs.alert_events import EVENT_LIMIT, SUMMARY_LIMIT
from jobs.alerts import flush_outbox, outbox_entries, preflight, requeue_dead, send_for
from jobs.config import ConfigError, load_config
from jobs.pagerduty_standin import serve
from reconcilers.result import DatasetResult, Outcome, Sample

KEY = "f00dfeedcafe4b1d9a7e0c3d2b1a5eed"
KEY_ENV = "TRADE_RECON_TEST_ROUTING_KEY"
LINK = "https://reports.example/trades/2026-10-25.html"
DATA = "trade-recon/test/trades/2026-10-25"
FAIL = DATA + "/run-failure"
CONF = "trade-recon/test/trades/config"


def make_cfg(tmp_path: Path, base_url: str, **env):
    environ = {
        "TRADE_RECON__ENV": "test",
        "TRADE_RECON__ALERTS__BASE_URL": base_url,
        "TRADE_RECON__ALERTS__ROUTING_KEY__ENV": KEY_ENV,
        "TRADE_RECON__ALERTS__OUTBOX": str(tmp_path / "outbox"),
        # The client's own retry loop, made fast: sleeps of 1, 2, 4 ms.
        "TRADE_RECON__ALERTS__RETRY__SLEEP_S": "0.0005",
        "TRADE_RECON__ALERTS__RETRY__RATE_LIMIT_RETRIES": "3",
        "TRADE_RECON__ALERTS__TIMEOUT_S": "5",
        **env,
    }
    return load_config(environ=environ)


@pytest.fixture(autouse=True)
def routing_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def pd():
    with serve() as s:
        yield s


@pytest.fixture
def cfg(tmp_path, pd):
    return make_cfg(tmp_path, pd.base_url)


def closed_port_url() -> str:
    """A loopback URL where nothing listens: PagerDuty is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(day="2026-10-25", dataset="trades", outcome=Outcome.FINDINGS, run_id="r1", **kw) -> DatasetResult:
    counts = {"missing_in_api": {"*": 4}, "value_mismatch": {"price": 2}} if outcome is Outcome.FINDINGS else {}
    return DatasetResult(dataset=dataset, day=day, env="test", run_id=run_id, outcome=outcome,
                         store_rows=100, api_rows=96, counts=kw.pop("counts", counts), **kw)


def keys(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["event_action"], e["dedup_key"]) for e in events]


def test_trigger_rerun_updates_the_same_incident_then_clean_run_resolves(cfg, pd):
    out = send_for(cfg, run(run_id="r1"), LINK)
    assert out.status == "delivered" and out.flush.sent == 3
    [inc] = pd.incidents_for(DATA)
    assert inc["status"] == "triggered" and inc["severity"] == "critical"
    first = pd.accepted()[0]
    assert first["links"] == [{"href": LINK, "text": "reconciliation report"}]
    assert first["payload"]["custom_details"]["run_id"] == "r1"
    assert first["routing_key"] == "*" * 28 + KEY[-4:]  # the key arrived (the stand-in masks what it keeps)

    assert send_for(cfg, run(run_id="r2"), LINK).status == "delivered"
    [inc] = pd.incidents_for(DATA)  # one incident, updated
    assert (inc["status"], inc["triggers"], inc["events"]) == ("triggered", 2, 2)

    assert send_for(cfg, run(outcome=Outcome.CLEAN, run_id="r3"), LINK).status == "delivered"
    [inc] = pd.incidents_for(DATA)
    assert inc["status"] == "resolved" and inc["events"] == 3
    assert [i["dedup_key"] for i in pd.incidents()] == [DATA]  # resolves of never-opened keys open nothing
    assert outbox_entries(cfg) == ([], [])


def test_two_days_in_parallel_are_two_incidents(cfg, pd):
    days = ["2026-10-25", "2026-10-26"]
    outs = {}

    def go(day):
        outs[day] = send_for(cfg, run(day=day), None)

    threads = [threading.Thread(target=go, args=(d,)) for d in days]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {d: o.status for d, o in outs.items()} == {d: "delivered" for d in days}
    incs = {i["dedup_key"]: i for i in pd.incidents()}
    assert set(incs) == {f"trade-recon/test/trades/{d}" for d in days}
    assert all(i["status"] == "triggered" and i["events"] == 1 for i in incs.values())
    send_for(cfg, run(day="2026-10-26", outcome=Outcome.CLEAN), None)
    incs = {i["dedup_key"]: i["status"] for i in pd.incidents()}
    assert incs == {DATA: "triggered", "trade-recon/test/trades/2026-10-26": "resolved"}


def test_incomplete_run_opens_its_own_incident_and_leaves_the_data_one_alone(cfg, pd):
    send_for(cfg, run(), LINK)
    out = send_for(cfg, run(outcome=Outcome.INCOMPLETE, error="API unreachable: 2 of 24 windows failed"), LINK)
    assert out.status == "delivered"
    state = {i["dedup_key"]: (i["status"], i.get("severity")) for i in pd.incidents()}
    assert state == {DATA: ("triggered", "critical"), FAIL: ("triggered", "error")}
    [failure] = pd.incidents_for(FAIL)
    assert failure["summary"] == ("reconciliation could not complete: trades 2026-10-25 (test): "
                                  "API unreachable: 2 of 24 windows failed")
    # A later completed run closes the run failure and reports the data as it now is.
    send_for(cfg, run(run_id="r3"), LINK)
    state = {i["dedup_key"]: i["status"] for i in pd.incidents()}
    assert state == {DATA: "triggered", FAIL: "resolved"}
    assert pd.incidents_for(DATA)[0]["triggers"] == 2


def test_config_error_is_its_own_incident_resolved_by_a_later_run(cfg, pd):
    send_for(cfg, run(outcome=Outcome.CONFIG, error="unknown key 'api.pagesize'"), None)
    assert [(i["dedup_key"], i["status"]) for i in pd.incidents()] == [(CONF, "triggered")]
    send_for(cfg, run(outcome=Outcome.CLEAN), None)
    assert [(i["dedup_key"], i["status"]) for i in pd.incidents()] == [(CONF, "resolved")]


def test_pagerduty_down_queues_everything_then_flush_delivers_once_in_order(tmp_path, pd, caplog):
    down = make_cfg(tmp_path, closed_port_url())
    with caplog.at_level(logging.WARNING, logger="jobs.alerts"):
        first = send_for(down, run(day="2026-10-25"), LINK)
        second = send_for(down, run(day="2026-10-26", outcome=Outcome.INCOMPLETE, error="timeout"), LINK)
    assert (first.status, second.status) == ("queued", "queued")
    assert first.seqs == [1, 2, 3] and second.seqs == [4, 5]
    assert second.flush.pending == 5 and "did not take #1" in second.flush.error
    assert "stay queued" in caplog.text
    pending, dead = outbox_entries(down)
    assert [e.seq for e in pending] == [1, 2, 3, 4, 5] and dead == []
    assert pending[0].record["attempts"] == 2 and pending[1].record["attempts"] == 0  # only the head was tried

    up = make_cfg(tmp_path, pd.base_url)
    res = flush_outbox(up)
    assert (res.sent, res.pending, res.dead, res.error) == (5, 0, 0, None)
    assert keys(pd.accepted()) == keys(first.events) + keys(second.events)
    assert len(pd.events()) == 5  # each arrived exactly once
    assert flush_outbox(up).sent == 0


def test_500_past_the_client_retries_goes_to_the_outbox(cfg, pd):
    pd.fail(500, count=1000)
    out = send_for(cfg, run(), LINK)
    assert out.status == "queued" and "HTTP 500 after the client's retries" in out.flush.error
    # The client's own policy for 500: the first try and 2 retries, then we stop (order must hold).
    assert [e["http_status"] for e in pd.events()] == [500, 500, 500]
    pd.recover()
    later = send_for(cfg, run(outcome=Outcome.CLEAN, run_id="r2"), LINK)
    assert later.status == "delivered" and later.flush.sent == 6
    # The queued trigger went first, then this run's resolve: the incident ends resolved.
    assert keys(pd.accepted()) == keys(out.events) + keys(later.events)
    assert [(i["dedup_key"], i["status"]) for i in pd.incidents()] == [(DATA, "resolved")]


def test_429_past_the_configured_retries_goes_to_the_outbox(cfg, pd):
    pd.fail(429, count=1000)
    out = send_for(cfg, run(), None)
    assert out.status == "queued" and "HTTP 429" in out.flush.error
    assert len(pd.events()) == 4  # 1 + rate_limit_retries (3), not forever
    pd.recover()
    assert flush_outbox(cfg).sent == 3


def test_a_short_blip_is_absorbed_by_the_client_retries(cfg, pd):
    pd.fail(503, count=2)
    out = send_for(cfg, run(), None)
    assert out.status == "delivered"
    assert [e["http_status"] for e in pd.events()] == [503, 503, 202, 202, 202]
    assert len(pd.incidents_for(DATA)) == 1


def test_new_events_queue_behind_pending_ones(tmp_path, pd):
    down = make_cfg(tmp_path, closed_port_url())
    old = send_for(down, run(), None)
    assert old.status == "queued"
    up = make_cfg(tmp_path, pd.base_url)
    new = send_for(up, run(outcome=Outcome.CLEAN, run_id="r2"), None)
    assert new.status == "delivered" and new.seqs == [4, 5, 6]
    assert keys(pd.accepted()) == keys(old.events) + keys(new.events)
    assert pd.incidents_for(DATA)[0]["status"] == "resolved"


def test_oversized_summary_and_details_are_sent_within_the_limits(cfg, pd):
    huge = "v" * 200_000
    r = run(outcome=Outcome.FINDINGS,
            counts={f"kind_{i:03d}": {f"field_{j}": 1 for j in range(50)} for i in range(300)},
            samples=[Sample("value_mismatch", "price", {f"k{j}": huge for j in range(30)}, huge, huge)
                     for _ in range(20)])
    out = send_for(cfg, r, LINK)
    assert out.status == "delivered"
    [rec] = [e for e in pd.events() if e["event"]["event_action"] == "trigger"]
    assert rec["http_status"] == 202 and rec["bytes"] <= EVENT_LIMIT
    payload = rec["event"]["payload"]
    assert len(payload["summary"]) == SUMMARY_LIMIT and payload["summary"].endswith("...")
    assert payload["custom_details"]["details_shrunk"].startswith("level")
    assert payload["custom_details"]["findings_total"] == 300 * 50

    long_error = run(outcome=Outcome.INCOMPLETE, error="read timed out; " * 1000)
    assert send_for(cfg, long_error, LINK).status == "delivered"
    assert len(pd.incidents_for(FAIL)[0]["summary"]) == SUMMARY_LIMIT


def test_400_bad_routing_key_is_a_loud_dead_letter_never_retried(tmp_path, pd, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, "not-a-valid-routing-key")
    cfg = make_cfg(tmp_path, pd.base_url)
    with caplog.at_level(logging.ERROR, logger="jobs.alerts"):
        out = send_for(cfg, run(), None)
    assert out.status == "rejected" and out.flush.dead == 3 and out.flush.pending == 0
    assert "PagerDuty REJECTED event #1" in caplog.text
    assert "'routing_key' must be a 32 character integration key" in caplog.text  # the response body
    pending, dead = outbox_entries(cfg)
    assert pending == [] and [e.seq for e in dead] == [1, 2, 3]
    assert dead[0].record["rejected"]["status"] == 400
    requests = len(pd.events())
    assert requests == 3  # a 400 is not retried by the client either
    assert flush_outbox(cfg).sent == 0 and len(pd.events()) == requests  # nor by us

    # After fixing the key, a human requeues them and they go out.
    monkeypatch.setenv(KEY_ENV, KEY)
    assert requeue_dead(cfg) == [(1, 4), (2, 5), (3, 6)]
    assert flush_outbox(cfg).sent == 3 and pd.incidents_for(DATA)[0]["status"] == "triggered"


def test_the_routing_key_never_reaches_logs_outbox_or_output(tmp_path, pd, caplog, capsys):
    down = make_cfg(tmp_path, closed_port_url())
    up = make_cfg(tmp_path, pd.base_url)
    with caplog.at_level(logging.DEBUG):
        send_for(down, run(), LINK)
        pd.fail(500, count=3)
        flush_outbox(up)
        flush_outbox(up)
        send_for(up, run(), LINK, dry_run=True)
    assert caplog.records, "expected the client and our sender to log something"
    assert KEY not in caplog.text
    assert KEY not in capsys.readouterr().out
    for f in (tmp_path / "outbox").rglob("*"):
        if f.is_file():
            assert KEY not in f.read_text()


def test_dry_run_prints_the_events_with_the_key_masked_and_sends_nothing(cfg, pd, capsys):
    out = send_for(cfg, run(), LINK, dry_run=True)
    printed = capsys.readouterr().out
    assert out.status == "dry-run" and len(out.events) == 3
    assert '"routing_key": "' + "*" * 28 + KEY[-4:] + '"' in printed
    assert f'"dedup_key": "{DATA}"' in printed and '"event_action": "trigger"' in printed
    assert pd.events() == [] and outbox_entries(cfg) == ([], [])


def test_disabled_alerts_send_and_queue_nothing(tmp_path, pd):
    cfg = make_cfg(tmp_path, pd.base_url, TRADE_RECON__ALERTS__ENABLED="false")
    out = send_for(cfg, run(), None)
    assert out.status == "disabled" and len(out.events) == 3
    assert flush_outbox(cfg).skipped
    assert pd.events() == [] and outbox_entries(cfg) == ([], [])


def test_locked_run_sends_nothing(cfg, pd):
    assert send_for(cfg, run(outcome=Outcome.LOCKED), None).status == "nothing"
    assert pd.events() == []


def test_missing_routing_key_keeps_events_queued_and_preflight_says_so(cfg, pd, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=KEY_ENV):
        preflight(cfg)
    out = send_for(cfg, run(), None)
    assert out.status == "queued" and KEY_ENV in out.flush.error
    monkeypatch.setenv(KEY_ENV, KEY)
    preflight(cfg)
    assert flush_outbox(cfg).sent == 3


def test_a_routing_key_of_the_wrong_length_fails_the_preflight_without_showing_it(cfg, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "shortRKs3cr3t")
    with pytest.raises(ConfigError) as e:
        preflight(cfg)
    assert str(e.value) == (f"alerts.routing_key: the key from {KEY_ENV} has 13 characters; "
                            "a PagerDuty Events API v2 integration key has 32")


def test_plain_http_is_refused_off_loopback(tmp_path):
    with pytest.raises(ConfigError, match="alerts.base_url"):
        make_cfg(tmp_path, "http://events.pagerduty.com")
    assert make_cfg(tmp_path, "https://events.eu.pagerduty.com/").alerts.base_url == "https://events.eu.pagerduty.com"
    # The official client still checks https itself for anything that is not loopback.
    assert alerts._client(make_cfg(tmp_path, "https://events.pagerduty.com"), KEY).url == "https://events.pagerduty.com"


def _recon(tmp_path: Path, base_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "TRADE_RECON__ENV": "test", "TRADE_RECON__ALERTS__BASE_URL": base_url,
           "TRADE_RECON__ALERTS__ROUTING_KEY__ENV": KEY_ENV, "TRADE_RECON__ALERTS__OUTBOX": str(tmp_path / "outbox"),
           "TRADE_RECON__ALERTS__RETRY__SLEEP_S": "0.0005", KEY_ENV: KEY}
    return subprocess.run([sys.executable, "-m", "jobs.cli", "alerts", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


def test_cli_status_and_flush(tmp_path, pd):
    send_for(make_cfg(tmp_path, closed_port_url()), run(), None)
    r = _recon(tmp_path, closed_port_url(), "flush")
    assert r.returncode == 2 and "delivered 0, still queued 3" in r.stdout and "Traceback" not in r.stderr
    r = _recon(tmp_path, pd.base_url, "status")
    assert r.returncode == 0 and r.stdout.startswith("3 queued, 0 dead")
    assert f"queued #1 trigger {DATA} attempts=2" in r.stdout
    r = _recon(tmp_path, pd.base_url, "flush")
    assert r.returncode == 0 and "delivered 3, still queued 0" in r.stdout
    assert keys(pd.accepted())[0] == ("trigger", DATA)
    assert KEY not in r.stdout + r.stderr
    # Nothing is dead: a sequence number to requeue that names no dead event is a usage error.
    r = _recon(tmp_path, pd.base_url, "requeue", "9999")
    assert r.returncode == 3 and r.stdout == "" and "no dead event #9999 in the outbox" in r.stderr


def test_unwritable_outbox_still_sends_and_never_raises(tmp_path, pd, caplog):
    (tmp_path / "blocker").write_text("a file where the outbox directory should be")
    env = {"TRADE_RECON__ALERTS__OUTBOX": str(tmp_path / "blocker" / "outbox")}
    cfg = make_cfg(tmp_path, pd.base_url, **env)
    with caplog.at_level(logging.ERROR, logger="jobs.alerts"):
        assert send_for(cfg, run(), None).status == "delivered"
    assert "cannot use the outbox" in caplog.text and len(pd.accepted()) == 3
    assert flush_outbox(cfg).error.startswith("outbox ")
    down = make_cfg(tmp_path, closed_port_url(), **env)
    with caplog.at_level(logging.ERROR, logger="jobs.alerts"):
        out = send_for(down, run(), None)
    assert out.status == "failed" and out.flush.pending == 3
    assert f'"dedup_key": "{DATA}"' in caplog.text  # the whole event, to send by hand
    assert KEY not in caplog.text


@pytest.mark.parametrize("flags", [{"no_alert": True, "dry_run": False}, {"no_alert": False, "dry_run": True}])
def test_run_flags_print_the_events_and_neither_send_nor_flush(cfg, pd, capsys, flags):
    from jobs.cli import with_alert_mode

    pd.fail(500, count=100)
    send_for(cfg, run(day="2026-12-01"), LINK)  # queued: PagerDuty is failing
    pd.recover()
    queued = outbox_entries(cfg)[0]
    assert queued
    capsys.readouterr()
    quiet = with_alert_mode(cfg, **flags)
    assert flush_outbox(quiet).skipped
    out = send_for(quiet, run(), LINK)
    printed = capsys.readouterr().out
    assert out.status == "dry-run" and f'"dedup_key": "{DATA}"' in printed
    assert KEY not in printed
    assert pd.accepted() == [] and outbox_entries(cfg)[0] == queued
