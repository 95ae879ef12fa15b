"""The dashboard in real headless Chromium: change a status on the board, see the file and feed."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.api.conftest import Server
from tests.conftest import REQUIRED

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("chromium is not installed (ZYFLOW_REQUIRE_SERVICES=1)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_board_status_change_flips_checkbox_and_shows_in_feed(
    server: Server, chromium: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    path = server.project / "openspec/changes/add-webhooks/tasks.md"
    assert b"- [ ] 1.3 Secret rotation" in path.read_bytes()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            expect(page.locator("#status")).to_have_text("live", timeout=10_000)
            page.locator(".change[data-change='add-webhooks']").click()
            card = page.locator(".card", has_text="Secret rotation")
            expect(card).to_be_visible()
            expect(page.locator(".column[data-status='todo']")).to_contain_text("Secret rotation")
            card.locator("select").select_option("done")
            expect(page.locator(".column[data-status='done']")).to_contain_text(
                "Secret rotation", timeout=5_000
            )
            feed = page.locator("#feed .event[data-type='TaskCompleted']")
            expect(feed.first).to_be_visible(timeout=5_000)
            deadline = time.monotonic() + 5
            while b"- [x] 1.3 Secret rotation" not in path.read_bytes():
                assert time.monotonic() < deadline, "checkbox not flipped in tasks.md"
                time.sleep(0.05)
            # An edit on disk shows up on the open board without a reload.
            path.write_bytes(path.read_bytes() + b"- [ ] 3.9 Added while the board is open\n")
            expect(page.locator(".column[data-status='todo']")).to_contain_text(
                "Added while the board is open", timeout=5_000
            )
            # Search finds Korean titles.
            page.fill("#search", "형태소")
            expect(page.locator("#results")).to_contain_text("한국어 형태소 분석기 조사")
            if os.environ.get("ZYFLOW_SCREENSHOT"):
                page.screenshot(path=os.environ["ZYFLOW_SCREENSHOT"], full_page=True)
        finally:
            browser.close()
