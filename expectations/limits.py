"""Which configured price limit is in force for a market segment on a delivery day."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from jobs.config import PriceLimit

# Orders carry no market segment. Intraday orders rest in the continuous order book (auction
# bids are not in this feed), so they are held to the continuous limits.
ORDER_SEGMENT = "CONTINUOUS"


def limit_in_force(limits: Iterable[PriceLimit], segment: str, day: date) -> PriceLimit | None:
    """The latest limit with `effective_from <= day` for `segment`, or None when none applies yet."""
    candidates = [lim for lim in limits if lim.segment == segment and lim.effective_from <= day]
    return max(candidates, key=lambda lim: lim.effective_from, default=None)
