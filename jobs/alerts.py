"""Send a run's PagerDuty events through the official `pagerduty` client, never losing one.

Every event is first written to the durable outbox (jobs/alert_outbox.py), then the outbox is
flushed in order. So an event that cannot be delivered now (PagerDuty unreachable, or still
answering 429/5xx after the client's own retries) is simply still there for the next run's
`flush_outbox(cfg)` or `recon alerts flush`, and a new event never overtakes an older one.
PagerDuty rejecting an event (a 4xx other than 429) is logged loudly with the response body and
the event is kept under dead/ for a human (`recon alerts requeue`).

Delivery never changes the job's exit code: nothing here raises for a delivery problem.

The routing key is read only when sending, is never written to the outbox, and is masked in
everything this module prints or logs, including the log records of the client libraries.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pagerduty

from jobs.alert_events import plan
from jobs.alert_outbox import Entry, Outbox
from jobs.config import Config, ConfigError
from reconcilers.result import DatasetResult

log = logging.getLogger(__name__)

_WHAT = "alerts.routing_key"


@dataclass
class FlushResult:
    sent: int = 0
    pending: int = 0  # still waiting in the outbox after this flush
    dead: int = 0  # rejected by PagerDuty during this flush and moved to dead/
    error: str | None = None  # why the flush stopped before the end, one line, no secrets
    skipped: bool = False  # alerts are disabled; nothing was tried
    delivered_seqs: list[int] = field(default_factory=list)
    dead_seqs: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.pending and not self.dead and not self.skipped


@dataclass
class AlertOutcome:
    # delivered | queued (waits in the outbox) | rejected (some went to dead/) | disabled | dry-run | nothing
    # | failed (the outbox was unwritable and PagerDuty did not take them: the events are in the error log)
    status: str
    events: list[dict]  # the bodies as planned, without routing key
    seqs: list[int] = field(default_factory=list)  # outbox sequence numbers of this run's events
    flush: FlushResult | None = None


# ---------------------------------------------------------------- secrets stay out of logs


def mask(secret: str | None) -> str:
    if not secret:
        return "<unset>"
    return "*" * max(len(secret) - 4, 4) + secret[-4:] if len(secret) >= 12 else "*" * len(secret)


class _Redact(logging.Filter):
    """Replaces known secrets in records of the loggers that see our requests."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def scrub(self, text: str) -> str:
        for s in tuple(self.secrets):  # another thread may be adding a key
            text = text.replace(s, mask(s))
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            clean = self.scrub(msg)
            if clean != msg:
                record.msg, record.args = clean, ()
        return True


_REDACT = _Redact()
# Filters run only on the logger a record is created on, so each one the request path uses.
for _name in (__name__, "pagerduty.api_client", "httpx2", "httpcore2.connection", "httpcore2.connection_pool",
              "httpcore2.http11", "httpcore2.http2", "httpcore2.proxy"):
    logging.getLogger(_name).addFilter(_REDACT)


def _routing_key(cfg: Config) -> str:
    key = cfg.alerts.routing_key.read(_WHAT)
    _REDACT.secrets.add(key)
    return key


# An Events API v2 integration (routing) key is 32 characters; PagerDuty refuses any other
# with a 400, which would make every event of the run a dead letter that pages no one.
ROUTING_KEY_LENGTH = 32


def preflight(cfg: Config) -> None:
    """For the job's start: a ConfigError (exit 3) when alerts are on but the routing key is
    unreadable, or cannot be one (not 32 characters; the key itself is never shown)."""
    if cfg.alerts.enabled:
        key = _routing_key(cfg)
        if len(key) != ROUTING_KEY_LENGTH:
            source = cfg.alerts.routing_key.env or cfg.alerts.routing_key.file
            raise ConfigError(f"{_WHAT}: the key from {source} has {len(key)} characters; a PagerDuty "
                              f"Events API v2 integration key has {ROUTING_KEY_LENGTH}")


# ---------------------------------------------------------------- the client


def _loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts.scheme == "http" and (host in ("localhost", "::1") or host.startswith("127."))


