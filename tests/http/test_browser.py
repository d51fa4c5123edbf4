"""The status page in a real headless browser: Debian's chromium driven by Playwright.

Playwright's own browser download is never used (``executable_path``): no internet needed.
Without chromium (or Playwright) the test skips, unless ORCHESTRATOR_REQUIRE_BROWSER=1 (set
by .ci/run), which turns a missing browser into a failure. Screenshots are kept under the
test's tmp_path and, when ORCHESTRATOR_TEST_ARTIFACTS names a directory, copied there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import SID_A, Endpoint

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The scene's exports want 10 + 3 days.
WANTED_DAYS = 13
TIMEOUT_MS = 60_000


def _browser_or_skip() -> Any:
    """Playwright's async API, or skip (fail with ORCHESTRATOR_REQUIRE_BROWSER=1)."""
    problem = None
    if not (shutil.which("chromium") or Path(CHROMIUM).exists()):
        problem = "chromium not installed (Debian: apt-get install chromium)"
    try:
        from playwright import async_api
    except ImportError:  # pragma: no cover - the test extra installs it
        problem = problem or "playwright not installed (pip install playwright)"
        async_api = None
    if problem is not None:
        if os.environ.get("ORCHESTRATOR_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{problem} and ORCHESTRATOR_REQUIRE_BROWSER=1")
        pytest.skip(problem)
    return async_api


def _keep(shot: Path) -> None:
    target = os.environ.get("ORCHESTRATOR_TEST_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(target) / shot.name)


@pytest.mark.slow
async def test_status_page_in_chromium(endpoint: Endpoint, tmp_path: Path) -> None:
    """The page loads at 1,280 px and on a phone: one cell per wanted day, the risk banner,
    titles naming status and job, nothing wider than the phone's screen; screenshots kept."""
    if endpoint.store._engine.dialect.name != "sqlite":
        pytest.skip("the page's rendering does not depend on the database: once is enough")
    api = _browser_or_skip()
    url = str(endpoint.client.make_url("/"))
    async with api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=ARGS, headless=True, timeout=TIMEOUT_MS
        )
        try:
            for name, viewport, mobile in [
                ("desktop", {"width": 1280, "height": 900}, False),
                ("phone", {"width": 390, "height": 844}, True),
            ]:
                context = await browser.new_context(
                    viewport=viewport, is_mobile=mobile, has_touch=mobile
                )
                page = await context.new_page()
                # Anything but our own server is refused: the page needs no internet.
                remote: list[str] = []

                async def only_local(route: Any, remote: list[str] = remote) -> None:
                    if route.request.url.startswith(url.rstrip("/")):
                        await route.continue_()
                    else:
                        remote.append(route.request.url)
                        await route.abort()

                await page.route("**/*", only_local)
                response = await page.goto(url, timeout=TIMEOUT_MS)
                assert response is not None and response.status == 200
                assert await page.locator(".calendar .cell").count() == WANTED_DAYS
                banner = page.locator(".banner.risk")
                assert await banner.count() == 1
                assert await banner.is_visible()
                assert "at risk" in await banner.inner_text()
                assert "1d 0h" in await banner.inner_text()
                title = await page.locator(".cell").first.get_attribute("title")
                assert title == f"2024-05-20: Completed, job {SID_A}, not archived"
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], f"{name}: page is {width}px wide"
                assert remote == []
                shot = tmp_path / f"status-page-{name}.png"
                await page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 1000
                _keep(shot)
                await context.close()
        finally:
            await browser.close()
