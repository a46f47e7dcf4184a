"""The UI workflows our users run, in a real browser: Debian's headless Chromium driven by Playwright.

An Echo360 connection made through the connection form and tested with its Test button; then the
daily DAG backfilled from its Trigger → Backfill dialog with more active runs than the API's cap
and "All Runs". Screenshots of each step are kept in ``test-artifacts/ui/``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.airflow_stack import AIRFLOW_MAJOR

if AIRFLOW_MAJOR != 3:  # before playwright: an Airflow 2 env has the "test" group only, without it
    reason = f"needs Airflow 3's UI; this interpreter has Airflow {AIRFLOW_MAJOR}"
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

from devtools.checks import (  # noqa: E402
    assert_cap_held,
    assert_one_submission_per_window,
    assert_runs_succeeded,
    days_ending,
    windows,
)
from devtools.environment import DAILY_DAG, Echo360Environment, last_complete_day  # noqa: E402

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"  # Debian's: Playwright cannot download its own browsers here
# Without the background-networking flags, a closed network refuses Chromium's own calls by the dozen.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAYS = 4
MAX_ACTIVE_RUNS = 5  # above the API's cap of 3: the pool, not the backfill, must hold it


@pytest.fixture(scope="module")
def env_options() -> dict[str, Any]:
    return {"stack_options": {"env": {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}}}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: ./scripts/test installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, env: Echo360Environment) -> Iterator[Page]:
    context = browser.new_context(base_url=env.stack.base_url, viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module", autouse=True)
def fresh_artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)


def snap(page: Page, step: str) -> None:
    path = ARTIFACTS / f"{step}.png"
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")


def pick_date(page: Page, field: str, day: dt.date) -> None:
    """Midnight UTC of ``day`` in the dialog's date-time field ``field``: a popover (``role=dialog``)
    whose date input is the one the field's label points at."""
    page.get_by_role("group").filter(has_text=field).get_by_test_id("datetime-input").click()
    date = page.get_by_label(field, exact=True).and_(page.get_by_placeholder("YYYY/MM/DD"))
    date.fill(day.strftime("%Y/%m/%d"))
    date.locator("xpath=ancestor::*[@role='dialog'][1]").get_by_placeholder("HH:mm").fill("00:00")
    page.get_by_text("Date Range", exact=True).click()  # closes the popover


def test_an_echo360_connection_made_in_the_form_passes_the_test_button(
    page: Page, env: Echo360Environment
) -> None:
    sandbox_port = env.sandbox.base_url.rsplit(":", 1)[1]
    page.goto("/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.get_by_label("Connection ID").fill("echo360_ui")
    page.get_by_role("combobox").first.fill("Echo360")
    page.keyboard.press("Enter")
    page.get_by_label("Base URL").fill(env.sandbox.base_url)
    page.get_by_label("Port").fill(sandbox_port)
    page.get_by_label("Client ID").fill("sandbox-client")
    secret = page.get_by_label("Client secret")
    secret.fill("sandbox-secret")
    expect(secret).to_have_attribute("type", "password")  # masked
    snap(page, "01-connection-form")

    page.get_by_text("Extra Fields", exact=True).click()
    page.get_by_role("combobox").filter(has_not_text="Echo360").last.click()
    expect(page.get_by_role("option")).to_have_text(["us", "uk", "au", "ca"])
    snap(page, "02-region-list")
    page.get_by_role("option", name="uk", exact=True).click()
    page.get_by_role("button", name="Save").click()
    row = page.get_by_role("row").filter(has_text="echo360_ui")
    expect(row).to_contain_text(env.sandbox.base_url)
    snap(page, "03-connection-saved")

    with page.expect_response("**/api/v2/connections/test") as answer:
        row.get_by_role("button", name="Test Connection").click()
    result = answer.value.json()
    snap(page, "04-connection-tested")
    assert answer.value.status == 200 and result["status"] is True, result
    assert result["message"].startswith(f"Connected to {env.sandbox.base_url}: "), result
    stored = env.stack.api("GET", "/connections/echo360_ui")
    assert (stored["conn_type"], stored["login"]) == ("echo360", "sandbox-client")
    assert json.loads(stored["extra"])["region"] == "uk"
    assert "sandbox-secret" not in json.dumps(stored)


def test_a_backfill_from_the_trigger_dialog_with_all_runs_holds_the_cap(
    page: Page, env: Echo360Environment
) -> None:
    env.stack.wait_for_dag(DAILY_DAG, timeout=180)
    last_day = last_complete_day()
    days = days_ending(last_day, DAYS)
    # A backfill's dates are those of its runs, at the end of each day's data interval.
    first_run, last_run = min(days) + dt.timedelta(days=1), last_day + dt.timedelta(days=1)
    page.goto(f"/dags/{DAILY_DAG}")
    page.get_by_role("button", name="Trigger").click()
    page.get_by_text("Backfill", exact=True).click()
    pick_date(page, "From", first_run)
    pick_date(page, "To", last_run)
    page.get_by_text("All Runs", exact=True).click()
    page.locator("input[name=max_active_runs]").fill(str(MAX_ACTIVE_RUNS))  # its label is no <label>
    snap(page, "05-backfill-dialog")
    page.get_by_role("button", name="Run Backfill").click()

    runs = env.wait_for_backfill(DAYS, timeout=900)
    page.goto(f"/dags/{DAILY_DAG}/runs")
    snap(page, "06-backfill-runs")
    assert_runs_succeeded(runs, DAYS)
    (backfill,) = env.stack.api("GET", "/backfills", params={"dag_id": DAILY_DAG})["backfills"]
    assert (backfill["max_active_runs"], backfill["reprocess_behavior"]) == (MAX_ACTIVE_RUNS, "completed")
    stats = env.sandbox.stats()
    assert_cap_held(stats, full=False)
    assert_one_submission_per_window(stats, windows(days))