class _EventsClient(pagerduty.EventsApiV2Client):
    """The official client, also allowed to speak plain http to the loopback stand-in.

    The client insists on https; the config only lets http through for loopback hosts.
    """

    @property
    def url(self) -> str:
        return self._url

    @url.setter
    def url(self, new_base_url: str) -> None:
        if _loopback_http(new_base_url):
            self._url = new_base_url
        else:
            pagerduty.ApiClient.url.fset(self, new_base_url)


def _client(cfg: Config, key: str) -> _EventsClient:
    a = cfg.alerts
    # Proxies from the environment may be needed to reach PagerDuty, never to reach loopback.
    client = _EventsClient(key, base_url=a.base_url, trust_env=not _loopback_http(a.base_url))
    client.timeout = a.timeout_s
    client.sleep_timer = a.retry.sleep_s
    client.max_http_attempts = a.retry.max_http_attempts
    client.max_network_attempts = a.retry.max_network_attempts
    client.retry[429] = a.retry.rate_limit_retries  # unlimited by default: a 429 storm would hang the job
    return client


class _Transient(Exception):
    """Not delivered now; the event stays queued."""


class _Rejected(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}")
        self.status, self.body = status, body


def _deliver(client: _EventsClient, event: dict) -> None:
    props = {k: v for k, v in event.items() if k not in ("event_action", "dedup_key")}
    try:
        client.send_event(event["event_action"], dedup_key=event.get("dedup_key"), **props)
    except pagerduty.HttpError as e:
        status, body = e.response.status_code, _REDACT.scrub(e.response.text or "")
        if 400 <= status < 500 and status != 429:
            raise _Rejected(status, body) from None
        raise _Transient(f"HTTP {status} after the client's retries: {body[:300]}") from None
    except pagerduty.Error as e:
        raise _Transient(_REDACT.scrub(str(e))) from None
    except Exception as e:  # noqa: BLE001 - whatever went wrong, the event must stay queued
        raise _Transient(f"{type(e).__name__}: {_REDACT.scrub(str(e))}") from None


def _describe(event: dict | None) -> str:
    if not event:
        return "unreadable event"
    return f"{event.get('event_action')} {event.get('dedup_key')}"


# ---------------------------------------------------------------- outbox flushing


def _box(cfg: Config) -> Outbox:
    return Outbox(cfg.resolve(cfg.alerts.outbox))


def _flush_locked(cfg: Config, box: Outbox) -> FlushResult:
    entries = box.pending()
    res = FlushResult(pending=len(entries))
    if not entries:
        return res
    try:
        key = _routing_key(cfg)
    except ConfigError as e:
        res.error = str(e)
        log.error("alerts: %d event(s) wait in %s and cannot be sent: %s", len(entries), box.root, e)
        return res
    client = _client(cfg, key)
    try:
        for i, entry in enumerate(entries):
            if entry.event is None:
                _bury(box, entry, res, {"status": None, "body": entry.record.get("unreadable", "unreadable file")})
                continue
            try:
                _deliver(client, entry.event)
            except _Transient as e:
                box.note_failure(entry, str(e))
                res.error = f"PagerDuty at {cfg.alerts.base_url} did not take #{entry.seq} ({_describe(entry.event)}): {e}"
                log.warning("alerts: %s; %d event(s) stay queued in %s for the next run or `recon alerts flush`",
                            res.error, len(entries) - i, box.root)
                break
            except _Rejected as e:
                _bury(box, entry, res, {"status": e.status, "body": e.body})
                continue
            box.delivered(entry)
            res.sent += 1
            res.delivered_seqs.append(entry.seq)
            log.info("alerts: delivered #%d %s", entry.seq, _describe(entry.event))
    finally:
        client.close()
    res.pending = len(box.pending())
    return res


def _bury(box: Outbox, entry: Entry, res: FlushResult, reason: dict) -> None:
    path = box.bury(entry, reason)
    res.dead += 1
    res.dead_seqs.append(entry.seq)
    log.error(
        "alerts: PagerDuty REJECTED event #%d (%s) with HTTP %s: %s -- it will not be retried; kept in %s. "
        "Fix the cause, then `recon alerts requeue %d`.",
        entry.seq, _describe(entry.event), reason.get("status"), reason.get("body"), path, entry.seq,
    )


