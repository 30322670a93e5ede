"""Save a PNG of a report as a reader first sees it, in headless Chromium (tools/browser.py):

    python tools/screenshot_report.py docs/results/stm-lcqmc/report.html shot.png [--width 1280 --height 800] [--full]

The first screen (width x height CSS pixels) by default; --full makes the viewport as tall as the page. Prints
the console errors the page logged, and exits 1 if there were any (the PNG is written all the same); exits 2
without Chromium (apt-get install chromium chromium-driver)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import BrowserUnavailable, open_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Screenshot a report.html in headless Chromium.")
    ap.add_argument("report_html", type=Path)
    ap.add_argument("out_png", type=Path)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=800)
    ap.add_argument("--full", action="store_true", help="the whole page, not only the first screen")
    a = ap.parse_args(argv)
    try:
        page = open_report(a.report_html, width=a.width, height=a.height)
    except BrowserUnavailable as e:
        print(e, file=sys.stderr)
        return 2
    with page:
        page.screenshot(a.out_png, full=a.full)
        errors = page.console_errors()
    print(f"wrote {a.out_png}")
    for e in errors:
        print(f"console error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
