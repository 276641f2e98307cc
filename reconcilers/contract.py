"""The dataset contract: the single definition of `trades` and `orders`.

Everything else derives from this module: the Parquet/Arrow schema of the store, the Spark
schemas on both sides of the comparison, the JSON names and types the API serves (and its
OpenAPI document), the client's parser and the comparison rules. Nothing else in the repo
lists fields, JSON names, types or nullability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo

import pyarrow as pa

MARKET_TZ = ZoneInfo("Europe/Amsterdam")

Kind = Literal["string", "int", "decimal", "bool", "timestamp", "date"]

# JSON type each contract kind must arrive as. A value of another JSON type is a
# `type_mismatch` finding: a price sent as a string, an id sent as a number.
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "decimal": (int, float),
    "bool": (bool,),
    "timestamp": (str,),
    "date": (str,),
}


@dataclass(frozen=True)
class Field:
    name: str  # snake_case column name in the store and in Spark
    json: str  # camelCase key in the API's JSON
    kind: Kind
    nullable: bool = False
    precision: int | None = None  # decimals: total digits
    scale: int | None = None  # decimals: digits after the point (0.01 tick -> 2)
    unit: Literal["s", "ms"] | None = None  # timestamps: precision served and compared
    enum: tuple[str, ...] | None = None
    description: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        if self.kind == "decimal":
            return pa.decimal128(self.precision, self.scale)
        if self.kind == "timestamp":
            return pa.timestamp("us", tz="UTC")
        return {
            "string": pa.string(),
            "int": pa.int64(),
            "bool": pa.bool_(),
            "date": pa.date32(),
        }[self.kind]

    @property
    def zero_value(self):
        """The value Go `omitempty` / proto3 serializers leave out as 'empty'."""
        return {"string": "", "int": 0, "decimal": 0, "bool": False}.get(self.kind)


@dataclass(frozen=True)
class Dataset:
    name: str
    path: str  # URL path segment of the API
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    # The column the day is partitioned on and the column API windows slice on.
    day_field: str = "delivery_day"
    window_field: str = "delivery_start"
    description: str = ""

    @cached_property
    def by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @cached_property
    def by_json(self) -> dict[str, Field]:
        return {f.json: f for f in self.fields}

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def value_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.name not in self.key)

    @property
    def nullable_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.nullable)

    def field_index(self, name: str) -> int:
        return self.names.index(name)

    def arrow_schema(self, *, with_day: bool = True) -> pa.Schema:
        """Store schema. The day column lives in the Hive partition path, not in the files."""
        return pa.schema(
            [
                pa.field(f.name, f.arrow_type, nullable=f.nullable)
                for f in self.fields
                if with_day or f.name != self.day_field
            ]
        )


def _ts(name: str, json: str, unit: Literal["s", "ms"] = "s", nullable: bool = False, d: str = "") -> Field:
    return Field(name, json, "timestamp", nullable=nullable, unit=unit, description=d)


def _price(name: str = "price", json: str = "price", nullable: bool = False, d: str = "EUR/MWh, tick 0.01") -> Field:
    return Field(name, json, "decimal", nullable=nullable, precision=12, scale=2, description=d)


def _qty(name: str, json: str, nullable: bool = False, d: str = "MW, lot 0.1") -> Field:
    return Field(name, json, "decimal", nullable=nullable, precision=12, scale=1, description=d)


EXCHANGES = ("EPEX", "NORDPOOL")
SIDES = ("BUY", "SELL")
PRODUCT_TYPES = ("QH", "HH", "H")
PRODUCT_MINUTES = {"QH": 15, "HH": 30, "H": 60}
AREAS = (
    "10YNL----------L",
    "10YBE----------2",
    "10Y1001A1001A82H",  # DE-LU
    "10YFR-RTE------C",
)

TRADES = Dataset(
    name="trades",
    path="trades",
    key=("trade_id", "revision_no"),
    description="One row per trade revision, both legs on one row.",
    fields=(
        Field("trade_id", "tradeId", "string", description="Exchange trade id, up to 34 digits"),
        Field("revision_no", "revisionNo", "int", description="Bumped on dispute, cancellation, recall"),
        Field("exchange", "exchange", "string", enum=EXCHANGES),
        Field("market_segment", "marketSegment", "string", enum=("CONTINUOUS", "IDA")),
        Field("contract_id", "contractId", "string"),
        Field("contract_name", "contractName", "string"),
        Field("product_type", "productType", "string", enum=PRODUCT_TYPES),
        _ts("delivery_start", "deliveryStart", d="UTC instant"),
        _ts("delivery_end", "deliveryEnd", d="UTC instant"),
        Field("delivery_day", "deliveryDay", "date", description="Europe/Amsterdam calendar day"),
        _ts("execution_time", "executionTime", unit="ms"),
        _ts("updated_at", "updatedAt", unit="ms"),
        _price(),
        _qty("quantity", "quantity"),
        Field("buy_delivery_area", "buyDeliveryArea", "string", enum=AREAS),
        Field("sell_delivery_area", "sellDeliveryArea", "string", enum=AREAS),
        Field("buy_order_id", "buyOrderId", "string", nullable=True, description="Null when the leg is on another exchange"),
        Field("sell_order_id", "sellOrderId", "string", nullable=True, description="Null when the leg is on another exchange"),
        Field("cross_px", "crossPx", "bool", description="One leg on another exchange"),
        Field("aggressor_side", "aggressorSide", "string", nullable=True, enum=SIDES, description="Null for cross-border trades"),
        Field("remote_trade_id", "remoteTradeId", "string", nullable=True),
        Field("member_id", "memberId", "string"),
        Field("trader_id", "traderId", "string", nullable=True),
        Field("client_order_id", "clientOrderId", "string", nullable=True),
        Field("self_trade", "selfTrade", "bool"),
        Field("state", "state", "string", enum=("COMPLETED", "DISPUTED", "CANCELLED", "RECALLED")),
        _ts("cancellation_deadline", "cancellationDeadline", nullable=True),
        _ts("cancelled_at", "cancelledAt", unit="ms", nullable=True),
    ),
)

ORDERS = Dataset(
    name="orders",
    path="orders",
    key=("order_id", "revision_no"),
    description="One row per order revision (event).",
    fields=(
        Field("order_id", "orderId", "string"),
        Field("revision_no", "revisionNo", "int"),
        Field("initial_order_id", "initialOrderId", "string"),
        Field("parent_order_id", "parentOrderId", "string", nullable=True, description="Iceberg parent"),
        Field("client_order_id", "clientOrderId", "string", nullable=True),
        Field("exchange", "exchange", "string", enum=EXCHANGES),
        Field("contract_id", "contractId", "string"),
        Field("product_type", "productType", "string", enum=PRODUCT_TYPES),
        _ts("delivery_start", "deliveryStart"),
        _ts("delivery_end", "deliveryEnd"),
        Field("delivery_day", "deliveryDay", "date", description="Europe/Amsterdam calendar day"),
        Field("delivery_area", "deliveryArea", "string", enum=AREAS),
        Field("side", "side", "string", enum=SIDES),
        Field("order_type", "orderType", "string", enum=("LIMIT", "ICEBERG")),
        Field("time_in_force", "timeInForce", "string", enum=("GFS", "GTD", "IOC", "FOK")),
        _price(),
        _qty("quantity", "quantity", d="MW, original quantity"),
        _qty("remaining_quantity", "remainingQuantity", nullable=True),
        _qty("iceberg_clip_size", "icebergClipSize", nullable=True),
        _price("iceberg_clip_price_change", "icebergClipPriceChange", nullable=True, d="EUR/MWh"),
        _ts("expire_time", "expireTime", nullable=True, d="GTD only, multiple of 5 minutes"),
        Field("state", "state", "string", enum=("ACTIVE", "HIBERNATED", "INACTIVE")),
        Field(
            "action",
            "action",
            "string",
            enum=(
                "USER_ADDED",
                "USER_MODIFIED",
                "USER_DELETED",
                "PARTIAL_EXECUTION",
                "FULL_EXECUTION",
                "ICEBERG_SLICE_ADDED",
                "SYSTEM_EXPIRED",
            ),
        ),
        _ts("created_at", "createdAt", unit="ms"),
        _ts("updated_at", "updatedAt", unit="ms"),
        Field("member_id", "memberId", "string"),
        Field("trader_id", "traderId", "string", nullable=True),
        Field("text", "text", "string", nullable=True, description="Free text; may be empty, which is not null"),
    ),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (TRADES, ORDERS)}


def dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}") from None


def day_bounds_utc(day: date) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of a Europe/Amsterdam delivery day (23, 24 or 25 hours)."""
    start = datetime.combine(day, time(0), MARKET_TZ).astimezone(timezone.utc)
    end = datetime.combine(day + timedelta(days=1), time(0), MARKET_TZ).astimezone(timezone.utc)
    return start, end


def delivery_day_of(instant: datetime) -> date:
    return instant.astimezone(MARKET_TZ).date()


def quarter_hours(day: date) -> int:
    start, end = day_bounds_utc(day)
    return int((end - start) / timedelta(minutes=15))
