"""The ground-truth manifest: exactly what a run's faults injected, for comparison with findings.

Data findings are a function of (data, profiles, seed) over whole days; a day is added when the
server first loads it (and replaced if the store changes under it). Transport faults are listed
with their rules and how many responses each shaped. Written atomically on every change of the
data part and on shutdown.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

import orjson

from api_server.faults import FaultSpec
from api_server.plan import expected_counts


class Manifest:
    def __init__(self, path: Path | None, faults: tuple[FaultSpec, ...], seed: int,
                 transport: Callable[[], list[dict]] = lambda: []):
        self.path = Path(path) if path else None
        self.faults, self.seed, self._transport = faults, seed, transport
        self._days: dict[tuple[str, str], list[dict]] = {}
        # Findings decided while pages are served (mutate-during-read), and what each event did.
        self._served: dict[tuple[str, str], list[dict]] = {}
        self._mutations: list[dict] = []
        self._lock = threading.Lock()

    def add_day(self, dataset: str, day: str, findings: list[dict]) -> None:
        with self._lock:
            self._days[(dataset, day)] = findings
        self.write()

    def add_mutation(self, dataset: str, day: str, event: dict, findings: list[dict]) -> None:
        """One mutate-during-read event, and the day's served findings as they now stand."""
        with self._lock:
            self._mutations.append({"dataset": dataset, "day": day, **event})
            self._served[(dataset, day)] = findings
        self.write()

    def to_dict(self) -> dict:
        with self._lock:
            days = {k: list(v) for k, v in self._days.items()}
            for k, v in self._served.items():
                days.setdefault(k, []).extend(v)
            mutations = list(self._mutations)
        expected: dict[str, dict[str, dict]] = {}
        injected: list[dict] = []
        for (dataset, day), findings in sorted(days.items()):
            expected.setdefault(dataset, {})[day] = expected_counts(findings)
            injected += findings
        doc = {
            "profiles": [f.text() for f in self.faults],
            "seed": self.seed,
            "injected": injected,
            "expected": expected,
            "transport": self._transport(),
        }
        if mutations:
            doc["mutations"] = mutations
        return doc

    def write(self) -> None:
        if self.path is None:
            return
        blob = orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, self.path)
