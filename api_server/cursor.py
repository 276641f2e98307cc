"""Opaque page cursors: a keyset position, bound to the query that produced it.

A cursor carries the key of the last record served (keyset pagination), so a page never shifts or
repeats while rows are added or removed. It also carries the previous page's last key, which is
how a `duplicate-records` fault re-serves the previous page's chosen records without server state.
The tag only catches a mangled cursor; a cursor is not a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

import orjson

from reconcilers.contract import Dataset

_VERSION = 1
_TAG = 6
_KIND_TYPES = {"string": str, "int": int}


class CursorError(ValueError):
    """The cursor is not one this server issued for this query."""


# A position in key order: the key values, then which occurrence of that key (a store may hold a
# key twice; the occurrence keeps such rows from being skipped at a page boundary).
Position = tuple


@dataclass(frozen=True)
class Cursor:
    dataset: str
    start_us: int
    end_us: int
    last: Position  # last record of the page just served
    prev: Position | None = None  # last record of the page before it; None: the window's start
    page: int = 1  # number of pages served before the one this cursor asks for
    past_end: int = 0  # > 0: a `repeat-last-page` cursor pointing past the last page

    def encode(self) -> str:
        payload = orjson.dumps(
            [_VERSION, self.dataset, self.start_us, self.end_us, list(self.last),
             list(self.prev) if self.prev is not None else None, self.page, self.past_end]
        )
        return base64.urlsafe_b64encode(_tag(payload) + payload).rstrip(b"=").decode()


def _tag(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_TAG, person=b"recon-cursor").digest()


def _position(value, ds: Dataset) -> Position:
    if not isinstance(value, list) or len(value) != len(ds.key) + 1:
        raise CursorError("malformed position")
    *keys, occurrence = value
    for name, v in zip(ds.key, keys):
        want = _KIND_TYPES.get(ds.by_name[name].kind)
        if v is not None and (want is None or type(v) is not want):
            raise CursorError("malformed key")
    if type(occurrence) is not int or occurrence < 0:
        raise CursorError("malformed occurrence")
    return tuple(value)


def decode(token: str, ds: Dataset, start_us: int, end_us: int) -> Cursor:
    """The cursor in `token`, checked to belong to this dataset and window."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise CursorError("not a cursor issued by this API") from None
    tag, payload = raw[:_TAG], raw[_TAG:]
    if len(raw) <= _TAG or tag != _tag(payload):
        raise CursorError("not a cursor issued by this API")
    try:
        version, dataset, start, end, last, prev, page, past_end = orjson.loads(payload)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        raise CursorError("not a cursor issued by this API") from None
    if version != _VERSION:
        raise CursorError("cursor from another API version")
    if (dataset, start, end) != (ds.name, start_us, end_us):
        raise CursorError("cursor belongs to another dataset or window; restart the window without a cursor")
    if type(page) is not int or type(past_end) is not int or page < 1 or past_end < 0:
        raise CursorError("not a cursor issued by this API")
    return Cursor(dataset, start, end, _position(last, ds), None if prev is None else _position(prev, ds), page, past_end)
