"""The console in a real headless browser (Debian's chromium, driven by
Selenium through chromium-driver): sign in with a one-time link, filter the
timeline, open a person's report, mark an emergency access reviewed.
Screenshots are kept under test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_server import _start, _stop, gateway_command, register, token_for
from tests.support.browser import chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"


@pytest.fixture
def browser() -> Iterator[object]:
    driver = chromium()
    driver.implicitly_wait(10)  # type: ignore[attr-defined]  # pages load after each click
    yield driver
    driver.quit()  # type: ignore[attr-defined]


def test_an_auditor_signs_in_filters_reads_a_report_and_reviews(
    browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import url_contains
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver: object = browser
    url = f"sqlite:///{tmp_path}/gateway.db"
    server = _start(url, tmp_path)
    try:
        ambulance_key = register(
            url,
            tmp_path,
            "ambulance",
            "--kind",
            "ambulance",
            "--org",
            "RRU",
            "--scope",
            "system/*.rs",
        )
        gp_key = register(url, tmp_path, "gp-system")
        register(
            url,
            tmp_path,
            "auditor",
            "--kind",
            "auditor",
            "--org",
            "X26",
            "--scope",
            "system/Patient.rs",
        )
        gp = token_for(url, "gp-system", gp_key)
        with httpx.Client(base_url=server.base, timeout=10) as http:
            created = http.post(
                "/fhir/Patient",
                json={"resourceType": "Patient"},
                headers={"Authorization": f"Bearer {gp}"},
            )
            patient = created.json()["id"]
            emergency = token_for(
                url,
                "ambulance",
                ambulance_key,
                "--purpose",
                "ETREAT",
                "--reason",
                "collapsed at home",
            )
            http.get(f"/fhir/Patient/{patient}", headers={"Authorization": f"Bearer {emergency}"})
        link = gateway_command(
            url, "console", "login-link", "--client", "auditor", "--url", server.base
        )
        assert link.returncode == 0, link.stderr
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

        driver.get(link.stdout.strip())  # type: ignore[attr-defined]
        assert "Accesses" in driver.find_element(By.TAG_NAME, "h1").text  # type: ignore[attr-defined]
        driver.save_screenshot(str(ARTIFACTS / "1-timeline.png"))  # type: ignore[attr-defined]

        Select(driver.find_element(By.NAME, "purpose")).select_by_visible_text("ETREAT")  # type: ignore[attr-defined]
        driver.find_element(By.CSS_SELECTOR, "#filters button").click()  # type: ignore[attr-defined]
        WebDriverWait(driver, 10).until(url_contains("purpose=ETREAT"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#accesses tbody tr")  # type: ignore[attr-defined]
        assert len(rows) == 1 and "RRU" in rows[0].text and "ETREAT" in rows[0].text
        driver.save_screenshot(str(ARTIFACTS / "2-filtered.png"))  # type: ignore[attr-defined]

        rows[0].find_element(By.CSS_SELECTOR, "td a").click()
        WebDriverWait(driver, 10).until(url_contains("/console/people/"))
        report = driver.find_element(By.ID, "report").text  # type: ignore[attr-defined]
        assert "collapsed at home" in report
        driver.save_screenshot(str(ARTIFACTS / "3-person-report.png"))  # type: ignore[attr-defined]

        driver.find_element(By.LINK_TEXT, "Emergency reviews").click()  # type: ignore[attr-defined]
        WebDriverWait(driver, 10).until(url_contains("/console/reviews"))
        driver.find_element(By.NAME, "note").send_keys("Crew called from the home: confirmed")  # type: ignore[attr-defined]
        driver.find_element(By.CSS_SELECTOR, "#queue button").click()  # type: ignore[attr-defined]
        WebDriverWait(driver, 10).until(url_contains("done="))
        assert "marked reviewed" in driver.find_element(By.ID, "done").text  # type: ignore[attr-defined]
        assert "Nothing waits" in driver.find_element(By.ID, "queue").text  # type: ignore[attr-defined]
        driver.save_screenshot(str(ARTIFACTS / "4-reviewed.png"))  # type: ignore[attr-defined]

        driver.find_element(By.LINK_TEXT, "Log verification").click()  # type: ignore[attr-defined]
        WebDriverWait(driver, 10).until(url_contains("/console/verify"))
        driver.find_element(By.CSS_SELECTOR, "form button").click()  # type: ignore[attr-defined]
        assert "Intact" in driver.find_element(By.ID, "result").text  # type: ignore[attr-defined]
        driver.save_screenshot(str(ARTIFACTS / "5-verified.png"))  # type: ignore[attr-defined]
    finally:
        _stop(server)
