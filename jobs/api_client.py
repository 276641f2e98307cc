"""Reading one time window of the API: every page, checked, with retries.

Runs inside a Spark task (and once on the driver as a preflight). What it cannot read ends as a
`WindowFailed` whose message names the window, the page, the last good cursor and the URL; the
API key travels in a header and is never part of a message.

Paging faults versus data faults:
- a repeated cursor, or a page whose records are identical to the previous page's (a server
  that serves its last page again past the end) is a paging fault: the window is unreadable;
- single records served twice on different pages are passed on as data, so the comparison
  reports them as `duplicate_key`;
- a record whose delivery start lies outside the requested window is a paging fault: the API
  is not answering the question asked, so nothing it says about the window can be trusted.
A page that is only records carried over from the previous page (a server that serves a
duplicated record again on the next page) differs from that page and stays data; the one case
the client cannot tell apart is a page holding exactly the previous page's records again.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Iterator
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
import pyarrow as pa
import requests

from jobs.api_decode import PageDecodeError, PageDecoder

JSON_TYPES = ("application/json",)


@dataclass(frozen=True)
class Window:
    index: int
    start_us: int  # UTC microseconds, inclusive
    end_us: int  # exclusive

    @property
    def start(self) -> str:
        return iso_z(self.start_us)

    @property
    def end(self) -> str:
        return iso_z(self.end_us)

    def label(self) -> str:
        return f"window {self.index} [{self.start}, {self.end})"


def iso_z(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ClientSettings:
    """Everything a task needs to read windows; picklable, and without the key."""

    base_url: str
    path: str
    key_header: str
    page_size: int
    connect_timeout_s: float
    read_timeout_s: float
    max_attempts: int
    backoff_s: float
    backoff_max_s: float
    retry_after_cap_s: float
    budget_s: float
    deadline: float  # epoch seconds by which the whole replay must be done
    verify: bool | str = True

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/v1/{self.path}"


@dataclass
class WindowStatus:
    window: int
    start: str
    end: str
    ok: bool = True
    pages: int = 0
    records: int = 0
    retries: int = 0
    bytes: int = 0
    error: str | None = None


class WindowFailed(Exception):
    """A window could not be read completely; the message is for the on-call engineer."""


class _PageError(Exception):
    """One page failed; the caller adds where (window, page, cursor, URL)."""


def public_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def new_session(settings: ClientSettings, api_key: str) -> requests.Session:
    s = requests.Session()
    s.headers.update({settings.key_header: api_key, "Accept": "application/json"})
    s.verify = settings.verify
    return s


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def _problem(resp: requests.Response) -> str:
    """`HTTP 503 (Service Unavailable: detail)` from an RFC 7807 body when there is one."""
    text = f"HTTP {resp.status_code}"
    try:
        body = orjson.loads(resp.content) if resp.content else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        said = ": ".join(str(body[k]) for k in ("title", "detail") if body.get(k))
        if said:
            text += f" ({said[:200]})"
    elif resp.reason:
        text += f" ({resp.reason})"
    return text


_WRAPPER = re.compile(r"^(?:<[^>]*>|\w+\([^)]*\)): ")


def _short(exc: Exception) -> str:
    # requests wraps urllib3 errors several levels deep; the innermost says what happened.
    inner = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    # Drop a wrapper's own prefix ("<…Connection object at 0x…>: ", "HTTPConnectionPool(…): "),
    # never the reason's ("[SSL: WRONG_VERSION_NUMBER] wrong version number").
    reason = _WRAPPER.sub("", str(inner)) if str(inner) else type(inner).__name__
    return f"{type(exc).__name__}: {reason}"[:200]


class _Transient(_PageError):
    """Worth another attempt: the answer may be whole next time."""


def fetch_page(session: requests.Session, st: ClientSettings, params: dict, status: WindowStatus,
               page_size: int) -> tuple[list, str | None]:
    """GET one page and check it; return its records and next cursor.

    Retried with exponential backoff and a capped Retry-After, within the run budget: 429, 5xx,
    timeouts, broken connections, and a 200 whose body is not whole JSON (a body cut off in
    transit is the same failure as a dropped connection, only without the error)."""
    attempt = 0
    while True:
        attempt += 1
        remaining = st.deadline - time.time()
        if remaining <= 0:
            raise _PageError(f"the run budget of {st.budget_s:g} s is used up")
        wait_hint = None
        try:
            # verify per request: requests lets REQUESTS_CA_BUNDLE override the session's own
            # setting, which would silently undo api.tls.ca_bundle and api.tls.verify: false.
            resp = session.get(st.endpoint, params=params, verify=st.verify,
                               timeout=(min(st.connect_timeout_s, remaining), min(st.read_timeout_s, remaining)))
            status.bytes += len(resp.content)
            if resp.status_code == 429 or resp.status_code >= 500:
                wait_hint = _retry_after(resp.headers.get("Retry-After"))
                raise _Transient(_problem(resp))
            return check_page(resp, page_size)
        except requests.exceptions.SSLError as e:
            raise _PageError(f"TLS failed: {_short(e)}") from None
        except requests.exceptions.Timeout:
            problem = "timed out"
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as e:
            problem = f"connection failed ({_short(e)})"
        except _Transient as e:
            problem = str(e)
        if wait_hint is not None and wait_hint > st.retry_after_cap_s:
            raise _PageError(f"{problem} with Retry-After {wait_hint:g} s, above the cap of {st.retry_after_cap_s:g} s")
        if attempt >= st.max_attempts:
            raise _PageError(f"{problem}, still failing after {attempt} attempts")
        delay = wait_hint if wait_hint is not None else min(st.backoff_max_s, st.backoff_s * 2 ** (attempt - 1))
        if time.time() + delay > st.deadline:
            raise _PageError(f"{problem}; waiting {delay:g} s more would overrun the run budget of {st.budget_s:g} s")
        status.retries += 1
        time.sleep(delay)


def parse_body(content: bytes):
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    try:
        # orjson refuses numbers beyond a double's range; the stdlib reads them, so such a
        # value becomes a finding instead of an unreadable page.
        return json.loads(content)
    except (ValueError, RecursionError):
        raise _Transient(f"the body is not valid JSON (truncated or corrupt, {len(content):,} bytes)") from None


def check_page(resp: requests.Response, page_size: int) -> tuple[list, str | None]:
    """The records and the next cursor of one answer, after checking its envelope."""
    if resp.status_code == 204:
        return [], None
    if resp.status_code != 200:
        raise _PageError(_problem(resp))
    ctype = resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if ctype not in JSON_TYPES:
        raise _PageError(f"content type {ctype or '(none)'!r} where application/json was expected")
    body = parse_body(resp.content)
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise _PageError("the envelope has no 'data' array")
    pagination = body.get("pagination")
    if not isinstance(pagination, dict) or "nextCursor" not in pagination:
        raise _PageError("the envelope has no 'pagination.nextCursor'")
    cursor = pagination["nextCursor"]
    if cursor is not None and (not isinstance(cursor, str) or not cursor):
        raise _PageError(f"'pagination.nextCursor' is {orjson.dumps(cursor).decode()[:60]}, not a cursor string or null")
    data = body["data"]
    if len(data) > page_size:
        raise _PageError(f"{len(data):,} records on a page of at most {page_size:,} requested")
    return data, cursor


def window_params(st: ClientSettings, w: Window, cursor: str | None, page_size: int | None = None) -> dict:
    params = {"deliveryStartFrom": w.start, "deliveryStartTo": w.end, "pageSize": page_size or st.page_size}
    if cursor is not None:
        params["cursor"] = cursor
    return params


def read_window(session: requests.Session, st: ClientSettings, decoder: PageDecoder, w: Window,
                status: WindowStatus, dataset: str) -> Iterator[pa.RecordBatch]:
    """Yield one record batch per page of window `w`; raise `WindowFailed` when it cannot be read."""
    cursor: str | None = None
    seen: set[str] = set()
    previous: list | None = None
    page = 0
    while True:
        page += 1
        params = window_params(st, w, cursor)
        try:
            data, next_cursor = fetch_page(session, st, params, status, st.page_size)
            if previous and data == previous:
                raise _PageError(f"page {page} repeats page {page - 1} record for record")
            if next_cursor is not None and (next_cursor == cursor or next_cursor in seen):
                raise _PageError(f"the cursor did not advance (nextCursor {next_cursor[:80]!r} was already used)")
            try:
                batch = decoder.decode(data, w.index)
            except PageDecodeError as e:
                raise _PageError(str(e)) from None
            outside, first = decoder.outside(batch, w.start_us, w.end_us)
            if outside:
                raise _PageError(f"{outside} record(s) outside the window, the first with {decoder.window_json} {first}")
        except _PageError as e:
            last = "none (first page)" if cursor is None else repr(cursor[:120])
            url = public_url(f"{st.endpoint}?{urlencode(params, safe=':')}")
            raise WindowFailed(f"{dataset} {w.label()} page {page}: {e}; last good cursor {last}; url {url}") from None
        status.pages += 1
        status.records += len(data)
        if len(data):
            yield batch
        if next_cursor is None:
            return
        seen.add(next_cursor)
        cursor, previous = next_cursor, data


def preflight(st: ClientSettings, api_key: str, w: Window, dataset: str, status: WindowStatus) -> None:
    """One small request from the driver before any task starts, so that a down API, a
    rejected key or a TLS problem fails the run in seconds with one clear message. Its
    retries and bytes are counted in `status`."""
    params = window_params(st, w, None, page_size=1)
    with new_session(st, api_key) as s:
        try:
            fetch_page(s, st, params, status, 1)
        except _PageError as e:
            url = public_url(f"{st.endpoint}?{urlencode(params, safe=':')}")
            raise WindowFailed(f"{dataset}: the API preflight request failed: {e}; url {url}") from None
