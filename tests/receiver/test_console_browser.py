"""The operator's page in a real browser (Debian's Chromium, driven by Selenium).

A live ``remedy serve`` with approvals waiting, a remediation that failed and
one that worked; the test presses what an operator presses — approve,
reject with a reason, pause with a reason, resume, close a breaker, open a
remediation — accepts or dismisses each confirmation, and reads what the
page shows after each. Screenshots at 1400 px and at a phone's width are
saved under ``REMEDY_ARTIFACTS`` (default ``build/artifacts``).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import am_alert, am_payload
from tests.receiver.test_cli import write
from tests.support.engines import ensure_debian_packages
from tests.support.processes import free_port, serve, stop

ARTIFACTS = Path(os.environ.get("REMEDY_ARTIFACTS", Path(__file__).parents[2] / "build/artifacts"))
RULES = """\
rules:
  - name: rollback
    description: roll back after a bad release; a person decides
    match: {{alertname: HighErrorRate}}
    target: 'deployment:{{{{ labels.deployment }}}}'
    guards: {{require_approval: true, approval_timeout: 1h}}
    actions:
      - action: http.request
        params: {{url: 'http://127.0.0.1:{port}/healthz', method: GET}}
  - name: warm-cache
    match: {{alertname: LowCacheHitRate}}
    target: 'cache:{{{{ labels.instance }}}}'
    actions:
      - action: http.request
        params: {{url: 'http://127.0.0.1:{port}/healthz', method: GET}}
  - name: flush-broken
    match: {{alertname: CacheStale}}
    target: 'cache:{{{{ labels.instance }}}}'
    actions:
      - action: http.request
        params: {{url: 'http://127.0.0.1:{port}/no-such-hook', method: GET}}
    on_failure:
      - action: http.request
        params: {{url: 'http://127.0.0.1:{port}/healthz', method: GET}}
"""
CONFIG = """\
dry_run: false
rules: [rules.yaml]
log_level: warning
guards: {max_actions: {count: 4, per: 1h}}
"""


def post(url: str, *alerts: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{url}/webhook/alertmanager",
        data=json.dumps(am_payload(*alerts)).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def api(url: str, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}{path}", timeout=30) as answer:
        body: dict[str, object] = json.loads(answer.read())
        return body


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    ensure_debian_packages({"chromium": "chromium", "/usr/bin/chromedriver": "chromium-driver"})
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="remedy-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """remedy, live, with two approvals waiting, one success and one failure behind it."""
    work = tmp_path_factory.mktemp("console")
    port = free_port()
    write(work / "rules.yaml", RULES.format(port=port))
    write(work / "remedy.yaml", CONFIG)
    loop = asyncio.new_event_loop()
    proc = loop.run_until_complete(serve(work, port))
    url = f"http://127.0.0.1:{port}"
    try:
        post(url, am_alert("LowCacheHitRate", labels={"instance": "web-1:80"}))
        post(url, am_alert("CacheStale", labels={"instance": "web-2:80"}))
        post(
            url,
            am_alert("HighErrorRate", labels={"deployment": "web"}),
            am_alert("HighErrorRate", labels={"deployment": "api"}),
        )
        settle(url, lambda states: states.get("pending_approval") == 2 and "failed" in states)
        yield url
    finally:
        loop.run_until_complete(stop(proc))
        loop.close()


def settle(url: str, done: Callable[[dict[str, int]], bool], timeout: float = 30) -> None:
    """Wait until the server's remediation counts by state satisfy ``done``."""
    deadline = time.monotonic() + timeout
    while True:
        states = api(url, "/api/v1/status")["remediations"]
        assert isinstance(states, dict)
        if done(states):
            return
        assert time.monotonic() < deadline, f"remediations stayed {states}"
        time.sleep(0.2)


def press(driver: WebDriver, button: WebElement, *, accept: bool = True) -> str:
    """Press a form's button and answer its confirmation; the confirmation's text."""
    page = driver.find_element(By.TAG_NAME, "html")
    button.click()
    alert = WebDriverWait(driver, 10).until(lambda d: d.switch_to.alert)
    text = alert.text
    if accept:
        alert.accept()
        WebDriverWait(driver, 10).until(expected_conditions.staleness_of(page))
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "timeline"))
    else:
        alert.dismiss()
    return text


def form_button(driver: WebDriver, action: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f"form[action='{action}'] button")


def shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return window.innerWidth")
    driver.set_window_size(driver.get_window_size()["width"], max(800, height + 150))
    assert driver.save_screenshot(str(ARTIFACTS / f"console-{name}-{width}px.png"))


