"""report.html as a reader sees it: a real report of a tiny study, opened from disk in headless Chromium
(tools/browser.py: Selenium with the system's chromedriver), at a 1280x800 first screen. Skips, naming the
packages, where Chromium, chromedriver or selenium is missing; .ci/run installs the first two."""
import importlib.util
import struct
import sys
from pathlib import Path

import pytest

from conftest import ROOT, write_tiny_task
from test_report import tiny_study


def _load_browser():
    spec = importlib.util.spec_from_file_location("sdelab_tools_browser", ROOT / "tools" / "browser.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


browser = _load_browser()


def open_report(html_path, width=1280, height=800):
    """The report open in headless Chromium (a browser.Page: .driver, .js(), .console_errors(), .screenshot());
    skips the test when the browser is not installed. Close it (or use it in a `with`)."""
    try:
        return browser.open_report(html_path, width=width, height=height)
    except browser.BrowserUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def report_html(tmp_path_factory, request):
    """One report for the module: 2 designs x 2 sizes x 1 seed, plus the untuned model."""
    try:
        browser.find_browser()  # skip before building the model or training anything
    except browser.BrowserUnavailable as e:
        pytest.skip(str(e))
    from sdelab.cli import main
    tiny_model_dir = request.getfixturevalue("tiny_model_dir")
    tmp = tmp_path_factory.mktemp("browser_report")
    study = tiny_study(tmp, tiny_model_dir, write_tiny_task(tmp / "task"), out="study",
                       designs=["es-sde", "es-sde+inst-last"], seeds=[0])
    assert main(["run", str(study)]) == 0
    assert main(["report", str(tmp / "study")]) == 0
    return tmp / "study" / "report.html"


@pytest.fixture(scope="module")
def page(report_html):
    p = open_report(report_html)
    yield p
    p.close()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_renders_cleanly(page, tmp_path):
    assert page.js("return [window.innerWidth, window.innerHeight]") == [1280, 800]
    assert page.console_errors() == [], "the report logged console errors"
    h1 = page.js("const h = document.querySelector('h1'); if (!h) return null; const r = h.getBoundingClientRect();"
                 " return {text: h.innerText, top: r.top, bottom: r.bottom, height: r.height,"
                 " shown: h.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})}")
    assert h1 is not None, "the report has no <h1>"
    assert h1["text"].strip() and h1["shown"] and h1["height"] > 0, h1
    assert 0 <= h1["top"] and h1["bottom"] <= 800, f"the first <h1> is not in the first screen: {h1}"
    imgs = page.js("return [...document.images].map(i => ({src: i.src.slice(0, 60), complete: i.complete,"
                   " w: i.naturalWidth}))")
    assert imgs, "the report shows no image (its plots)"
    broken = [i["src"] for i in imgs if not (i["complete"] and i["w"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    shot = page.screenshot(tmp_path / "first_screen.png")
    data = shot.read_bytes()
    assert len(data) > 1000 and _png_size(data) == (1280, 800)


def test_headline_is_in_the_first_screen(page):
    box = page.js("const h = document.getElementById('headline'); if (!h) return null;"
                  " const t = h.querySelector('table'); if (!t) return {top: h.getBoundingClientRect().top};"
                  " const r = t.getBoundingClientRect(); return {top: h.getBoundingClientRect().top, table: r.top,"
                  " right: r.right, rows: t.rows.length}")
    assert box is not None, "no element with id 'headline' in report.html"
    height, width = page.js("return [window.innerHeight, window.innerWidth]")
    assert box["top"] < height, f"#headline starts {box['top']}px down, below the first screen"
    assert "table" in box, "the headline holds no table"
    assert box["table"] < height and box["rows"] >= 2, f"the headline table is not in the first screen: {box}"
    assert page.js("return document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
