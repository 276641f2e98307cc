"""JSON page -> Arrow decoding: every contract kind, exactly, with presence and bad-type bits."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import orjson
import pytest

from jobs.api_decode import PageDecodeError, PageDecoder
from reconcilers.contract import ORDERS, TRADES

D = PageDecoder(TRADES)


def bit(ds, name: str) -> int:
    return 1 << ds.field_index(name)


def decode(text: bytes | str, decoder=D, window: int = 0):
    data = orjson.loads(text)
    return decoder.decode(data, window)


def col(batch, name):
    return batch.column(name).to_pylist()


def test_decimals_are_exact_not_rounded():
    b = decode('[{"price": 87.455}, {"price": 87.45}, {"price": 85.00}, {"price": -0.05}, {"price": 0},'
               ' {"price": 9999}, {"price": 1e-10}, {"price": 123456789012.34}, {"price": -9999.99}]')
    assert col(b, "price") == [Decimal("87.455"), Decimal("87.45"), Decimal("85"), Decimal("-0.05"), Decimal(0),
                               Decimal(9999), Decimal("1E-10"), Decimal("123456789012.34"), Decimal("-9999.99")]
    assert col(b, "price")[0] != Decimal("87.45")
    assert col(b, "_bad_type") == [0] * 9


def test_decimal_that_cannot_be_held_exactly_is_bad_typed_not_rounded():
    b = decode('[{"price": 0.30000000000000004}, {"price": 1e-11}, {"price": 1e30}, {"price": 12345678901234567890}]')
    assert col(b, "price") == [None, None, None, Decimal("12345678901234567890")]
    p = bit(TRADES, "price")
    assert col(b, "_bad_type") == [p, p, p, 0]
    assert [r and dict(r)["price"] for r in col(b, "_raw")] == ["0.30000000000000004", "1e-11", "1e+30", None]


def test_34_digit_ids_stay_strings_and_numbers_are_type_mismatch():
    tid = "2026102548151623420000000000007919"
    b = decode(f'[{{"tradeId": "{tid}"}}, {{"tradeId": {tid}}}]')
    assert col(b, "trade_id") == [tid, None]
    assert col(b, "_bad_type") == [0, bit(TRADES, "trade_id")]
    # The JSON text of the bad value is kept for the samples.
    assert dict(col(b, "_raw")[1])["trade_id"].replace(".", "").startswith("2026102548")


def test_empty_string_null_and_absent_are_three_different_things():
    b = decode('[{"traderId": ""}, {"traderId": null}, {}]')
    assert col(b, "trader_id") == ["", None, None]
    t = bit(TRADES, "trader_id")
    present = col(b, "_present")
    assert [p & t for p in present] == [t, t, 0]
    assert col(b, "_bad_type") == [0, 0, 0]


def test_bools_are_not_ints_and_ints_are_not_bools():
    b = decode('[{"revisionNo": true, "crossPx": 1, "selfTrade": false, "price": true},'
               ' {"revisionNo": 2, "crossPx": true, "selfTrade": "false", "price": 1}]')
    assert col(b, "revision_no") == [None, 2]
    assert col(b, "cross_px") == [None, True]
    assert col(b, "self_trade") == [False, None]
    assert col(b, "price") == [None, Decimal(1)]
    bad = col(b, "_bad_type")
    assert bad[0] == bit(TRADES, "revision_no") | bit(TRADES, "cross_px") | bit(TRADES, "price")
    assert bad[1] == bit(TRADES, "self_trade")
    assert dict(col(b, "_raw")[0]) == {"revision_no": "true", "cross_px": "1", "price": "true"}


def test_int_kinds_reject_floats_and_out_of_range():
    b = decode('[{"revisionNo": 1.0}, {"revisionNo": 9223372036854775807}, {"revisionNo": 9223372036854775808}]')
    assert col(b, "revision_no") == [None, 9223372036854775807, None]
    r = bit(TRADES, "revision_no")
    assert col(b, "_bad_type") == [r, 0, r]


def test_timestamps_seconds_and_milliseconds_to_utc_instants():
    b = decode('[{"deliveryStart": "2026-10-25T01:00:00Z", "executionTime": "2026-10-24T23:59:59.123Z"},'
               ' {"deliveryStart": "2026-10-25T02:00:00+01:00", "executionTime": "2026-10-24T23:59:59.5Z"}]')
    utc = timezone.utc
    assert [v.astimezone(utc) for v in col(b, "delivery_start")] == [datetime(2026, 10, 25, 1, tzinfo=utc)] * 2
    assert [v.astimezone(utc) for v in col(b, "execution_time")] == [
        datetime(2026, 10, 24, 23, 59, 59, 123000, tzinfo=utc), datetime(2026, 10, 24, 23, 59, 59, 500000, tzinfo=utc)]


@pytest.mark.parametrize("bad", ['"2026-10-25T01:00:00"', '"2026-13-25T01:00:00Z"', '"2026-10-25 01:00:00Z"',
                                 '"yesterday"', '""', "1793235600", '"2026-10-25T25:00:00Z"'])
def test_unparsable_timestamps_are_type_mismatch(bad):
    b = decode(f'[{{"deliveryStart": {bad}}}, {{"deliveryStart": "2026-10-25T01:00:00Z"}}]')
    assert col(b, "delivery_start")[0] is None and col(b, "delivery_start")[1] is not None
    assert col(b, "_bad_type") == [bit(TRADES, "delivery_start"), 0]
    assert dict(col(b, "_raw")[0])["delivery_start"] == bad


def test_dates():
    b = decode('[{"deliveryDay": "2026-03-29"}, {"deliveryDay": "2026-02-30"}, {"deliveryDay": "29.03.2026"}]')
    assert col(b, "delivery_day") == [date(2026, 3, 29), None, None]
    d = bit(TRADES, "delivery_day")
    assert col(b, "_bad_type") == [0, d, d]


def test_wrong_json_types_of_every_kind():
    b = decode('[{"exchange": ["EPEX"], "quantity": "1.5", "cancelledAt": 1, "crossPx": null, "revisionNo": "1"}]')
    assert col(b, "exchange") == [None] and col(b, "quantity") == [None] and col(b, "cancelled_at") == [None]
    expect = bit(TRADES, "exchange") | bit(TRADES, "quantity") | bit(TRADES, "cancelled_at") | bit(TRADES, "revision_no")
    assert col(b, "_bad_type") == [expect]
    assert dict(col(b, "_raw")[0]) == {"exchange": '["EPEX"]', "quantity": '"1.5"', "cancelled_at": "1",
                                       "revision_no": '"1"'}


def test_full_record_present_bits_and_window():
    rec = {f.json: None for f in ORDERS.fields}
    b = PageDecoder(ORDERS).decode([rec, {}], 7)
    assert col(b, "_present") == [(1 << len(ORDERS.fields)) - 1, 0]
    assert col(b, "_window") == [7, 7]
    assert b.schema.names[: len(ORDERS.fields)] == ORDERS.names


def test_records_that_are_not_objects_fail_the_page():
    with pytest.raises(PageDecodeError, match="array"):
        decode('[{"price": 1}, [1, 2]]')


def test_outside_window():
    b = decode('[{"deliveryStart": "2026-10-25T01:00:00Z"}, {"deliveryStart": "2026-10-25T02:00:00Z"},'
               ' {"deliveryStart": null}]')
    start = int(datetime(2026, 10, 25, 1, tzinfo=timezone.utc).timestamp()) * 1_000_000
    assert D.outside(b, start, start + 3600 * 1_000_000) == (1, "2026-10-25T02:00:00Z")
    assert D.outside(b, start, start + 7200 * 1_000_000) == (0, None)
