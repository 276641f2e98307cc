"""Shared fixtures. One Spark session for the whole test run (it takes ~8 s to start)."""

from __future__ import annotations

import os
import sys

import pytest

# Skips that would hide a missing dependency (PostgreSQL, Chromium, Airflow) become failures in
# CI, which sets this flag.
REQUIRE_ALL = os.environ.get("TRADE_RECON_REQUIRE_ALL") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip when `condition` is false, or fail when CI requires every test to run."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def spark():
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from jobs.spark import spark_session

    session = spark_session(app_name="trade-recon-tests")
    yield session
    session.stop()
