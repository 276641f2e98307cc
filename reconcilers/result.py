"""The result of reconciling one dataset for one delivery day.

This is the only thing the report writer and the alert sender consume. It holds aggregates
and capped samples, never rows, so it stays small however large the day is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any

# What the on-call engineer reads. Order is severity order for display.
FINDING_KINDS: dict[str, str] = {
    "missing_in_api": "The store holds this key but the API never served it: the API lost a record.",
    "value_dropped": "The store has a value but the API omitted the key: the serializer dropped a real value "
    "(Go omitempty / proto3 drop zero and false).",
    "value_nulled": "The store has a value but the API sent an explicit null: the API lost the value.",
    "value_mismatch": "Both sides have the key but the values differ after normalisation: the API altered data "
    "(rounding, a shifted or truncated timestamp, a wrong tick).",
    "type_mismatch": "The JSON type does not fit the contract (a price sent as a string, an id as a number): "
    "a serializer or schema change.",
    "unexpected_in_api": "The API served a key the store does not hold: a phantom or stale record.",
    "duplicate_key": "The same key appears more than once on one side: paging repeated a record, or the store "
    "holds a duplicate.",
    "null_dropped": "The store value is null and the API omitted the key: the serializer drops null fields "
    "(Jackson NON_NULL, pydantic exclude_none). Consumers cannot tell 'null' from 'field removed'.",
    "null_key": "A key column is null on one side: the record cannot be matched and is reported, never paired.",
    "expectation_failed": "A data-quality expectation failed on one side (store or API): the data is implausible "
    "even where both sides agree.",
}


# What a sample shows on the API side when the API omitted the key altogether (not a null).
ABSENT = "<absent>"


class Outcome(IntEnum):
    """Exit codes. The worst outcome of a run's datasets is the process exit code."""

    CLEAN = 0
    FINDINGS = 1
    INCOMPLETE = 2
    CONFIG = 3
    LOCKED = 4  # another run holds the lock for this dataset and day

    @property
    def verdict(self) -> str:
        return {0: "clean", 1: "findings", 2: "incomplete", 3: "config-error", 4: "locked"}[int(self)]


@dataclass
class Sample:
    kind: str
    field: str | None  # None for record-level kinds (missing_in_api, duplicate_key ...)
    key: dict[str, Any]
    store: Any = None  # JSON-friendly rendering of the store value or record
    api: Any = None  # JSON-friendly rendering of the API value or record; ABSENT when the key was omitted
    side: str | None = None  # for duplicate_key / null_key: "store" or "api"


@dataclass
class HourCount:
    hour_utc: str  # ISO instant of the hour start, "2026-10-25T00:00:00Z"
    store: int
    api: int


@dataclass
class ApiStats:
    windows: int = 0
    windows_failed: int = 0
    pages: int = 0
    records: int = 0
    retries: int = 0
    bytes: int = 0


@dataclass
class ExpectationResult:
    side: str  # "store" | "api"
    expectation: str  # expectation type
    column: str | None
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetResult:
    dataset: str
    day: str  # ISO date
    env: str
    run_id: str
    outcome: Outcome = Outcome.CLEAN
    store_rows: int = 0
    api_rows: int = 0
    # kind -> field (or "*" for record-level kinds) -> count
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    hourly: list[HourCount] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    expectations: list[ExpectationResult] = field(default_factory=list)
    api_stats: ApiStats = field(default_factory=ApiStats)
    timings_s: dict[str, float] = field(default_factory=dict)
    # Set when the run could not complete: what failed, in one line, with no secrets.
    error: str | None = None
    # ISO instants (UTC) of the run; the report and the run ledger show them.
    started_at: str | None = None
    finished_at: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.outcome.verdict

    def total(self, kind: str) -> int:
        return sum(self.counts.get(kind, {}).values())

    @property
    def data_findings(self) -> int:
        return sum(self.total(k) for k in self.counts if k != "expectation_failed")

    @property
    def expectation_failures(self) -> int:
        return sum(1 for e in self.expectations if not e.success)

    def decide(self) -> Outcome:
        """Outcome from what was found. An incomplete run stays incomplete whatever was found."""
        if self.outcome in (Outcome.INCOMPLETE, Outcome.CONFIG, Outcome.LOCKED):
            return self.outcome
        if self.data_findings or self.expectation_failures:
            self.outcome = Outcome.FINDINGS
        else:
            self.outcome = Outcome.CLEAN
        return self.outcome

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = int(self.outcome)
        d["verdict"] = self.verdict
        return d
