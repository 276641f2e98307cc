"""Security properties of a run: secrets never leave their env variable or file, TLS is verified
unless explicitly (and loudly) turned off, the bundled API gives nothing away about a wrong key,
and nothing the job writes is world-writable, whatever the umask."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from api_server.testing import serve
from fault_helpers import (API_KEY, DAY, ROOT, case, config_tree, expect_incomplete, expect_verdict, pagerduty, pd,  # noqa: F401
                           recon, secrets_env, store, write_config)
from jobs.alert_events import data_key, run_failure_key
from jobs.seed import seed_day

# Distinctive values: any of these bytes anywhere in an artifact is a leak.
SECRET_API_KEY = "ApiKey-LEAKCHECK-7f3c9a1e5b2d"
SECRET_ROUTING_KEY = "RoutingKeyLEAKCHECK0123456789abc"  # 32 characters, as PagerDuty wants
SECRETS = (SECRET_API_KEY, SECRET_ROUTING_KEY)


# ---------------------------------------------------------------- secrets in every artifact


def _start_api(tmp: Path, cfg_path: Path, env: dict) -> tuple[subprocess.Popen, str, Path, Path]:
    """`recon --debug serve-api` on a free port, its output into files; returns the process and base URL."""
    keys = tmp / "server-keys.txt"
    keys.write_text(f"# server keys\n{SECRET_API_KEY}\n")
    out, err = tmp / "api.stdout", tmp / "api.stderr"
    # trades fit one page per window, orders need several, so the stuck cursor fails orders only.
    cmd = [sys.executable, "-m", "jobs.cli", "--debug", "serve-api", "--port", "0", "--config", str(cfg_path),
           "--api-keys-file", str(keys), "--fault", "stuck-cursor", "--fault", "drop-records:rate=0.1,datasets=trades",
           "--fault", "drop-nulls:datasets=trades", "--manifest", str(tmp / "reports" / "api-fault-manifest.json")]
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=fo, stderr=fe)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = out.read_text()
        if "serving on " in text:
            return proc, text.split("serving on ", 1)[1].split()[0], out, err
        if proc.poll() is not None:
            raise RuntimeError(f"serve-api exited: {err.read_text()}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("serve-api did not start")


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory, pagerduty):
    """One `recon --debug run` of both datasets with findings (trades) and an incomplete read
    (orders), alerts first queued (PagerDuty down) then flushed, under umask 000."""
    tmp = tmp_path_factory.mktemp("leak")
    root = tmp / "store"
    seed_day(root, DAY, 40, 800, seed=5)
    pagerduty.reset()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADE_RECON")}
    env.update(PYSPARK_PYTHON=sys.executable, PYTHONPATH=str(ROOT), LEAK_API_KEY=SECRET_API_KEY,
               LEAK_ROUTING_KEY=SECRET_ROUTING_KEY)
    tree = config_tree(tmp, root, "http://127.0.0.1:1", pagerduty.base_url, env="leak",
                       api={"api_key": {"env": "LEAK_API_KEY"}, "page_size": 50},
                       alerts={"routing_key": {"env": "LEAK_ROUTING_KEY"}},
                       expectations={"enabled": True})
    cfg_path = write_config(tmp / "recon.yaml", tree)
    api, url, api_out, api_err = _start_api(tmp, cfg_path, env)
    try:
        tree["api"]["base_url"] = url
        write_config(cfg_path, tree)
        pagerduty.fail(503, seconds=3600)
        umask0 = dict(preexec_fn=lambda: os.umask(0))
        job = subprocess.run([sys.executable, "-m", "jobs.cli", "--debug", "run", "--day", DAY.isoformat(),
                              "--config", str(cfg_path)], cwd=tmp, env=env, capture_output=True, timeout=900, **umask0)
        queued = sorted((tmp / "reports" / "alert-outbox").glob("*.json"))
        queued_bytes = {p: p.read_bytes() for p in queued}
        pagerduty.recover()
        flush = subprocess.run([sys.executable, "-m", "jobs.cli", "--debug", "alerts", "flush", "--config", str(cfg_path)],
                               cwd=tmp, env=env, capture_output=True, timeout=120, **umask0)
    finally:
        api.terminate()
        api.wait(timeout=30)
    return {"tmp": tmp, "job": job, "flush": flush, "queued": queued_bytes, "api_out": api_out, "api_err": api_err,
            "accepted": pagerduty.accepted(), "cfg": tree}


def test_the_leak_run_did_what_it_should(leak_run):
    job, flush = leak_run["job"], leak_run["flush"]
    assert job.returncode == 2, job.stderr[-3000:]
    out = job.stdout.decode()
    assert "FINDINGS trades" in out and "INCOMPLETE orders" in out
    assert "the cursor did not advance" in out
    assert b"DEBUG " in job.stderr  # --debug was on
    assert len(leak_run["queued"]) >= 4  # PagerDuty was down: every event waited in the outbox
    assert flush.returncode == 0, flush.stderr
    keys = {(e["event_action"], e["dedup_key"]) for e in leak_run["accepted"]}
    assert ("trigger", data_key("leak", "trades", DAY.isoformat())) in keys
    assert ("trigger", run_failure_key("leak", "orders", DAY.isoformat())) in keys


def test_no_secret_in_any_artifact(leak_run):
    tmp = leak_run["tmp"]
    artifacts: dict[str, bytes] = {
        "job stdout": leak_run["job"].stdout, "job stderr": leak_run["job"].stderr,
        "flush stdout": leak_run["flush"].stdout, "flush stderr": leak_run["flush"].stderr,
        "api stdout": leak_run["api_out"].read_bytes(), "api stderr": leak_run["api_err"].read_bytes(),
    }
    artifacts.update({f"queued {p.name}": b for p, b in leak_run["queued"].items()})
    files = [p for p in (tmp / "reports").rglob("*") if p.is_file()]
    assert any(p.name == "ledger.sqlite" for p in files) and any(p.name == "report.json" for p in files)
    assert sum(p.name == "report.html" for p in files) == 2
    artifacts.update({str(p.relative_to(tmp)): p.read_bytes() for p in files})
    assert len(artifacts["api stderr"]) > 1000  # the access log was written
    for name, blob in artifacts.items():
        for secret in SECRETS:
            assert secret.encode() not in blob, f"secret {secret[:10]}... leaked into {name}"
            assert secret[:16].encode() not in blob, f"part of secret {secret[:10]}... leaked into {name}"


def test_nothing_written_is_world_writable_even_under_umask_000(leak_run):
    reports = leak_run["tmp"] / "reports"
    paths = [reports, *reports.rglob("*")]
    assert len(paths) > 10
    loose = [str(p.relative_to(reports)) for p in paths
             if not p.is_symlink() and p.stat().st_mode & stat.S_IWOTH]
    assert loose == []


@pytest.mark.parametrize("from_request", [1, 2], ids=["preflight", "spark-task"])
def test_an_api_that_echoes_the_key_in_its_errors_does_not_leak_it(case, from_request):
    """Some gateways put request headers into their error bodies; the job quotes error bodies."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fake_api import problem, to_json
    from fake_api import serve as serve_fake
    from jobs.seed import partition_dir
    from reconcilers.contract import TRADES

    rows = pq.read_table(partition_dir(case.store, TRADES, DAY)).to_pylist()
    records = {"trades": to_json(pa.Table.from_pylist(rows), TRADES, DAY)}

    def echo(req):
        if req.n >= from_request:
            return problem(503, f"upstream refused X-API-Key {req.headers.get('x-api-key')}")
        return None

    with serve_fake(records, api_key=API_KEY, fault=echo) as api:
        cfg = case.config(api.base_url)
        code = case.run(cfg)
    error = expect_incomplete(case, code, cfg, "trades", "HTTP 503 (upstream refused X-API-Key ***)")
    assert ("preflight" in error) == (from_request == 1)
    for p in (case.tmp / "reports").rglob("*"):
        if p.is_file():
            assert API_KEY.encode() not in p.read_bytes(), p
    assert API_KEY not in case.out
    assert all(API_KEY not in str(e) for e in case.pd.events())


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trade-recon test API")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def https_api(store, self_signed):
    with serve(store, api_keys=(API_KEY,), tls=self_signed) as api:
        assert api.base_url.startswith("https://127.0.0.1:")
        yield api


