"""Hand-built DatasetResults for the report, ledger and console tests: what a real run of the
October DST day looks like when the API drops null fields and loses the repeated hour."""

from __future__ import annotations

from datetime import date, timedelta

from reconcilers.contract import day_bounds_utc
from reconcilers.result import ABSENT, ApiStats, DatasetResult, ExpectationResult, HourCount, Outcome, Sample

DAY = "2026-10-25"  # 25 hours: the local 02:00-03:00 hour happens twice
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


def hours(day: str = DAY, per_hour: int = 400) -> list[HourCount]:
    start, end = day_bounds_utc(date.fromisoformat(day))
    out = []
    t = start
    while t < end:
        n = per_hour + (t.hour * 37) % 150
        out.append(HourCount(hour_utc=t.strftime("%Y-%m-%dT%H:%M:%SZ"), store=n, api=n))
        t += timedelta(hours=1)
    return out


def trade(trade_id: str, **over) -> dict:
    rec = {
        "trade_id": trade_id, "revision_no": 1, "exchange": "EPEX", "market_segment": "CONTINUOUS",
        "contract_id": "NX_QH_20261025_0100", "product_type": "QH", "delivery_start": "2026-10-25T01:00:00Z",
        "delivery_end": "2026-10-25T01:15:00Z", "price": "87.45", "quantity": "2.5", "buy_order_id": None,
        "sell_order_id": "O-991", "aggressor_side": None, "state": "COMPLETED",
    }
    rec.update(over)
    return rec


def findings_result(run_id: str = "20261026T030000Z-a1b2", env: str = "test") -> DatasetResult:
    hourly = hours()
    # The second 02:00 local hour (01:00Z) lost by the API, and a few records short at 14Z.
    hourly[3].api = 0
    hourly[15].api = hourly[15].store - 3
    lost = hourly[3].store + 3
    store_rows = sum(h.store for h in hourly)
    r = DatasetResult(
        dataset="trades", day=DAY, env=env, run_id=run_id, outcome=Outcome.FINDINGS,
        store_rows=store_rows, api_rows=store_rows - lost,
        counts={
            "null_dropped": {"buy_order_id": 700, "aggressor_side": 480, "trader_id": 20},
            "missing_in_api": {"*": lost},
            "value_mismatch": {"price": 2, "execution_time": 1},
            "expectation_failed": {"price": 1},
        },
        hourly=hourly,
        samples=[
            Sample("missing_in_api", None, {"trade_id": "T-100", "revision_no": 1}, store=trade("T-100"), api=ABSENT),
            Sample("null_dropped", "buy_order_id", {"trade_id": "T-7", "revision_no": 2}, store=None, api=ABSENT),
            Sample("value_mismatch", "price", {"trade_id": "T-8", "revision_no": 1}, store="87.45", api="87.46"),
            Sample("value_mismatch", "execution_time", {"trade_id": "T-9", "revision_no": 1},
                   store="2026-10-24T22:10:01.123Z", api="2026-10-24T22:10:01Z"),
            Sample("value_mismatch", None, {"trade_id": "T-10", "revision_no": 3},
                   store=trade("T-10", text="ok"), api=trade("T-10", text=HOSTILE, price="87.40")),
        ],
        expectations=[
            ExpectationResult("store", "expect_column_values_to_be_between", "price", True, unexpected_count=0),
            ExpectationResult("api", "expect_column_values_to_be_between", "price", False, observed=None,
                              unexpected_count=1, examples=["10450.00"], kwargs={"min_value": -9999, "max_value": 9999}),
        ],
        api_stats=ApiStats(windows=25, windows_failed=0, pages=180, records=store_rows - lost, retries=4, bytes=9_812_345),
        timings_s={"store_read": 3.2, "api_read": 41.7, "compare": 6.4, "expectations": 5.1},
        started_at="2026-10-26T03:00:00Z", finished_at="2026-10-26T03:01:02Z",
        metadata={"api_base_url": "http://127.0.0.1:8765"},
    )
    return r


def clean_result(run_id: str = "20261026T040000Z-c3d4", env: str = "test") -> DatasetResult:
    hourly = hours()
    n = sum(h.store for h in hourly)
    return DatasetResult(
        dataset="trades", day=DAY, env=env, run_id=run_id, outcome=Outcome.CLEAN, store_rows=n, api_rows=n,
        hourly=hourly,
        expectations=[ExpectationResult("api", "expect_column_values_to_not_be_null", "trade_id", True, unexpected_count=0)],
        api_stats=ApiStats(windows=25, pages=150, records=n, retries=0, bytes=8_000_000),
        timings_s={"store_read": 3.0, "api_read": 38.0, "compare": 6.0},
        started_at="2026-10-26T04:00:00Z", finished_at="2026-10-26T04:00:50Z",
    )


def incomplete_result(run_id: str = "20261026T050000Z-e5f6", env: str = "test") -> DatasetResult:
    # As a real run that stops in the replay: the comparison never counted the rows.
    return DatasetResult(
        dataset="trades", day=DAY, env=env, run_id=run_id, outcome=Outcome.INCOMPLETE,
        error="API window 2026-10-25T01:00Z..02:00Z failed after 6 attempts: HTTP 503 Service Unavailable",
        api_stats=ApiStats(windows=25, windows_failed=1, pages=90, records=5000, retries=6, bytes=4_000_000),
        timings_s={"store_read": 3.1, "api_read": 95.0},
        started_at="2026-10-26T05:00:00Z", finished_at="2026-10-26T05:01:40Z",
    )
