"""The HTML report in a real headless Chromium (Debian's `chromium`): the verdict, the per-hour
chart and the tables render, hostile sample values stay text, and the page reads offline."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import need
from jobs.config import load_config
from jobs.report import write_report
from reconcilers.result import Sample
from report_samples import HOSTILE, findings_result, incomplete_result

pytestmark = pytest.mark.chromium


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    need(bool(exe), "Debian package chromium is not installed")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}",
           *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


class Dom(HTMLParser):
    """Elements with their attributes and text, enough to query by tag, id and class."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": "", "classes": set((dict(attrs).get("class") or "").split())}
        self.elements.append(el)
        if tag not in ("meta", "br", "rect", "line", "input", "hr"):
            self._open.append(el)

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for el in self._open:
            el["text"] += data

    def find(self, tag=None, cls=(), id=None) -> list[dict]:
        return [e for e in self.elements if (tag is None or e["tag"] == tag) and set(cls) <= e["classes"]
                and (id is None or e["attrs"].get("id") == id)]


def png_pixel(path: Path, x: int, y: int) -> tuple[int, int, int]:
    """RGB of one pixel of an 8-bit RGB/RGBA PNG (what Chromium writes), without an imaging library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    for row in range(y + 1):
        filt, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if filt == 1:
                line[i] = (line[i] + a) & 255
            elif filt == 2:
                line[i] = (line[i] + b) & 255
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
    return tuple(prev[x * bpp:x * bpp + 3])


@pytest.fixture
def cfg(tmp_path):
    return load_config(environ={"TRADE_RECON__ENV": "test", "TRADE_RECON__REPORT__DIR": str(tmp_path / "reports")})


def test_findings_report_renders_in_chromium(cfg, tmp_path):
    r = findings_result()
    r.samples.append(Sample("value_mismatch", "text", {"trade_id": "T-2", "revision_no": 1}, store="a", api=HOSTILE))
    paths = write_report(r, cfg)
    dom = Dom(chromium(tmp_path, paths.html.as_uri(), "--dump-dom").stdout)

    # The hostile value did not run: the title is ours, no script element exists, the text shows.
    assert dom.find("title")[0]["text"].startswith("FINDINGS · trades 2026-10-25")
    assert dom.find("script") == [] and dom.find("img") == []
    assert any(json.dumps(HOSTILE) in e["text"] for e in dom.find("td", cls=("v",)))  # shown in JSON spelling

    verdict = dom.find(id="verdict")[0]
    assert "verdict-findings" in verdict["classes"] and "FINDINGS" in verdict["text"]
    assert "1,643 findings (null_dropped 1,200" in dom.find(id="headline")[0]["text"]

    assert len(dom.find("svg", id="hour-chart")) == 1
    assert len(dom.find("rect", cls=("bar", "store"))) == 25  # 25 hours on the October DST day
    assert len(dom.find("rect", cls=("bar", "api"))) == 25
    short = dom.find("g", cls=("hour", "short"))
    assert [g["attrs"]["data-hour"] for g in short] == ["2026-10-25T01:00:00Z", "2026-10-25T13:00:00Z"]
    # The lost hour's API bar is empty; the store bar is not.
    lost = [e for e in dom.elements if e["tag"] == "rect" and "bar" in e["classes"]][6:8]
    assert float(lost[0]["attrs"]["height"]) > 100 and float(lost[1]["attrs"]["height"]) == 0

    gap_rows = [tr for tr in dom.find("tr") if "2026-10-25T" in tr["text"] and "CET" in tr["text"]]
    assert len(gap_rows) == 2 and "437" in gap_rows[0]["text"]
    kinds = dom.find(id="kinds")[0]["text"]
    assert "missing_in_api" in kinds and "the API lost a record" in kinds
    fields = dom.find(id="fields")[0]["text"]
    assert "buy_order_id" in fields and "700" in fields
    assert len(dom.find("tr", cls=("diff",))) >= 3  # differing fields highlighted in the samples
    assert "FAIL" in dom.find(id="expectations")[0]["text"]

    shot = tmp_path / "findings.png"
    chromium(tmp_path, paths.html.as_uri(), "--window-size=1280,900", f"--screenshot={shot}")
    assert png_pixel(shot, 10, 10) == (0xC6, 0x28, 0x28)  # the red verdict banner, so the CSS applied


def test_incomplete_report_renders_in_chromium(cfg, tmp_path):
    paths = write_report(incomplete_result(), cfg)
    dom = Dom(chromium(tmp_path, paths.html.as_uri(), "--dump-dom").stdout)
    assert "INCOMPLETE" in dom.find(id="verdict")[0]["text"]
    assert dom.find(id="not-a-verdict")[0]["text"] == "The job could not complete — this is not a data verdict."
    assert "HTTP 503 Service Unavailable" in dom.find("pre", cls=("error",))[0]["text"]
    assert dom.find("svg", id="hour-chart") == []
    shot = tmp_path / "incomplete.png"
    chromium(tmp_path, paths.html.as_uri(), "--window-size=1280,600", f"--screenshot={shot}")
    assert png_pixel(shot, 10, 10) == (0xA1, 0x5C, 0x00)  # amber: not red, not green
