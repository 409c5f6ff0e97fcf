"""report.html in a real headless browser (Debian's Chromium, driven by Playwright): the page
loads with no console errors or failed requests, the tables and plots render, and every
failure clip loads its metadata (readyState >= 1: the browser can decode our mp4s)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from embodied_mm.report.html import write_report

CHROMIUM = os.environ.get("EMBODIED_MM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [dev] extra")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (as root: apt-get install chromium; `make install` "
                "does it)", allow_module_level=True)  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser, page_path: Path):
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)  # fmt: skip
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(page_path.resolve().as_uri(), wait_until="load")
    return page, problems


def _wait_videos(page) -> list[int]:
    page.wait_for_function(
        "() => [...document.querySelectorAll('.episode.failure video')]"
        ".every(v => v.readyState >= 1 || v.error)",
        timeout=20_000,
    )
    return page.evaluate(
        "() => [...document.querySelectorAll('.episode.failure video')]"
        ".map(v => v.error ? -v.error.code : v.readyState)"
    )


def test_plain_report_renders_and_failure_clips_load(browser, plain_run: Path) -> None:
    page, problems = _open(browser, write_report(plain_run))
    assert page.locator("#tasks tbody tr").count() == 1
    assert page.locator(".episode").count() == 5
    states = _wait_videos(page)
    assert len(states) == 2 and all(s >= 1 for s in states), states
    first = page.locator(".episode").first
    assert "failure" in first.get_attribute("class")
    assert page.evaluate("() => document.querySelector('.episode.failure video').videoWidth") == 64
    assert problems == []
    page.close()


def test_suite_report_plots_have_one_point_per_level(browser, suite_run: Path) -> None:
    page, problems = _open(browser, write_report(suite_run))
    rows = [page.locator(f"#factor-{i} tbody tr").count() for i in range(2)]
    assert rows == [3, 4]
    points = [page.locator(f"#plot-{i} g#success-points use").count() for i in range(2)]
    assert points == [3, 4]
    box = page.locator("#plot-1 svg").bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 150  # drawn, not empty
    states = _wait_videos(page)
    assert len(states) == 9 and all(s >= 1 for s in states), states
    assert problems == []
    page.close()
