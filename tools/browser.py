"""Open a local HTML file (a report.html) in headless Chromium, driven by Selenium through the system's
chromedriver (Debian: `apt-get install chromium chromium-driver`; nothing is downloaded at run time), with the
page's console collected. Shared by tests/e2e/test_browser.py and tools/screenshot_report.py.

    with open_report("docs/results/stm-lcqmc/report.html") as page:
        page.js("return document.title")
        page.console_errors()          # the SEVERE console entries so far (a JS error, a failed load)
        page.screenshot("shot.png")    # the first screen; full=True for the whole page

The viewport is set exactly (width x height CSS pixels, scale 1) with the DevTools protocol's device-metrics
override, so `window.innerHeight == height` whatever the headless window's own chrome takes."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MISSING = "headless Chromium not found: apt-get install chromium chromium-driver"
# No background traffic: this machine has no network but its package registries, and Chromium's update,
# sync and safe-browsing connections would be refused (or hang) at every start.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-quic", "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--hide-scrollbars", "--force-device-scale-factor=1"]


class BrowserUnavailable(RuntimeError):
    """Chromium, chromedriver or the selenium package is not installed (tests skip on it)."""


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths; $CHROMIUM and $CHROMEDRIVER override the search of PATH."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise BrowserUnavailable(f"{MISSING} (and the selenium package: pip install -e '.[test]' -c constraints.txt)")
    chromium = shutil.which(os.environ["CHROMIUM"]) if os.environ.get("CHROMIUM") else next(
        (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))), None)
    driver = shutil.which(os.environ.get("CHROMEDRIVER") or "chromedriver")
    if not chromium or not driver:
        raise BrowserUnavailable(f"{MISSING} (no {'chromium' if not chromium else 'chromedriver'} on PATH)")
    return chromium, driver


class Page:
    """A file open in headless Chromium: `driver` is the Selenium WebDriver, for anything not wrapped here."""

    def __init__(self, driver, width: int, height: int, profile: str):
        self.driver, self.width, self.height, self._profile = driver, width, height, profile
        self._console: list[dict] = []

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def console(self) -> list[dict]:
        """Every console entry so far ({'level', 'message', 'source', 'timestamp'}); chromedriver hands each
        entry out once, so they are kept here."""
        self._console += self.driver.get_log("browser")
        return list(self._console)

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.console() if e.get("level") == "SEVERE"]

    def _metrics(self, height: int) -> None:
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def screenshot(self, out: str | Path, full: bool = False) -> Path:
        """A PNG of the first screen (width x height), or with full=True of the whole page: the viewport is
        made as tall as the document for the shot, then set back."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if full:
            h = int(self.js("return Math.ceil(Math.max(document.documentElement.scrollHeight,"
                            " document.body ? document.body.scrollHeight : 0))"))
            self._metrics(max(h, self.height))
        try:
            self.js("window.scrollTo(0, 0)")
            if not self.driver.save_screenshot(str(out)):
                raise RuntimeError(f"Chromium took no screenshot of {self.driver.current_url}")
        finally:
            if full:
                self._metrics(self.height)
        return out

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_report(html_path: str | Path, width: int = 1280, height: int = 800, timeout: float = 30) -> Page:
    """Open a local HTML file at a width x height viewport and wait for it (and its images) to load.
    Raises BrowserUnavailable when Chromium, chromedriver or selenium is missing."""
    chromium, chromedriver = find_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    html = Path(html_path).resolve()
    if not html.is_file():
        raise FileNotFoundError(html)
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="sdelab-chromium-")
    for flag in FLAGS + [f"--window-size={width},{height}", f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    opts.page_load_strategy = "normal"  # get() returns after the load event: inline and file images are in
    try:
        driver = webdriver.Chrome(options=opts, service=Service(executable_path=chromedriver))
    except Exception:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    page = Page(driver, width, height, profile)
    try:
        page._metrics(height)
        driver.set_page_load_timeout(timeout)
        driver.get(html.as_uri())
        WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"))
    except BaseException:
        page.close()
        raise
    return page
