"""Fault profiles: parsing `name[:param=value,...]` into validated specs.

Data faults change what records say (decided per record from a hash of the seed and the record's
key, see `plan.py`); transport faults change how pages are delivered (see `transport.py`).
A list parameter continues over commas until the next `param=`: `drop-nulls:fields=trader_id,text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from reconcilers.contract import DATASETS


class FaultError(ValueError):
    """A fault profile that does not exist or has bad parameters."""


def _rate(v: str) -> float:
    r = float(v)
    if not 0.0 <= r <= 1.0:
        raise ValueError("must be between 0 and 1")
    return r


def _count(v: str) -> int:
    n = int(v)
    if n < 0:
        raise ValueError("must be >= 0")
    return n


def _seconds(v: str) -> float:
    s = float(v)
    if not 0.0 <= s <= 3600.0:
        raise ValueError("must be between 0 and 3600 seconds")
    return s


def _pages(v: str) -> str:
    if v not in ("first", "all"):
        raise ValueError("must be 'first' or 'all'")
    return v


def _names(v: list[str]) -> tuple[str, ...]:
    return tuple(x for x in v if x)


_LIST = object()  # marks list-valued parameters
Param = tuple[Callable[[Any], Any], Any]  # (parser, default)

_FIELDS: dict[str, Param] = {"fields": (_LIST, None), "datasets": (_LIST, None)}

# name -> parameters with defaults. Field faults pick at most one field per chosen record
# (change-values, wrong-type, null-values); serializer faults apply to every chosen record.
DATA_FAULTS: dict[str, dict[str, Param]] = {
    "drop-nulls": {"rate": (_rate, 1.0), **_FIELDS},
    "omitempty": {"rate": (_rate, 1.0), **_FIELDS},
    "drop-records": {"rate": (_rate, 0.001), "datasets": (_LIST, None)},
    "duplicate-records": {"rate": (_rate, 0.001), "datasets": (_LIST, None)},
    "change-values": {"rate": (_rate, 0.001), **_FIELDS},
    "null-values": {"rate": (_rate, 0.001), **_FIELDS},
    "wrong-type": {"rate": (_rate, 0.001), **_FIELDS},
}
TRANSPORT_FAULTS: dict[str, dict[str, Param]] = {
    "503-burst": {"count": (_count, 2), "pages": (_pages, "first"), "retry_after": (_count, None)},
    "429-burst": {"count": (_count, 2), "pages": (_pages, "first"), "retry_after": (_count, 1)},
    "slow-pages": {"delay": (_seconds, 0.2), "pages": (_pages, "all")},
    "truncate-body": {"count": (_count, 1), "pages": (_pages, "first")},
    "stuck-cursor": {"after": (_count, 1)},
    "repeat-last-page": {"times": (_count, 1)},
    # The day changes between pages (see mutate.py); its findings are decided as pages are served.
    "mutate-during-read": {"changes": (_count, 2), "inserts": (_count, 1), "datasets": (_LIST, None)},
}
FAULTS = {**DATA_FAULTS, **TRANSPORT_FAULTS}


@dataclass(frozen=True)
class FaultSpec:
    name: str
    params: dict[str, Any]

    @property
    def is_data(self) -> bool:
        return self.name in DATA_FAULTS

    def applies_to(self, dataset: str) -> bool:
        ds = self.params.get("datasets")
        return ds is None or dataset in ds

    def text(self) -> str:
        """Canonical `name:param=value,...`, listing only parameters that differ from the defaults."""
        defaults = {k: d for k, (_, d) in FAULTS[self.name].items()}
        given = {k: v for k, v in self.params.items() if v != defaults[k]}
        if not given:
            return self.name
        parts = [f"{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in sorted(given.items())]
        return f"{self.name}:{','.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}}


def parse_fault(text: str) -> FaultSpec:
    name, _, rest = text.strip().partition(":")
    if name not in FAULTS:
        raise FaultError(f"unknown fault profile {name!r}; choose from {', '.join(FAULTS)}")
    schema = FAULTS[name]
    raw: dict[str, list[str] | str] = {}
    current = None
    for token in (t.strip() for t in rest.split(",")) if rest else ():
        if "=" in token:
            current, _, value = token.partition("=")
            current = current.strip()
            if current not in schema:
                raise FaultError(f"{name}: unknown parameter {current!r}; it takes {', '.join(schema) or 'none'}")
            if current in raw:
                raise FaultError(f"{name}: parameter {current!r} given twice")
            raw[current] = [value.strip()] if schema[current][0] is _LIST else value.strip()
        elif current is not None and schema[current][0] is _LIST:
            raw[current].append(token)
        else:
            raise FaultError(f"{name}: expected param=value, got {token!r}")
    params: dict[str, Any] = {}
    for key, (parse, default) in schema.items():
        if key not in raw:
            params[key] = default
        elif parse is _LIST:
            params[key] = _names(raw[key])
        else:
            try:
                params[key] = parse(raw[key])
            except ValueError as e:
                raise FaultError(f"{name}: {key}={raw[key]!r}: {e}") from None
    _check_names(name, params)
    return FaultSpec(name, params)


def _check_names(name: str, params: dict[str, Any]) -> None:
    for ds_name in params.get("datasets") or ():
        if ds_name not in DATASETS:
            raise FaultError(f"{name}: unknown dataset {ds_name!r}; expected one of {sorted(DATASETS)}")
    fields = params.get("fields")
    if not fields:
        return
    canonical = []
    for f in fields:
        matches = [d.by_name.get(f) or d.by_json.get(f) for d in DATASETS.values()]
        found = [m for m in matches if m is not None]
        if not found:
            raise FaultError(f"{name}: no dataset has a field {f!r}")
        if all(m.name in d.key for m, d in zip(matches, DATASETS.values()) if m is not None):
            raise FaultError(f"{name}: {f!r} is a key field; faults never alter keys, so every finding stays matchable")
        canonical.append(found[0].name)
    params["fields"] = tuple(canonical)


def parse_faults(texts: list[str] | tuple[str, ...]) -> tuple[FaultSpec, ...]:
    specs = tuple(parse_fault(t) for t in texts if t.strip())
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise FaultError(f"fault profile given twice: {', '.join(dup)}")
    if "mutate-during-read" in names and any(s.is_data for s in specs):
        # Its findings are computed against unaltered records; a data fault on top would blur both.
        raise FaultError("mutate-during-read cannot be combined with data faults")
    return specs
