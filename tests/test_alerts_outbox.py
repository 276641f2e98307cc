"""The durable outbox on a real filesystem: order, monotonic numbers, atomic files, locking."""

from __future__ import annotations

import json
import threading

import pytest

from jobs.alert_outbox import Outbox


def ev(i: int) -> dict:
    return {"event_action": "resolve", "dedup_key": f"trade-recon/t/trades/2026-01-{i:02d}"}


def test_append_keeps_order_and_numbers_only_grow(tmp_path):
    box = Outbox(tmp_path / "ob")
    with box.locked():
        seqs = [box.append(ev(i)).seq for i in range(1, 4)]
        assert seqs == [1, 2, 3]
        for e in box.pending():
            box.delivered(e)
        assert box.pending() == []
        # An emptied outbox does not reuse numbers: order across runs stays the file order.
        assert box.append(ev(4)).seq == 4
        assert [e.seq for e in box.append_all([ev(5), ev(6)])] == [5, 6]
        box.delivered(box.pending()[-1])
        box.delivered(box.pending()[-1])
    names = sorted(p.name for p in (tmp_path / "ob").iterdir())
    assert names == [".lock", ".seq", "000000000004.json", "dead"]  # no temporary files left behind
    rec = json.loads((tmp_path / "ob" / "000000000004.json").read_text())
    assert rec["event"] == ev(4) and rec["attempts"] == 0 and rec["seq"] == 4


def test_counter_lost_files_still_win(tmp_path):
    box = Outbox(tmp_path)
    with box.locked():
        box.append(ev(1))
        first = box.append(ev(2))
        box.bury(first, {"status": 400, "body": "bad"})
        (tmp_path / ".seq").unlink()
        assert box.append(ev(3)).seq == 3


def test_failures_are_recorded_and_dead_events_requeue_at_the_end(tmp_path):
    box = Outbox(tmp_path)
    with box.locked():
        a, b = box.append(ev(1)), box.append(ev(2))
        box.note_failure(a, "HTTP 500")
        box.note_failure(box.pending()[0], "HTTP 503")
        rec = box.pending()[0].record
        assert rec["attempts"] == 2 and rec["last_error"] == "HTTP 503"
        box.bury(box.pending()[0], {"status": 400, "body": "Event object is invalid"})
        assert [e.seq for e in box.pending()] == [2] and [e.seq for e in box.dead()] == [1]
        assert box.dead()[0].record["rejected"]["status"] == 400
        new = box.requeue(box.dead()[0])
        assert new.seq == 3 and box.dead() == []
        assert [(e.seq, e.event) for e in box.pending()] == [(2, ev(2)), (3, ev(1))]


def test_routing_key_is_never_stored(tmp_path):
    box = Outbox(tmp_path)
    with box.locked(), pytest.raises(ValueError, match="routing key"):
        box.append({**ev(1), "routing_key": "k" * 32})
    assert box.pending() == []


def test_an_unreadable_file_is_listed_not_fatal(tmp_path):
    box = Outbox(tmp_path)
    with box.locked():
        box.append(ev(1))
    (tmp_path / "000000000001.json").write_text("{not json")
    [entry] = box.pending()
    assert entry.event is None and "unreadable" in entry.record


def test_concurrent_writers_get_distinct_numbers(tmp_path):
    def writer(k: int) -> None:
        box = Outbox(tmp_path)  # each its own handle, like two processes
        for i in range(25):
            with box.locked():
                box.append({**ev(1), "writer": k, "i": i})

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = Outbox(tmp_path).pending()
    assert [e.seq for e in entries] == list(range(1, 76))
    for k in range(3):  # each writer's own events keep their order
        assert [e.event["i"] for e in entries if e.event["writer"] == k] == list(range(25))