def no_dialog(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018 - asking is the check
    except NoAlertPresentException:
        return True
    return False


def test_the_page_leads_with_what_needs_a_person(browser: WebDriver, server: str) -> None:
    browser.set_window_size(1400, 1000)
    browser.get(server + "/")
    status = browser.find_element(By.ID, "status").text
    assert "running" in status and "LIVE" in status
    approvals = browser.find_element(By.ID, "approvals")
    assert approvals.location["y"] < browser.find_element(By.ID, "remediations").location["y"]
    rows = approvals.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [row.find_element(By.CSS_SELECTOR, "td").text for row in rows] == ["3", "4"]
    assert "expires in 60 min" in rows[0].text
    failed = browser.find_element(By.ID, "attention").text
    assert "flush-broken" in failed and "answered 404 (on_failure ran)" in failed
    # Its on_failure page went through, and the row still says failed, in red.
    state = browser.find_element(By.CSS_SELECTOR, "#attention #rem-2 .state")
    assert state.text == "failed"
    assert state.value_of_css_property("color") == "rgba(176, 0, 32, 1)"
    browser.find_element(By.CSS_SELECTOR, "#attention #rem-2 .id").click()
    events = browser.find_element(By.CSS_SELECTOR, "#attention #rem-2 ol.events").text
    assert "succeeded http.request on_failure" in events
    # every column of the audit log is on screen at 1400 px, the actor's too
    actor = browser.find_elements(By.CSS_SELECTOR, "#timeline th")[-1]
    assert actor.text == "actor"
    assert actor.location["x"] + actor.size["width"] <= 1400
    chart = browser.find_element(By.CSS_SELECTOR, "#effectiveness svg.bar")
    assert chart.get_attribute("aria-label") == "failed 1"  # flush-broken, the first rule
    shot(browser, "overview")


def test_approve_and_reject_with_a_reason(browser: WebDriver, server: str) -> None:
    browser.get(server + "/")
    said = press(browser, form_button(browser, "ui/remediations/3/approve"))
    assert said == "Approve remediation 3: http.request on deployment:web runs now."
    assert "Approved remediation 3" in browser.find_element(By.CLASS_NAME, "notice").text
    assert "notice=" not in browser.current_url  # a reload will not say it again
    settle(server, lambda states: states.get("succeeded") == 2)

    reason = browser.find_element(
        By.CSS_SELECTOR, "form[action='ui/remediations/4/reject'] input[name=reason]"
    )
    reason.send_keys("rolled back by hand")
    said = press(browser, form_button(browser, "ui/remediations/4/reject"))
    assert said == "Reject remediation 4: it never runs."
    assert "Rejected remediation 4" in browser.find_element(By.CLASS_NAME, "notice").text
    assert "Nothing." in browser.find_element(By.ID, "approvals").text

    row = browser.find_element(By.ID, "rem-4")
    assert "skipped" in row.find_element(By.CSS_SELECTOR, "summary").text
    row.find_element(By.CSS_SELECTOR, "summary .id").click()
    events = row.find_element(By.CSS_SELECTOR, "ol.events").text
    assert "rejected rejected rolled back by hand" in events


def test_open_a_remediation_to_see_its_events_and_what_it_did(
    browser: WebDriver, server: str
) -> None:
    browser.get(server + "/")
    row = browser.find_element(By.ID, "rem-3")
    summary = row.find_element(By.CSS_SELECTOR, "summary")
    assert "succeeded" in summary.text and "status 200" in summary.text
    assert not row.find_element(By.CSS_SELECTOR, "ol.events").is_displayed()
    summary.find_element(By.CLASS_NAME, "id").click()
    events = row.find_element(By.CSS_SELECTOR, "ol.events")
    assert events.is_displayed()
    lines = [line.split()[1] for line in events.text.splitlines()]
    assert lines == ["matched", "pending_approval", "approved", "started", "succeeded"]
    assert '"url": "http://127.0.0.1:' in row.find_element(By.CSS_SELECTOR, "pre").text
    shot(browser, "expanded")


def test_pause_with_a_reason_then_resume(browser: WebDriver, server: str) -> None:
    browser.get(server + "/")
    pause = form_button(browser, "ui/pause")
    assert pause.text == "Pause everything"
    said = press(browser, pause, accept=False)  # changed their mind: nothing happens
    assert said.startswith("Pause everything: nothing starts until someone resumes")
    assert no_dialog(browser)
    assert api(server, "/api/v1/status")["paused"] is False

    browser.find_element(By.CSS_SELECTOR, "form[action='ui/pause'] input[name=reason]").send_keys(
        "incident 42"
    )
    press(browser, form_button(browser, "ui/pause"))
    status = browser.find_element(By.ID, "status").text
    assert "PAUSED by" in status and "incident 42" in status
    resume = form_button(browser, "ui/resume")
    assert resume.text == "Resume"
    press(browser, resume)
    assert "running" in browser.find_element(By.ID, "status").text
    assert api(server, "/api/v1/status")["paused"] is False


def test_close_an_open_breaker(browser: WebDriver, server: str) -> None:
    # Four actions so far (warm, flush, its on_failure, the approved rollback): the next trips it.
    post(server, am_alert("LowCacheHitRate", labels={"instance": "web-9:80"}))
    settle(server, lambda states: states.get("skipped") == 2)
    browser.get(server + "/")
    breaker = browser.find_element(By.CSS_SELECTOR, "#status li.alarm")
    assert breaker.text.startswith("breaker global open")
    said = press(browser, breaker.find_element(By.TAG_NAME, "button"))
    assert said == "Close breaker global: its remediations may run again."
    assert "breaker" not in browser.find_element(By.ID, "status").text
    assert api(server, "/api/v1/status")["breakers"] == {}


def test_on_a_phone_every_button_is_within_reach(browser: WebDriver, server: str) -> None:
    post(server, am_alert("HighErrorRate", labels={"deployment": "checkout"}))
    settle(server, lambda states: states.get("pending_approval") == 1)
    browser.set_window_size(390, 844)
    try:
        browser.get(server + "/")
        width = browser.execute_script("return document.documentElement.clientWidth")
        buttons = browser.find_elements(By.CSS_SELECTOR, "#status button, #approvals button")
        assert {b.text for b in buttons} >= {"Pause everything", "Approve", "Reject"}
        for button in buttons:
            browser.execute_script("arguments[0].scrollIntoView()", button)
            assert button.is_displayed()
            assert (
                button.location["x"] >= 0 and button.location["x"] + button.size["width"] <= width
            )
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width + 1
        shot(browser, "phone")
    finally:
        browser.set_window_size(1400, 1000)
