"""Console output: the final line, summaries, progress in each mode, one-line errors."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest

from jobs import console
from jobs.config import load_config
from jobs.ledger import ledger_path
from jobs.report import write_report
from report_samples import clean_result, findings_result, incomplete_result


@pytest.fixture(autouse=True)
def normal_mode():
    console.configure()
    yield
    console.configure()


@pytest.fixture
def env(tmp_path):
    return {"TRADE_RECON__ENV": "test", "TRADE_RECON__REPORT__DIR": str(tmp_path / "reports")}


@pytest.fixture
def cfg(env):
    return load_config(environ=env)


def recon(env, *args, cwd):
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env}, timeout=120)


def test_final_line_for_one_dataset(cfg):
    r = findings_result()
    paths = write_report(r, cfg)
    assert console.final_line([r], [paths]) == (
        "FINDINGS trades 2026-10-25: 1,643 findings (null_dropped 1,200, missing_in_api 440, value_mismatch 3); "
        f"1 failed expectation · report: {paths.html.resolve()}"
    )


def test_final_line_puts_the_worst_first_and_says_when_no_report_was_written(cfg):
    clean, inc = clean_result(), incomplete_result()
    clean.dataset = "orders"
    line = console.final_line([clean, inc], {"orders": write_report(clean, cfg)})
    first, second = line.split(" | ")
    assert first == ("INCOMPLETE trades 2026-10-25: the job could not complete (not a data verdict): API window "
                     "2026-10-25T01:00Z..02:00Z failed after 6 attempts: HTTP 503 Service Unavailable · no report written")
    assert second.startswith("CLEAN orders 2026-10-25: all 12,026 store rows served complete and unaltered · report: /")
    assert "\n" not in line


def test_print_final_in_json_mode_is_one_object(cfg, capsys):
    console.configure(log_format="json")
    r = findings_result()
    console.print_final([r, clean_result()], [write_report(r, cfg), None])
    out, err = capsys.readouterr()
    assert err == "" and len(out.splitlines()) == 1
    d = json.loads(out)
    assert (d["event"], d["verdict"], d["exit_code"]) == ("final", "findings", 1)
    assert [x["verdict"] for x in d["runs"]] == ["findings", "clean"]
    assert d["runs"][0]["by_kind"]["null_dropped"] == 1200 and d["runs"][1]["report"] is None


def test_print_summary_per_mode(cfg, capsys):
    r = findings_result()
    paths = write_report(r, cfg)
    console.print_summary(r, paths)
    out = capsys.readouterr().out
    assert "FINDINGS trades 2026-10-25" in out and "buy_order_id" in out and "01:00Z −437" in out
    assert "api expect_column_values_to_be_between(price)" in out and str(paths.html) in out

    console.configure(quiet=True)
    console.print_summary(r, paths)
    assert capsys.readouterr() == ("", "")

    console.configure(log_format="json")
    console.print_summary(r, paths)
    err = capsys.readouterr().err
    d = json.loads(err)
    assert d["event"] == "summary" and d["counts"]["null_dropped"]["buy_order_id"] == 700 and d["hours_with_gaps"] == 2


def test_summary_of_a_run_that_stopped_before_the_comparison_counts_no_rows(cfg, capsys):
    r = incomplete_result()
    console.print_summary(r, write_report(r, cfg))
    out = " ".join(capsys.readouterr().out.split())
    assert "rows not counted · API pages 90, retries 6, windows failed 1" in out and "store rows" not in out

    done = findings_result()
    console.print_summary(done, write_report(done, cfg))
    assert f"store rows {done.store_rows:,} · API rows {done.api_rows:,}" in capsys.readouterr().out


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def run_progress(**kw) -> str:
    stream, clock = io.StringIO(), Clock()
    with console.Progress("trades 2026-10-25", 25, interval_s=10, clock=clock, stream=stream, **kw) as p:
        for _ in range(25):
            clock.t += 1
            p.update(windows=1, pages=4, records=8000, bytes=1_000_000)
        p.update(retries=2)
    return stream.getvalue()


def test_progress_plain_lines_at_the_interval():
    lines = run_progress(tty=False).splitlines()
    assert lines == [
        "trades 2026-10-25: windows 10/25 · pages 40 · records 80,000 · 8,000 rec/s · 10 s",
        "trades 2026-10-25: windows 20/25 · pages 80 · records 160,000 · 8,000 rec/s · 20 s",
        "trades 2026-10-25: windows 25/25 · pages 100 · records 200,000 · 8,000 rec/s · 2 retries · 25 s · done",
    ]


def test_progress_json_lines():
    console.configure(log_format="json")
    rows = [json.loads(line) for line in run_progress(tty=True).splitlines()]
    assert [(r["event"], r["windows"], r["done"]) for r in rows] == [("progress", 10, False), ("progress", 20, False),
                                                                     ("progress", 25, True)]
    assert rows[-1]["records"] == 200_000 and rows[-1]["bytes"] == 25_000_000 and rows[-1]["records_per_s"] == 8000


def test_progress_quiet_prints_nothing_and_rich_on_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich sizes its line to the terminal; a StringIO has none
    console.configure(quiet=True)
    assert run_progress(tty=True) == ""
    console.configure()
    out = run_progress(tty=True)
    assert "25/25" in out and "records 200,000" in out


def test_errors_are_one_line_plus_a_hint(capsys):
    assert console.error("cannot read\n  the store", "check store.path", code=2) == 2
    assert capsys.readouterr().err == "error: cannot read the store\nhint: check store.path\n"
    try:
        {}["missing"]
    except KeyError as e:
        assert console.unexpected(e) == 2
    err = capsys.readouterr().err
    assert err == "error: KeyError: 'missing'\nhint: rerun with --debug for the stack trace\n"
    console.configure(debug=True)
    try:
        {}["missing"]
    except KeyError as e:
        console.unexpected(e)
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.endswith("error: KeyError: 'missing'\n")


def test_debug_shows_the_jobs_own_debug_lines_but_not_each_gateway_call(capsys):
    import logging

    console.configure(debug=True)
    logging.getLogger("trade_recon.run").debug("our own detail")
    logging.getLogger("py4j.clientserver").debug("Command to send: c\no0\ncount")
    logging.getLogger("py4j.clientserver").info("Closing down clientserver connection")
    err = capsys.readouterr().err
    assert "our own detail" in err and "Closing down clientserver connection" in err
    assert "Command to send" not in err


def test_unexpected_failure_through_the_cli(cfg, env, tmp_path):
    path = ledger_path(cfg)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    out = recon(env, "history", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["error: DatabaseError: file is not a database",
                                       "hint: rerun with --debug for the stack trace"]
    out = recon(env, "--debug", "history", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback (most recent call last)" in out.stderr
    out = recon(env, "--log-format", "json", "history", cwd=tmp_path)
    assert out.returncode == 2
    d = json.loads(out.stderr)
    assert (d["event"], d["message"], d["exit_code"]) == ("error", "DatabaseError: file is not a database", 2)


def test_quiet_and_json_modes_through_the_cli(env, tmp_path):
    out = recon(env, "--quiet", "history", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    out = recon(env, "history", cwd=tmp_path)
    assert out.stderr.startswith("no runs recorded in ")
    out = recon(env, "--log-format", "json", "report", "show", "2026-10-25", cwd=tmp_path)
    assert out.returncode == 3 and out.stdout == ""
    events = [json.loads(line) for line in out.stderr.splitlines()]
    assert [e["event"] for e in events] == ["info", "info", "error"] and events[-1]["hint"].startswith("run `recon run")


def test_logs_follow_stderr_after_it_is_replaced(monkeypatch):
    # configure() runs once per process, but stderr may be swapped later (a test's capture, a
    # daemon closing its terminal); a record must go to the current stderr, never the closed one.
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    console.configure()
    monkeypatch.setattr(sys, "stderr", second)
    first.close()
    logging.getLogger("jobs.test").warning("still heard")
    assert "WARNING jobs.test: still heard" in second.getvalue()


def test_library_info_stays_out_of_the_console_even_when_a_module_sets_its_own_level(capsys):
    # Great Expectations sets logging.INFO on some of its module loggers when they are imported.
    console.configure()
    noisy = logging.getLogger("great_expectations.data_context.types.base")
    noisy.setLevel(logging.INFO)
    noisy.info("Created temporary directory")
    noisy.warning("a real problem")
    logging.getLogger("trade_recon.run").info("our own note")
    err = capsys.readouterr().err
    assert "Created temporary directory" not in err
    assert "a real problem" in err and "our own note" in err
