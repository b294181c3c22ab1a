"""End to end in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by
``infra/debian-packages.sh`` from ``make test``) logs in to the Airflow UI of the stack's ``airflow standalone``, opens
each DAG's trigger form, finds every Param with its description, submits the form as it opens (every
default), and waits for the run to succeed.

This module runs last in the package (pytest collects files by name): the interest pipeline's run with its
defaults computes interest for the run's own date from ``$EVENTS_DIR``, so it first adds a file of events
that end today, as a day's new events would arrive."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from interest_decay.events.synthetic import generate, write_events
from tests.e2e.stack import CATEGORIES, ITEMS_PER_CATEGORY, MAX_HALF_LIFE, admin_password, airflow_api, wait_for_run

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not CHROMEDRIVER.exists():
        pytest.fail(f"no {CHROMEDRIVER}: run infra/debian-packages.sh (as root), as make test does")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def logged_in(browser, airflow_ui):
    """The browser, logged in to the Airflow UI through its login page (user admin, the generated password)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    env, url = airflow_ui
    password = admin_password(env)
    browser.get(f"{url}/auth/login/")
    username_input, password_input = WebDriverWait(browser, 60).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "input[name=username], input[name=password]") or False
    )
    username_input.send_keys("admin")
    password_input.send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 60).until(lambda b: "/auth/login" not in b.current_url)
    return browser, env, url


def normalized(text: str) -> str:
    return " ".join(text.split())


def open_trigger_form(browser, url: str, dag_id: str):
    """The DAG page's trigger dialog, open."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{url}/dags/{dag_id}")
    wait = WebDriverWait(browser, 120)
    wait.until(EC.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Trigger']"))).click()
    dialog = wait.until(
        lambda b: next((d for d in b.find_elements(By.CSS_SELECTOR, "[role=dialog]") if d.is_displayed()), False)
    )
    wait.until(lambda _: "Run Parameters" in dialog.text)
    return dialog


def submit_with_defaults(logged_in, dag_id: str) -> str:
    """Open ``dag_id``'s trigger form, check every Param is shown with its description, press its Trigger
    button untouched, and return the new run's id."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, env, url = logged_in
    api = airflow_api(env, url)
    params = api.get(f"{url}/api/v2/dags/{dag_id}/details", timeout=30).json()["params"]
    assert params, f"{dag_id} has no Params"
    dialog = open_trigger_form(browser, url, dag_id)
    shown = normalized(dialog.text)
    for name, param in params.items():
        assert name in shown, f"the trigger form of {dag_id} does not show the Param {name}"
        assert normalized(param["description"]) in shown, f"the form does not show {dag_id}'s {name} description"
    before = {run["dag_run_id"] for run in runs(api, url, dag_id)}
    trigger = dialog.find_elements(By.XPATH, ".//button[normalize-space()='Trigger']")[-1]
    assert trigger.is_enabled(), f"{dag_id}'s form, with its defaults, keeps Trigger disabled:\n{dialog.text}"
    trigger.click()
    new = WebDriverWait(browser, 60, poll_frequency=1).until(
        lambda _: [r for r in runs(api, url, dag_id) if r["dag_run_id"] not in before] or False
    )
    assert len(new) == 1 and new[0]["run_type"] == "manual"
    return new[0]["dag_run_id"]


def runs(api, url: str, dag_id: str) -> list[dict]:
    return api.get(f"{url}/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}, timeout=30).json()["dag_runs"]


def test_the_drift_monitor_form_triggers_a_run_with_its_defaults(logged_in):
    _, env, url = logged_in
    run_id = submit_with_defaults(logged_in, "drift_monitor")
    wait_for_run(airflow_api(env, url), url, "drift_monitor", run_id, f"{env['DECAY_STATE_DIR']}/logs/airflow.log")


def test_the_interest_pipeline_form_triggers_a_run_with_its_defaults(logged_in):
    """Defaults: as_of empty (the run's date), events_path empty ($EVENTS_DIR). Today's events arrive first."""
    _, env, url = logged_in
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    new_events = generate(
        60_000,
        n_users=1_000,
        n_categories=CATEGORIES,
        items_per_category=ITEMS_PER_CATEGORY,
        max_half_life=MAX_HALF_LIFE,
        days=40,
        end=today,
        seed=11,
    )
    write_events(new_events, Path(env["EVENTS_DIR"]) / f"arrived-{today:%Y-%m-%d}.parquet")
    run_id = submit_with_defaults(logged_in, "interest_pipeline")
    api = airflow_api(env, url)
    wait_for_run(api, url, "interest_pipeline", run_id, f"{env['DECAY_STATE_DIR']}/logs/airflow.log")
    window = api.get(
        f"{url}/api/v2/dags/interest_pipeline/dagRuns/{run_id}/taskInstances/resolve_window/xcomEntries/return_value",
        timeout=30,
    ).json()["value"]
    run_day = api.get(f"{url}/api/v2/dags/interest_pipeline/dagRuns/{run_id}", timeout=30).json()["run_after"][:10]
    assert window["as_of"] == run_day and window["events_path"] == env["EVENTS_DIR"], window
