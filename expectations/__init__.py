"""Great Expectations suites derived from the contract and the market rules.

`build_suite` gives the suite of a dataset and day (for inspection); `run_suites` validates
both sides of a run with it and returns one `ExpectationResult` per expectation and side.
"""

import os

# Before the first import of great_expectations anywhere in the process.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from expectations.runner import run_suites  # noqa: E402
from expectations.suite import build_suite  # noqa: E402

__all__ = ["build_suite", "run_suites"]
