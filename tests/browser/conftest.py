"""Real headless Chromium for the browser tests, driven by Selenium through Debian's chromedriver.

Only a missing browser skips these tests (install: `apt-get install chromium chromium-driver`);
Selenium itself is a test dependency and must be installed. LABELLOOP_CHROMIUM and
LABELLOOP_CHROMEDRIVER point at other binaries; LABELLOOP_SCREENSHOT_DIR, when set, also gets a
copy of every screenshot the tests take.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,900", "--hide-scrollbars",
]


def _binary(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env] if os.access(os.environ[env], os.X_OK) else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium_binaries() -> tuple[str, str]:
    browser = _binary("LABELLOOP_CHROMIUM", "chromium", "chromium-browser")
    driver = _binary("LABELLOOP_CHROMEDRIVER", "chromedriver")
    if not browser or not driver:
        pytest.skip(
            "chromium is not installed (needs chromium and chromedriver on PATH: "
            "apt-get install chromium chromium-driver)"
        )
    return browser, driver


@pytest.fixture(scope="module")
def open_browser(chromium_binaries):
    """open_browser() -> a fresh Chromium (own profile, so own cookies: a separate worker).

    Each is quit at the end of the test module at the latest (call .quit() to end one sooner).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_binaries
    drivers, profiles = [], []

    def open_() -> "webdriver.Chrome":
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in FLAGS:
            options.add_argument(flag)
        profile = tempfile.mkdtemp(prefix="labelloop-chromium-")
        profiles.append(profile)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        driver.set_page_load_timeout(60)
        drivers.append(driver)
        return driver

    yield open_
    for driver in drivers:
        process = getattr(driver.service, "process", None)
        if process is not None and process.poll() is None:  # not quit by its test
            try:
                driver.quit()
            except Exception:
                pass
    for profile in profiles:
        shutil.rmtree(profile, ignore_errors=True)


def _screenshot(driver, path: Path, full_page: bool = True) -> Path:
    """Save a PNG of the page (whole page height when full_page); copied to LABELLOOP_SCREENSHOT_DIR too."""
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, max(600, min(int(height) + 40, 8000)))
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    extra = os.environ.get("LABELLOOP_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


def _severe_console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


@pytest.fixture(scope="session")
def screenshot():
    """screenshot(driver, path, full_page=True) -> path."""
    return _screenshot


@pytest.fixture(scope="session")
def console_errors():
    """console_errors(driver) -> the SEVERE messages of the browser console so far."""
    return _severe_console_errors
