"""Errors that end a run early with a known outcome."""

from __future__ import annotations


class IncompleteRun(Exception):
    """The run cannot reach a verdict (missing partition, unreadable file, unreadable API window):
    exit code 2. The message is one line for the on-call engineer and holds no secret."""