def flush_outbox(cfg: Config, *, force: bool = False) -> FlushResult:
    """Send what earlier runs could not, oldest first. The job calls this before anything else.

    With alerts disabled nothing is sent unless `force` (the explicit `recon alerts flush`).
    """
    box = _box(cfg)
    if (not cfg.alerts.enabled or cfg.alerts.dry_run) and not force:
        return FlushResult(pending=len(box.pending()), skipped=True)
    try:
        with box.locked():
            return _flush_locked(cfg, box)
    except OSError as e:
        log.error("alerts: cannot use the outbox %s: %s", box.root, e)
        return FlushResult(error=f"outbox {box.root}: {e}")


# ---------------------------------------------------------------- the job's entry point


def render(events: list[dict], masked_key: str) -> str:
    """The request bodies as they would be sent, with the routing key masked."""
    return "\n".join(json.dumps({"routing_key": masked_key, **e}, indent=2, ensure_ascii=False) for e in events)


def send_for(cfg: Config, result: DatasetResult, report_link: str | None, *, dry_run: bool = False) -> AlertOutcome:
    """Tell PagerDuty about one dataset's run: trigger, update or resolve its incidents.

    Never raises for delivery problems and never changes the exit code: what is not delivered
    waits in the outbox.
    """
    events = plan(cfg.alerts, result, report_link)
    if not events:
        return AlertOutcome("nothing", events)
    if dry_run or cfg.alerts.dry_run:
        try:
            shown = mask(_routing_key(cfg))
        except ConfigError as e:
            shown = f"<unavailable: {e}>"
        print(render(events, shown))
        return AlertOutcome("dry-run", events)
    if not cfg.alerts.enabled:
        log.info("alerts disabled: not sending %s", "; ".join(_describe(e) for e in events))
        return AlertOutcome("disabled", events)
    box = _box(cfg)
    try:
        with box.locked():
            seqs = [e.seq for e in box.append_all(events)]
            flushed = _flush_locked(cfg, box)
    except OSError as e:
        log.error("alerts: cannot use the outbox %s (%s); sending this run's events without it", box.root, e)
        return _send_unqueued(cfg, events)
    mine = set(seqs)
    if mine & set(flushed.dead_seqs):
        status = "rejected"
    elif mine <= set(flushed.delivered_seqs):
        status = "delivered"
    else:
        status = "queued"
    return AlertOutcome(status, events, seqs, flushed)


def _send_unqueued(cfg: Config, events: list[dict]) -> AlertOutcome:
    """Last resort when the outbox cannot be written: send directly, and put whatever is not
    delivered into the error log in full, so a human can still send it."""
    res = FlushResult(pending=len(events))
    try:
        client = _client(cfg, _routing_key(cfg))
    except ConfigError as e:
        res.error = str(e)
    else:
        try:
            for event in events:
                try:
                    _deliver(client, event)
                except (_Transient, _Rejected) as e:
                    res.error = f"{_describe(event)}: {e}"
                    break
                res.sent += 1
                res.pending -= 1
        finally:
            client.close()
    if res.pending:
        log.error("alerts: NOT DELIVERED and not queued (%s); the events, to send by hand: %s",
                  res.error, json.dumps(events[res.sent:]))
        return AlertOutcome("failed", events, flush=res)
    return AlertOutcome("delivered", events, flush=res)


# ---------------------------------------------------------------- outbox inspection for the CLI


def outbox_entries(cfg: Config) -> tuple[list[Entry], list[Entry]]:
    """(pending, dead), oldest first."""
    box = _box(cfg)
    return box.pending(), box.dead()


def requeue_dead(cfg: Config, seqs: list[int] | None = None) -> list[tuple[int, int]]:
    """Move dead events (all, or the given sequence numbers) back to the end of the queue.
    Returns (old seq, new seq) pairs."""
    box = _box(cfg)
    moved = []
    with box.locked():
        for entry in box.dead():
            if (seqs is None or entry.seq in seqs) and entry.event is not None:
                moved.append((entry.seq, box.requeue(entry).seq))
    return moved


def describe(entry: Entry) -> str:
    return _describe(entry.event)
