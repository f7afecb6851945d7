"""The console in a real browser (Playwright driving Debian's chromium): log in, see the fleet, open a device,
open a telemetry chart.

With ``EDGEWISE_SCREENSHOTS=1`` the fleet's screenshot is also written to docs/console.png (the README's).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.console.conftest import GROUP, THING, ConsoleCloud

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

README_SCREENSHOT = Path(__file__).parents[2] / "docs" / "console.png"


def test_log_in_see_the_fleet_and_open_a_device(
    console_cloud: ConsoleCloud, served_console: str, browser_page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    page.goto(f"{served_console}/")
    expect(page.get_by_role("heading", name="Log in to the Edgewise console")).to_be_visible()
    page.get_by_label("API token").fill(console_cloud.admin_token)
    page.get_by_role("button", name="Log in").click()

    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=THING, exact=True))
    expect(row).to_contain_text("online")
    expect(row).to_contain_text("HEALTHY")
    expect(row).to_contain_text(GROUP)
    expect(page.get_by_role("link", name="Fleet")).to_have_attribute("aria-current", "page")
    page.screenshot(path=tmp_path / "fleet.png", full_page=True)
    if os.environ.get("EDGEWISE_SCREENSHOTS") == "1":
        shutil.copyfile(tmp_path / "fleet.png", README_SCREENSHOT)

    row.get_by_role("link", name=THING, exact=True).click()
    expect(page.get_by_role("heading", name=THING, level=1)).to_be_visible()
    expect(page.get_by_role("region", name="Components")).to_contain_text("com.example.Sensor")
    expect(page.locator("#telemetry-chart canvas").first).to_be_visible()
    page.get_by_label("Desired state of the classic shadow").fill('{"rate": 3}')
    page.get_by_role("button", name="Save desired state").click()
    expect(page.get_by_role("region", name="Shadows")).to_contain_text('"rate": 3')
    page.screenshot(path=tmp_path / "device.png", full_page=True)

    page.get_by_role("link", name="Telemetry").click()
    expect(page.get_by_role("link", name="Telemetry")).to_have_attribute("aria-current", "page")
    page.get_by_label("Time range").select_option("24h")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#telemetry-chart canvas").first).to_be_visible()
    page.screenshot(path=tmp_path / "telemetry.png", full_page=True)
