"""The scan report in a real headless Chromium: loads cleanly, sorts, filters, shows a case.

Needs Debian's ``chromium`` + ``chromium-driver`` and ``selenium``; skipped when any is missing.
Saves a full-page screenshot to ``tests/artifacts/report.png`` for a human to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from qsaudit.reports import render_report

pytestmark = pytest.mark.browser

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def driver(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    if CHROMIUM is None or not Path(CHROMEDRIVER).is_file():
        pytest.skip("headless Chromium (chromium, chromium-driver) is not installed")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must never try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,900",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _column(drv, table_id: str, col: str) -> list[str]:
    return drv.execute_script(
        """const t = document.getElementById(arguments[0]);
           const heads = [...t.tHead.rows[0].cells].map(th => th.dataset.col);
           const i = heads.indexOf(arguments[1]);
           return [...t.tBodies[0].rows].map(r => r.cells[i].textContent);""",
        table_id, col,
    )


def _numbers(texts: list[str]) -> list[float]:
    return [float(t) for t in texts if t != ""]


def _wait(drv, condition, timeout: float = 10.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(drv, timeout, poll_frequency=0.05).until(condition)


def test_empty_report_loads_without_errors(driver, tmp_path):
    import pandas as pd

    from qsaudit.columns import RESULT_COLUMNS, SLICE_COLUMNS, names

    page = render_report(pd.DataFrame(columns=names(RESULT_COLUMNS)),
                         pd.DataFrame(columns=names(SLICE_COLUMNS)), tmp_path / "empty.html")
    driver.get(page.as_uri())
    assert [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"] == []
    assert _column(driver, "label-table", "case_id") == []
    assert driver.find_element("id", "label-empty").is_displayed()


def test_report_loads_sorts_filters_and_screenshot(driver, report_inputs, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    results, slices, thumbs = report_inputs
    page = render_report(results, slices, tmp_path / "report.html", thumbnails=thumbs,
                         dataset="toy", model="test-model", settings={"slices": 6, "seed": 0})
    driver.get(page.as_uri())

    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == [], f"console errors: {severe}"

    # Every label is in the table, worst first by default; problems sort after the scored ones.
    dsc = _column(driver, "label-table", "predicted_dsc")
    assert len(dsc) == len(results)
    assert float(dsc[0]) == pytest.approx(0.12)
    assert dsc[-1] == ""

    header = driver.find_element(By.CSS_SELECTOR, '#label-table th[data-col="predicted_dsc"]')
    header.click()  # already ascending: the click turns it descending
    assert header.get_attribute("aria-sort") == "descending"
    values = _numbers(_column(driver, "label-table", "predicted_dsc"))
    assert values == sorted(values, reverse=True) and len(values) == len(results) - 1

    driver.find_element(By.CSS_SELECTOR, '#label-table th[data-col="case_id"]').click()
    cases = _column(driver, "label-table", "case_id")
    assert cases == sorted(cases, key=lambda c: int(c.removeprefix("case")))

    driver.find_element(By.ID, "q").send_keys("spleen")  # applied after a short typing pause
    _wait(driver, lambda d: set(_column(d, "label-table", "label")) == {"spleen"})
    driver.find_element(By.ID, "q").clear()
    driver.execute_script("document.getElementById('q').dispatchEvent(new Event('input'))")
    _wait(driver, lambda d: len(_column(d, "label-table", "label")) == len(results))
    Select(driver.find_element(By.ID, "structure")).select_by_value("kidney_left")
    assert set(_column(driver, "label-table", "structure")) == {"kidney_left"}
    Select(driver.find_element(By.ID, "structure")).select_by_value("")
    driver.find_element(By.ID, "flagged").click()
    assert _column(driver, "label-table", "label") == ["aorta"]
    driver.find_element(By.ID, "flagged").click()

    # Per-case view: a case in the case table shows only that case's labels.
    button = driver.find_element(By.XPATH, '//table[@id="case-table"]//button[text()="case3"]')
    button.click()
    assert set(_column(driver, "label-table", "case_id")) == {"case3"}
    assert "unreadable" in _column(driver, "label-table", "status")
    assert driver.find_element(By.ID, "case-filter").is_displayed()
    driver.find_element(By.ID, "case-clear").click()
    assert len(_column(driver, "label-table", "case_id")) == len(results)

    # A worst-label card links to its case's view.
    driver.find_element(By.CSS_SELECTOR, "#worst a.case-link").click()
    _wait(driver, lambda d: set(_column(d, "label-table", "case_id")) == {"case1"})
    driver.find_element(By.ID, "case-clear").click()

    thumbs_loaded = driver.execute_script(
        "return [...document.querySelectorAll('img.thumb, img.plot')]"
        ".map(i => i.complete && i.naturalWidth > 0)")
    assert thumbs_loaded and all(thumbs_loaded)
    assert [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"] == []

    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(int(height) + 40, 8000))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


@pytest.fixture
def audited_folder(tmp_path):
    """A results folder with its report.html, on which every analysis command has run."""
    import pandas as pd
    from typer.testing import CliRunner

    from qsaudit.analyses.bias_simulation import simulate_bias_data
    from qsaudit.cli import app
    from qsaudit.columns import SLICE_COLUMNS, names

    results, meta = simulate_bias_data(n_patients=30, structures=("liver", "spleen", "aorta"),
                                       sex_effect=0.08, seed=5)
    results.loc[results.index[:3], ["status", "predicted_dsc"]] = ["unreadable", None]
    folder = tmp_path / "audit"
    folder.mkdir()
    results.to_csv(folder / "results.csv", index=False)
    render_report(results, pd.DataFrame(columns=names(SLICE_COLUMNS)), folder / "report.html")
    truth = results[["case_id", "label"]].assign(
        true_dsc=(results["predicted_dsc"].fillna(0.5) - 0.05).clip(0, 1))
    truth.to_csv(tmp_path / "truth.csv", index=False)
    meta.table[["patient_id", "age", "sex"]].rename(columns={"patient_id": "image_id"}).to_csv(
        tmp_path / "meta.csv", index=False)
    runner = CliRunner()
    for args, code in ((["evaluate", "--truth", tmp_path / "truth.csv"], 0),
                       (["bias", "--meta", tmp_path / "meta.csv"], 0),
                       (["budget", "--fraction", "0.2", "--truth", tmp_path / "truth.csv",
                         "--draws", "20"], 0),
                       (["select", "--top", "0.5"], 0),
                       (["gate", "--min-dsc", "0.7", "--junit", tmp_path / "ci" / "gate.xml"], 1)):
        out = runner.invoke(app, [*map(str, args), "--results", str(folder)])
        assert out.exit_code == code, out.output
    return folder


def _broken_links(drv, page: Path) -> list[str]:
    """Links of the open page that lead nowhere: a missing file or an unknown #anchor."""
    from urllib.parse import unquote, urlparse

    hrefs = drv.execute_script("return [...document.links].map(a => a.getAttribute('href'))")
    broken = []
    for href in hrefs:
        if href.startswith("#case="):  # handled by the page's script
            continue
        if href.startswith("#"):
            if not drv.execute_script("return !!document.getElementById(arguments[0])", href[1:]):
                broken.append(href)
            continue
        target = (page.parent / unquote(urlparse(href).path)).resolve()
        if not target.is_file():
            broken.append(href)
    return broken


