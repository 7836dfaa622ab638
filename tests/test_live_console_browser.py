"""The support console in a real browser: headless Chromium (Debian's package) via Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from domain.model import OrderStatus
from tests.factories import make_order, make_store
from tests.live_support import change_status, order_gid, running_server, store_gid

pytestmark = pytest.mark.e2e

# Flags the machine's closed network needs (no background lookups of Google's hosts).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium. On a machine without it the suite installs it itself (as root,
    with apt-get, like it starts its own PostgreSQL and Redis); it never skips."""
    found = shutil.which("chromium")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([apt, "update", "-qq"], check=False, env=env, timeout=600)
        subprocess.run(
            [apt, "install", "-y", "-qq", "--no-install-recommends", "chromium"],
            check=True,
            env=env,
            timeout=1200,
        )
        found = shutil.which("chromium")
        if found:
            return found
    pytest.fail(
        "the console browser test needs Debian's chromium: apt-get install chromium "
        "(or put a chromium on PATH)"
    )


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where the screenshot goes: ``GUESTGRAPH_TEST_ARTIFACTS`` or the test's tmp folder."""
    folder = Path(os.environ.get("GUESTGRAPH_TEST_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_the_console_shows_a_status_change_within_two_seconds(
    engine: AsyncEngine, settings: Settings, artifacts: Path, chromium: str
) -> None:
    store = await make_store(engine, name="Downtown")
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    await change_status(engine, order, OrderStatus.ACCEPTED)
    async with running_server(settings) as ws_url, async_playwright() as playwright:
        base = ws_url.replace("ws://", "http://").removesuffix("/graphql")
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/console?store={store_gid(store)}")
            status = page.locator(f'tr[data-order-id="{order_gid(order)}"] td.status')
            await expect(status).to_have_text("ACCEPTED", timeout=10_000)
            await expect(page.locator("#connection")).to_have_text("live")

            await change_status(engine, order, OrderStatus.READY)
            await expect(status).to_have_text("READY", timeout=2_000)
            await page.screenshot(path=str(artifacts / "console-live.png"))

            await change_status(engine, order, OrderStatus.COMPLETED)  # no longer open
            await expect(status).to_have_count(0, timeout=2_000)
        finally:
            await browser.close()
