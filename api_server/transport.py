"""Transport faults: how pages are delivered, never what records say.

Decided by request count, per page: a page is one (dataset, window, cursor, pageSize) request,
and its attempts are numbered from 0. The bursts take the first attempts in the order
503-burst, 429-burst, truncate-body (`count` attempts each), after which the page is served
normally, so a client that retries always gets through. `pages=first` limits a burst to the first
page of each window (no cursor), `pages=all` applies it to every page.
`slow-pages` delays every selected attempt. `stuck-cursor` and `repeat-last-page` act on the
cursor (see `service.py`).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from api_server.faults import FaultSpec

_BURSTS = ("503-burst", "429-burst", "truncate-body")


@dataclass(frozen=True)
class Action:
    fault: str | None = None  # the burst that answers this attempt, if any
    status: int | None = None  # 503 / 429; None for truncate-body
    retry_after: int | None = None
    delay_s: float = 0.0


class Transport:
    def __init__(self, faults: tuple[FaultSpec, ...]):
        self.specs = {s.name: s for s in faults if not s.is_data}
        self._attempts: Counter = Counter()
        self.served: Counter = Counter()  # fault -> responses it shaped
        self._lock = threading.Lock()

    def param(self, fault: str, name: str):
        spec = self.specs.get(fault)
        return None if spec is None else spec.params[name]

    def before_page(self, page_id: tuple, first_page: bool) -> Action:
        if not self.specs:
            return Action()
        with self._lock:
            attempt = self._attempts[page_id]
            self._attempts[page_id] += 1
        delay = 0.0
        slow = self.specs.get("slow-pages")
        if slow and (slow.params["pages"] == "all" or first_page):
            delay = slow.params["delay"]
            self.count("slow-pages")
        taken = 0
        for name in _BURSTS:
            spec = self.specs.get(name)
            if spec is None or (spec.params["pages"] == "first" and not first_page):
                continue
            if attempt < taken + spec.params["count"]:
                self.count(name)
                status = {"503-burst": 503, "429-burst": 429}.get(name)
                return Action(name, status, spec.params.get("retry_after"), delay)
            taken += spec.params["count"]
        return Action(delay_s=delay)

    def count(self, fault: str) -> None:
        with self._lock:
            self.served[fault] += 1

    def describe(self) -> list[dict]:
        with self._lock:
            out = []
            for s in self.specs.values():
                d = s.to_dict()
                out.append({"fault": d.pop("name"), **d, "served": self.served[s.name]})
            return out
