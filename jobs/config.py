"""Configuration: one YAML file (conf/default.yaml unless told otherwise), overridden by
environment variables `TRADE_RECON__SECTION__KEY=value`.

Unknown keys, wrong types and impossible values are a `ConfigError` (exit code 3) that names
the offending key. Secrets are never values in this file: only the name of the environment
variable or the path of the file that holds them.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "conf" / "default.yaml"
ENV_PREFIX = "TRADE_RECON__"


class ConfigError(Exception):
    """Bad configuration or usage: exit code 3."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Secret(Strict):
    """Where a secret lives. Exactly one of `env` (a variable name) or `file` (a path)."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _a_reference(cls, data):
        if not isinstance(data, (dict, Secret)):
            raise ValueError("a secret is never written in the config: give {env: VARIABLE} or {file: PATH}")
        return data

    @model_validator(mode="after")
    def _one_source(self):
        if self.env and self.file:
            raise ValueError("give either env or file, not both")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.env or self.file)

    def read(self, what: str) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if not value:
                state = "is empty" if value == "" else "is not set"
                raise ConfigError(f"{what}: environment variable {self.env} {state}")
            return value.strip()
        if self.file:
            try:
                value = self.file.read_text().strip()
            except OSError as e:
                raise ConfigError(f"{what}: cannot read secret file {self.file}: {e.strerror}") from None
            if not value:
                raise ConfigError(f"{what}: secret file {self.file} is empty")
            return value
        raise ConfigError(f"{what}: no secret configured (set env or file)")


class JdbcStore(Strict):
    url: str = "jdbc:postgresql://127.0.0.1:5432/trade_recon"
    user: str = "postgres"
    password: Secret = Secret()
    driver: str = "org.postgresql.Driver"
    # Executors read in parallel, split on this column.
    partition_column: str = "delivery_start"
    num_partitions: int = Field(8, ge=1)
    jars: list[Path] = [Path("/usr/share/java/postgresql.jar")]


class Store(Strict):
    format: Literal["parquet", "jdbc"] = "parquet"
    path: Path = Path("data/store")
    jdbc: JdbcStore = JdbcStore()
    # An empty day (0 rows) is clean unless this says it must not be.
    allow_empty_day: bool = True


class Retry(Strict):
    max_attempts: int = Field(6, ge=1)
    backoff_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(10.0, ge=0)
    retry_after_cap_s: float = Field(30.0, ge=0)


class Tls(Strict):
    verify: bool = True
    ca_bundle: Path | None = None


def _check_url(parts, url: str) -> None:
    """What every service URL must not hold: a port that is not a number in 1..65535 (found
    here, before Spark starts, not inside the first Spark task), and credentials, a query or a
    fragment, which the job would copy into requests, reports, the ledger and alerts. The URL is
    not echoed when it holds credentials."""
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials never go in the URL (user:password@): the secrets have their own keys")
    if parts.query or parts.fragment:
        raise ValueError(f"a base URL takes no query or fragment: {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"the port of {url!r} is not a number from 1 to 65535")


class Api(Strict):
    base_url: str = "http://127.0.0.1:8765"
    api_key: Secret = Secret(env="TRADE_RECON_API_KEY")
    api_key_header: str = "X-API-Key"
    page_size: int = Field(2000, ge=1, le=2000)
    window_minutes: int = Field(60, ge=1)
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    retry: Retry = Retry()
    # Wall-clock budget for the whole API replay; past it the run is incomplete (exit 2).
    run_budget_s: float = Field(1800.0, gt=0)
    tls: Tls = Tls()
    # Where replay tasks spool the decoded pages (Parquet) for the run; removed after it.
    # Default: the system temp dir. On a cluster it must be a path every executor and the
    # driver share.
    spool_dir: Path | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {v!r}")
        _check_url(parts, v)
        return v.rstrip("/")


class Severities(Strict):
    findings: Literal["critical", "error", "warning", "info"] = "critical"
    expectations_only: Literal["critical", "error", "warning", "info"] = "warning"
    incomplete: Literal["critical", "error", "warning", "info"] = "error"


class AlertRetry(Strict):
    """Handed to the pagerduty client's own retry loop (sleep doubles after each attempt)."""

    sleep_s: float = Field(1.5, ge=0)
    max_http_attempts: int = Field(10, ge=1)
    # The client retries 429 forever unless told otherwise; past this the event goes to the outbox.
    rate_limit_retries: int = Field(5, ge=1)
    max_network_attempts: int = Field(3, ge=1)


class Alerts(Strict):
    enabled: bool = True
    # Print the events a run would send instead of sending them (`recon run --alert-dry-run`, and
    # with enabled: false, `--no-alert`); the outbox is neither flushed nor written.
    dry_run: bool = False
    base_url: str = "http://127.0.0.1:8766"
    routing_key: Secret = Secret(env="TRADE_RECON_ROUTING_KEY")
    severities: Severities = Severities()
    outbox: Path = Path("reports/alert-outbox")
    source: str = "trade-recon"
    timeout_s: float = Field(10.0, gt=0)
    retry: AlertRetry = AlertRetry()

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        loopback = parts.hostname in ("localhost", "::1") or (parts.hostname or "").startswith("127.")
        # Plain http would carry the routing key in clear text, so only the local stand-in may use it.
        if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
            raise ValueError(f"must be https://, or http:// on a loopback host: {v!r}")
        _check_url(parts, v)
        return v.rstrip("/")


