"""A real headless browser for the tests that look at pages: Debian's
chromium, driven by Selenium through chromium-driver. Skipped where it is not
installed, and a failure on CI, where it must be."""

from __future__ import annotations

import os
import shutil

import pytest


def chromium(width: int = 1400, height: int = 1000, *, phone: bool = False) -> object:
    """A headless Chromium with a window of ``width`` by ``height`` CSS
    pixels; ``phone``: as a phone shows a page (its viewport, touch, and a
    device pixel ratio of 3)."""
    driver_path = shutil.which("chromedriver")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not driver_path or not browser:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                "chromium and chromium-driver are needed (Debian: chromium chromium-driver)"
            )
        pytest.skip("chromium-driver is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    if phone:
        options.add_experimental_option(
            "mobileEmulation",
            {
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 3.0},
                "userAgent": "Mozilla/5.0 (Linux; Android 14) Mobile",
            },
        )
    else:
        options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(driver_path), options=options)