def _loads_cleanly(drv) -> None:
    severe = [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == [], f"console errors: {severe}"
    images = drv.execute_script(
        "return [...document.images].filter(i => i.getAttribute('src'))"  # the viewer's is empty
        ".map(i => i.complete && i.naturalWidth > 0)")
    assert all(images), "an image did not load"


def test_report_is_the_home_of_every_analysis(driver, audited_folder):
    from selenium.webdriver.common.by import By

    report = audited_folder / "report.html"
    driver.get(report.as_uri())
    _loads_cleanly(driver)
    cards = driver.find_elements(By.CSS_SELECTOR, "#analyses article.analysis")
    assert [c.get_attribute("id") for c in cards] == [
        "analysis-evaluate", "analysis-bias", "analysis-budget", "analysis-select",
        "analysis-gate"]
    gate = driver.find_element(By.ID, "analysis-gate")
    assert "Gate failed" in gate.text and "bad" in gate.get_attribute("class")
    assert "Pearson r" in driver.find_element(By.ID, "analysis-evaluate").text
    assert _broken_links(driver, report) == []
    linked = {a.get_attribute("href").rsplit("/", 1)[-1] for a in
              driver.find_elements(By.CSS_SELECTOR, "#analyses a")}
    assert {"evaluation.png", "bias.html", "correction_list.csv", "selected.csv",
            "gate.xml"} <= linked
    # the interval is explained, and the long "not scored" list is folded away
    assert "90% prediction interval" in driver.find_element(By.ID, "worst").text
    assert not driver.find_element(By.CSS_SELECTOR, "#problems table").is_displayed()
    driver.find_element(By.CSS_SELECTOR, "#problems summary").click()
    assert driver.find_element(By.CSS_SELECTOR, "#problems table").is_displayed()

    driver.find_element(By.CSS_SELECTOR, '#analysis-bias a[href="bias.html"]').click()
    _wait(driver, lambda d: d.current_url.endswith("bias.html"))
    _loads_cleanly(driver)
    assert _broken_links(driver, audited_folder / "bias.html") == []
    # bias.html: the sex plot is shown at its own size, headed columns, no wrapped cells
    plot = driver.find_element(By.CSS_SELECTOR, 'img[alt^="Predicted DSC by sex"]')
    assert driver.execute_script("return arguments[0].clientWidth === arguments[0].naturalWidth",
                                 plot)
    groups = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "th.group")]
    assert groups == ["Sex (male − female)", "Age"]
    heights = driver.execute_script(
        "return [...document.querySelectorAll('table.bias tbody tr')].map(r => r.clientHeight)")
    assert max(heights) < 1.6 * min(heights), "a table cell wraps onto several lines"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "bias.png"))
    driver.find_element(By.CSS_SELECTOR, "header.top a.home").click()
    _wait(driver, lambda d: d.current_url.endswith("report.html"))
    assert driver.find_element(By.ID, "analyses").is_displayed()
