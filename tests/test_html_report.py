"""The HTML report: one well-formed, self-contained page with every indicator and chart."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from medaid.report import html as html_report
from medaid.report.html import render_html, write_html
from medaid.report.indicators import compute, figure_label, figure_text

try:  # the hand-made year of test_report.py
    from test_report import year_frame
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.test_report import year_frame

CHARTS = ("chart-month", "chart-hospital", "chart-brackets", "chart-ratio")


@pytest.fixture(scope="module")
def rep():
    return compute(year_frame(), source="year.csv", budget=10_000_000)


@pytest.fixture(scope="module")
def page(rep):
    return render_html(rep, "en")


def svg(root: ET.Element, cid: str) -> ET.Element:
    found = [e for e in root.iter("svg") if e.get("id") == cid]
    assert len(found) == 1, cid
    return found[0]


def test_the_page_is_well_formed_xml(page):
    root = ET.fromstring(page)
    assert root.tag == "html"


class _Balance(HTMLParser):
    VOID = {"meta", "br", "img", "hr", "input", "link"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_the_page_parses_as_html_with_balanced_tags(page):
    p = _Balance()
    p.feed(page)
    p.close()
    assert p.errors == [] and p.stack == []


def test_the_page_is_self_contained(page):
    assert "http://" not in page and "https://" not in page
    for attr in re.findall(r'\b(?:src|href|xlink:href|action)\s*=\s*"([^"]*)"', page):
        assert not attr.startswith("//") and ":" not in attr, attr
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert "@import" not in page and "url(" not in page and "@font-face" not in page


def test_every_indicator_is_on_the_page(rep, page):
    root = ET.fromstring(page)
    rows = {tr.get("id"): tr for tr in root.iter("tr") if tr.get("id", "").startswith("fig-")}
    assert len(rep.figures) >= 20
    for f in rep.figures:
        tr = rows[f"fig-{f.key}"]
        cells = ["".join(td.itertext()) for td in tr.findall("td")]
        assert cells[0] == figure_label(f) and cells[1] == figure_text(f)
        assert cells[2] == f.source and cells[3] == f"{f.rows:,}" and cells[4] == f"{f.missing:,}"
    # the headline numbers of the hand-made year, as a manager reads them
    for text in ("111,293.82", "111.29%", "8.55%", "66.67%", "27,823.46"):
        assert text in page


def test_every_chart_is_an_inline_svg_with_title_axes_and_bars(page):
    root = ET.fromstring(page)
    bars = {}
    for cid in CHARTS:
        s = svg(root, cid)
        assert s.find("title") is not None and s.find("title").text
        texts = ["".join(t.itertext()) for t in s.iter("text")]
        assert s.find("title").text in texts  # the title is drawn, not only announced
        assert any(t in ("thousand yuan", "yuan", "%") for t in texts)  # the axis says its unit
        assert s.findall("line")  # axes and grid
        bars[cid] = [r for r in s.iter("rect") if r.get("class") == "bar"]
    assert len(bars["chart-month"]) == 3  # 2024-01, 2024-03, 2025-01
    assert len(bars["chart-hospital"]) == 2
    assert len(bars["chart-brackets"]) == 4 * 3  # brackets 0-3 × self-pay, relief, patient pays
    assert len(bars["chart-ratio"]) == 1  # only inpatient claims carry a total cost


def test_month_bars_are_proportional_to_relief(page):
    root = ET.fromstring(page)
    heights = [int(r.get("height")) for r in svg(root, "chart-month").iter("rect") if r.get("class") == "bar"]
    reliefs = [2_330_000, 7_970_000, 829_382]
    for h, v in zip(heights, reliefs):
        # pixel heights floor the exact proportion: within one pixel of h_max × v / v_max
        assert abs(h * reliefs[1] - heights[1] * v) <= reliefs[1]
    assert heights[1] > heights[0] > heights[2] > 0


def test_the_chinese_page(rep):
    page = render_html(rep, "zh")
    root = ET.fromstring(page)
    assert root.get("lang") == "zh-CN"
    for text in ("医疗救助年度报告", "医疗救助人次", "每月救助金额", "各医疗机构救助金额", "救助后个人自付比例",
                 "万元"):
        assert text in page


def test_written_atomically(rep, tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    write_html(rep, target)
    first = target.read_text(encoding="utf-8")
    assert first == render_html(rep, "en")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    from medaid.io import writers as exports  # the one atomic writer the page is written through

    monkeypatch.setattr(exports.os, "replace", boom)
    with pytest.raises(OSError):
        write_html(rep, target, "zh")
    assert target.read_text(encoding="utf-8") == first  # the old page is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temp file left


def test_a_page_with_no_rows_still_renders(tmp_path):
    r = compute(year_frame(), year=2030)
    root = ET.fromstring(render_html(r, "en"))
    for cid in CHARTS:
        assert "no data" in "".join(svg(root, cid).itertext())


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_page_renders_in_a_headless_browser(rep, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no headless browser: chromium is not installed (apt-get install chromium; CI installs it)")
    page = tmp_path / "report.html"
    write_html(rep, page)
    shot = tmp_path / "shot.png"
    base = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr", "--v=0",
    ]
    env = dict(os.environ, HOME=str(tmp_path))
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for cid in CHARTS:
        assert f'id="{cid}"' in dom.stdout
    assert dom.stdout.count("<svg") == len(CHARTS)
    assert "111,293.82" in dom.stdout
    problems = [ln for ln in dom.stderr.splitlines()
                if "CONSOLE" in ln or "Uncaught" in ln or "net::ERR" in ln or "Failed to load resource" in ln]
    assert problems == []
    done = subprocess.run(base + ["--hide-scrollbars", "--window-size=1200,2400", f"--screenshot={shot}",
                                  page.as_uri()], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_many_months_and_hospitals_stay_readable():
    import datetime as dt

    import polars as pl

    n = 600
    df = pl.DataFrame({
        "claim_id": [f"C{i}" for i in range(n)],
        "person_id": [f"P{i % 97}" for i in range(n)],
        "date": [dt.date(2023 + (i % 30) // 12, 1 + (i % 30) % 12, 1) for i in range(n)],
        "hospital": [f"第{i % 40}人民医院附属专科门诊部和住院部分院" for i in range(n)],
        "relief": [100 * (i % 40 + 1) for i in range(n)],
    })
    root = ET.fromstring(render_html(compute(df), "zh"))
    months = [r for r in svg(root, "chart-month").iter("rect") if r.get("class") == "bar"]
    assert len(months) == 30
    assert any("rotate(-40" in (t.get("transform") or "") for t in svg(root, "chart-month").iter("text"))
    hospitals = svg(root, "chart-hospital")
    bars = [r for r in hospitals.iter("rect") if r.get("class") == "bar"]
    assert len(bars) == html_report.TOP_HOSPITALS
    labels = ["".join(t.itertext()) for t in hospitals.iter("text")]
    assert any(lbl.startswith("其他 (25)") for lbl in labels)
    # the 'others' bar carries the sum of the 25 smallest hospitals' relief
    assert bars[-1].find("title").text.endswith(f"{sum(100 * (k + 1) * 15 for k in range(25)) // 100:,}.00")
