"""The suites as data: derived from the contract and config, changed by overrides. No Spark."""

from __future__ import annotations

from datetime import date

import great_expectations as gx
import pytest

from expectations import build_suite
from expectations.limits import limit_in_force
from jobs.config import ConfigError, ExpectationOverride, Expectations, PriceLimit
from reconcilers.contract import ORDERS, TRADES

DAY = date(2026, 12, 2)


def by_name(suite: gx.ExpectationSuite) -> dict:
    return {e.meta["name"]: e for e in suite.expectations}


def test_limit_in_force_is_the_latest_effective_on_or_before_the_day():
    limits = [
        PriceLimit(segment="CONTINUOUS", effective_from=date(2017, 11, 14), min=-9999, max=9999),
        PriceLimit(segment="CONTINUOUS", effective_from=date(2026, 12, 2), min=-9999, max=15000),
        PriceLimit(segment="IDA", effective_from=date(2024, 6, 13), min=-9999, max=9999),
    ]
    assert limit_in_force(limits, "CONTINUOUS", date(2026, 12, 1)).max == 9999
    assert limit_in_force(limits, "CONTINUOUS", date(2026, 12, 2)).max == 15000
    assert limit_in_force(limits, "CONTINUOUS", date(2030, 1, 1)).max == 15000
    assert limit_in_force(limits, "IDA", date(2024, 6, 12)) is None
    assert limit_in_force(limits, "DAY_AHEAD", DAY) is None


def test_suite_is_derived_from_the_contract():
    for ds in (TRADES, ORDERS):
        s = by_name(build_suite(ds, DAY, Expectations()))
        assert len(s) == len(build_suite(ds, DAY, Expectations()).expectations)  # names are unique
        assert {n.removeprefix("not_null.") for n in s if n.startswith("not_null.")} == {
            f.name for f in ds.fields if not f.nullable
        }
        for f in ds.fields:
            if f.enum:
                assert s[f"in_set.{f.name}"].value_set == list(f.enum)
        assert {n for n in s if n.startswith("on_tick.")} == {f"on_tick.{f.name}" for f in ds.fields if f.kind == "decimal"}
        assert s["key_unique"].meta["scope"] == "records" and all(k in s["key_unique"].meta["check"] for k in ds.key)
        assert {"delivery_period", "delivery_day_local", "revisions_contiguous", "revisions_ordered"} <= set(s)
    trades = by_name(build_suite(TRADES, DAY, Expectations()))
    assert trades["on_tick.price"].meta["check"] == "round(price, 2) <> price"
    assert trades["on_tick.quantity"].meta["check"] == "round(quantity, 1) <> quantity"
    assert "executed_before_delivery" in trades
    assert "executed_before_delivery" not in by_name(build_suite(ORDERS, DAY, Expectations()))


def test_price_limits_per_segment_and_day_orders_use_the_continuous_limit():
    cfg = Expectations(
        price_limits=[
            PriceLimit(segment="CONTINUOUS", effective_from=date(2017, 11, 14), min=-9999, max=9999),
            PriceLimit(segment="CONTINUOUS", effective_from=DAY, min=-9999, max=15000),
            PriceLimit(segment="IDA", effective_from=date(2024, 6, 13), min=-500, max=4000),
        ]
    )
    trades = by_name(build_suite(TRADES, DAY, cfg))
    assert (trades["price_within_limits.CONTINUOUS"].min_value, trades["price_within_limits.CONTINUOUS"].max_value) == (-9999, 15000)
    assert (trades["price_within_limits.IDA"].min_value, trades["price_within_limits.IDA"].max_value) == (-500, 4000)
    assert trades["price_within_limits.IDA"].meta["derive"] == "CASE WHEN market_segment = 'IDA' THEN price END"
    before = by_name(build_suite(TRADES, date(2024, 6, 12), cfg))
    assert before["price_within_limits.CONTINUOUS"].max_value == 9999
    assert "price_within_limits.IDA" not in before  # no IDA limit before it was in force
    orders = by_name(build_suite(ORDERS, DAY, cfg))
    assert [n for n in orders if n.startswith("price_within")] == ["price_within_limits.CONTINUOUS"]
    assert orders["price_within_limits.CONTINUOUS"].column == "price"
    assert "derive" not in orders["price_within_limits.CONTINUOUS"].meta
    assert orders["price_within_limits.CONTINUOUS"].max_value == 15000


def test_overrides_disable_relax_and_add():
    cfg = Expectations(
        overrides=[
            ExpectationOverride(dataset="trades", expectation="price_within_limits", enabled=False),
            ExpectationOverride(dataset="trades", expectation="in_set.state", kwargs={"mostly": 0.99}),
            ExpectationOverride(dataset="orders", expectation="in_set.state", enabled=False),
            ExpectationOverride(
                dataset="trades",
                expectation="max_quantity",
                kwargs={"type": "expect_column_max_to_be_between", "column": "quantity", "max_value": 500},
            ),
            ExpectationOverride(
                dataset="trades",
                expectation="never_added",
                enabled=False,
                kwargs={"type": "expect_column_values_to_be_unique", "column": "trade_id"},
            ),
        ]
    )
    trades = by_name(build_suite(TRADES, DAY, cfg))
    assert not any(n.startswith("price_within_limits") for n in trades)
    assert trades["in_set.state"].mostly == 0.99
    assert trades["max_quantity"].max_value == 500 and trades["max_quantity"].column == "quantity"
    assert "never_added" not in trades
    assert "in_set.state" in by_name(build_suite(ORDERS, DAY, Expectations()))
    assert "in_set.state" not in by_name(build_suite(ORDERS, DAY, cfg))


@pytest.mark.parametrize(
    "override, message",
    [
        (ExpectationOverride(dataset="trades", expectation="price_in_limits", enabled=False), "matches no expectation"),
        (ExpectationOverride(dataset="trade", expectation="key_unique", enabled=False), "unknown dataset 'trade'"),
        (ExpectationOverride(dataset="trades", expectation="x", kwargs={"type": "expect_the_moon"}), "unknown GX expectation type"),
        (ExpectationOverride(dataset="trades", expectation="key_unique", kwargs={"mostly": "most"}), "invalid arguments"),
        (
            ExpectationOverride(
                dataset="orders",
                expectation="x",
                kwargs={"type": "expect_column_values_to_not_be_null", "column": "price_eur"},
            ),
            "no column price_eur in the orders contract",
        ),
    ],
)
def test_bad_overrides_are_config_errors_naming_the_override(override, message):
    ds = ORDERS if override.dataset == "orders" else TRADES
    with pytest.raises(ConfigError, match=message):
        build_suite(ds, DAY, Expectations(overrides=[override]))