def test_tls_is_verified_by_default(case, https_api):
    cfg = case.config(https_api.base_url)
    assert cfg.api.tls.verify is True and cfg.api.tls.ca_bundle is None
    code = case.run(cfg)
    expect_incomplete(case, code, cfg, "trades", "TLS failed", "CERTIFICATE_VERIFY_FAILED", https_api.base_url)


def test_a_ca_bundle_makes_the_self_signed_server_trusted(case, https_api, self_signed, caplog):
    cfg = case.config(https_api.base_url, api={"tls": {"ca_bundle": str(self_signed[0])}})
    with caplog.at_level(logging.WARNING):
        code = case.run(cfg)
    expect_verdict(case, code, cfg, "trades", {})
    assert "verification is OFF" not in caplog.text


def test_turning_verification_off_works_and_warns_on_every_run(case, https_api, caplog):
    cfg = case.config(https_api.base_url, api={"tls": {"verify": False}})
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            code = case.run(cfg)
        expect_verdict(case, code, cfg, "trades", {})
        warnings = [r for r in caplog.records if "TLS certificate verification is OFF" in r.getMessage()]
        assert warnings and all(r.levelno == logging.WARNING for r in warnings)
        assert https_api.base_url in warnings[0].getMessage()
        case.pd.reset()


# ---------------------------------------------------------------- the bundled API's key check


def test_the_api_rejects_missing_and_wrong_keys_without_a_hint(store):
    key = "Server-Key-0123456789"
    with serve(store, api_keys=(key,)) as api:
        url = f"{api.base_url}/v1/trades"
        params = {"deliveryDay": DAY.isoformat(), "pageSize": 1}

        def get(headers):
            r = requests.get(url, params=params, headers=headers, timeout=10)
            return r.status_code, r.content, {k: v for k, v in r.headers.items() if k.lower() != "date"}

        ok = get({"X-API-Key": key})
        missing = get({})
        wrong_first = get({"X-API-Key": "X" + key[1:]})
        wrong_last = get({"X-API-Key": key[:-1] + "X"})
        wrong_short = get({"X-API-Key": key[:4]})
        empty = get({"X-API-Key": ""})
    assert ok[0] == 200
    assert missing[0] == empty[0] == 401
    assert wrong_first[0] == 403
    # Nothing tells which part was wrong: same body and headers, whatever the key.
    assert wrong_first == wrong_last == wrong_short
    for status, body, _ in (missing, wrong_first):
        assert key.encode() not in body and key[:6].encode() not in body