class Report(Strict):
    dir: Path = Path("reports")
    samples_per_kind_field: int = Field(20, ge=0, le=1000)
    # Public URL prefix for links in alerts; defaults to file:// paths.
    link_base_url: str | None = None


class PriceLimit(Strict):
    segment: str
    effective_from: date
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self):
        if self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        return self


class ExpectationOverride(Strict):
    dataset: str
    expectation: str
    enabled: bool = True
    kwargs: dict = {}


class Expectations(Strict):
    enabled: bool = True
    severity: Literal["critical", "error", "warning", "info"] = "warning"
    price_limits: list[PriceLimit] = [
        PriceLimit(segment="CONTINUOUS", effective_from=date(2017, 11, 14), min=-9999, max=9999),
        PriceLimit(segment="IDA", effective_from=date(2024, 6, 13), min=-9999, max=9999),
    ]
    overrides: list[ExpectationOverride] = []


class Spark(Strict):
    master: str = "local[2]"
    conf: dict[str, str] = {}


class Config(Strict):
    env: str = Field("local", pattern=r"^[a-z0-9][a-z0-9-]*$")
    datasets: list[Literal["trades", "orders"]] = Field(["trades", "orders"], min_length=1)
    store: Store = Store()
    api: Api = Api()
    alerts: Alerts = Alerts()
    report: Report = Report()
    expectations: Expectations = Expectations()
    spark: Spark = Spark()

    def fingerprint(self) -> str:
        """A hash of the effective config. Secrets are references (env names, paths), never values."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def resolve(self, path: Path) -> Path:
        """Relative paths in config are relative to the working directory."""
        return path if path.is_absolute() else Path.cwd() / path


def _secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, f in model.model_fields.items():
        t = f.annotation
        if t is Secret:
            out.append((*prefix, name))
        elif isinstance(t, type) and issubclass(t, BaseModel):
            out += _secret_paths(t, (*prefix, name))
    return out


_SECRET_PATHS = _secret_paths(Config)


class _Loader(yaml.SafeLoader):
    """YAML without implicit dates: pydantic parses them, so an impossible date names its key."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in rs if tag != "tag:yaml.org,2002:timestamp"]
    for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml(text: str):
    return yaml.load(text, Loader=_Loader)


def _set_path(tree: dict, keys: list[str], raw: str) -> None:
    node = tree
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{'.'.join(keys)}: cannot override inside non-mapping {k!r}")
        node = nxt
    # Environment values are YAML scalars, so "false", "3" and "[a, b]" get their types.
    try:
        node[keys[-1]] = _yaml(raw) if raw != "" else ""
    except yaml.YAMLError:
        node[keys[-1]] = raw


def _format_errors(err: ValidationError, source: str, overrides: dict[tuple[str, ...], str]) -> str:
    """One line naming every bad key; a key set by an environment variable names the variable."""
    lines = []
    for e in err.errors():
        path = tuple(str(p) for p in e["loc"])
        loc = ".".join(path) or "(root)"
        var = next((name for keys, name in overrides.items() if path[: len(keys)] == keys), None)
        origin = f" (from {var})" if var else ""
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{loc}'{origin}")
        else:
            got = e.get("input")
            # What was given for a secret may be the secret itself; the job's own checks
            # (value_error) say what they need to, and never echo a URL's credentials.
            hidden = (isinstance(got, dict) or e["type"] == "value_error"
                      or any(path[: len(sp)] == sp for sp in _SECRET_PATHS))
            shown = "" if hidden else f" (got {got!r})"
            lines.append(f"'{loc}': {e['msg'].removeprefix('Value error, ')}{shown}{origin}")
    return f"invalid configuration in {source}: " + "; ".join(lines)


def load_config(path: Path | str | None = None, environ: dict[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    source = Path(path) if path else DEFAULT_CONFIG
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {source}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {source} is not UTF-8 text (byte {e.start})") from None
    try:
        tree = _yaml(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {source} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {source} must be a mapping at the top level")
    overrides: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(environ.items()):
        if name.startswith(ENV_PREFIX):
            keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
            if keys:
                _set_path(tree, keys, raw)
                overrides[tuple(keys)] = name
    if not tree:
        # A file named on purpose that says nothing, with nothing set from the environment either,
        # is a truncated deploy or the wrong path far more often than a choice.
        raise ConfigError(f"config file {source} holds no settings (run without --config for the defaults)")
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, str(source), overrides)) from None


def parse_day(text: str, what: str = "--day") -> date:
    """A delivery day from the command line; `what` names the option or argument in the error."""
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: {text!r} is not a calendar date (YYYY-MM-DD)") from None
