"""The explorer in a real browser: ``progression explore`` served on 127.0.0.1 and driven by
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, through selenium).

Checks that the page renders without console errors, that choosing another patient changes
the motor-unit figure, and that a parameter change reaches the model (the onset region, after
Reset, as the model drew it). Saves a screenshot: always to the test's temporary folder, and
to ``docs/images/explorer.png`` (shown by the README) when ``PROGRESSION_SCREENSHOT=1``.

Without chromium, chromedriver, selenium or the ``explore`` extra the test skips on a
developer machine and fails in CI (``CI=true``), where ``.ci/run`` installs them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = os.environ.get("PROGRESSION_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PROGRESSION_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOT = ROOT / "docs" / "images" / "explorer.png"
#: Longest wait for anything the page should do (s); the whole test stays within a few of them.
WAIT = 90.0
PATIENTS = 12


def _binary(path: str) -> str | None:
    """``path`` if it is an executable file, else ``None``."""
    return path if Path(path).is_file() and os.access(path, os.X_OK) else None


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if _binary(path) is None:
            return f"{path} not found (apt-get install chromium chromium-driver)"
    for module in ("selenium", "solara", "altair", "networkx"):
        try:
            __import__(module)
        except ImportError:
            return f"python module {module} missing (pip install '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    why = _missing()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the explorer's browser test must run in CI: {why}")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(browser_ready, tmp_path_factory):
    """``progression explore`` on a free port of 127.0.0.1; stopped after the module."""
    port = _free_port()
    log = tmp_path_factory.mktemp("explore") / "server.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "progression", "explore",
             str(ROOT / "scenarios" / "mnd_population.toml"), "--patients", str(PATIENTS),
             "--port", str(port), "--no-open"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the explorer exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the explorer did not answer within {WAIT:.0f} s:\n"
                            f"{log.read_text()}")
            time.sleep(0.5)
        yield url, log
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and the solara process it started (its own process group)."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def driver(browser_ready):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1500,1500", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    d.set_page_load_timeout(WAIT)
    try:
        yield d
    finally:
        d.quit()


def _until(what: str, check, timeout: float = WAIT):
    """Poll ``check()`` until it returns something true; fail naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:  # noqa: BLE001 - the page is re-rendering; try again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)


def _button(driver, label: str):
    from selenium.webdriver.common.by import By

    return next(b for b in driver.find_elements(By.TAG_NAME, "button")
                if b.text.strip() == label and b.is_enabled())


def _choose(driver, label: str, option: str) -> None:
    """Open the select labelled ``label`` and click its item ``option``."""
    from selenium.webdriver.common.by import By

    select = next(s for s in driver.find_elements(By.CSS_SELECTOR, ".v-select")
                  if s.find_element(By.CSS_SELECTOR, ".v-label").text.strip() == label)
    select.find_element(By.CSS_SELECTOR, ".v-select__slot").click()
    item = _until(f"option {option!r} of {label}", lambda: next(
        (i for i in driver.find_elements(By.CSS_SELECTOR, ".menuable__content__active "
                                                          ".v-list-item")
         if i.text.strip() == option and i.is_displayed()), None))
    item.click()


def _slide(driver, label: str, presses: int) -> None:
    """Move the slider labelled ``label`` right by ``presses`` steps (arrow keys)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    slider = next(s for s in driver.find_elements(By.CSS_SELECTOR, ".v-input")
                  if s.find_elements(By.CSS_SELECTOR, ".v-slider")
                  and s.find_element(By.CSS_SELECTOR, ".v-label").text.strip() == label)
    thumb = slider.find_element(By.CSS_SELECTOR, ".v-slider__thumb-container")
    thumb.send_keys(*([Keys.ARROW_RIGHT] * presses))


def _figure(driver) -> bytes:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, ".motor-units img").screenshot_as_png


def _text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def test_the_explorer_in_a_browser(server, driver, tmp_path):
    url, log = server
    driver.get(url)
    _until("the motor-unit figure", lambda: _figure(driver))
    _until("the findings", lambda: "Month 0" in _text(driver))

    # Step the model: the step counter, the month and the findings follow.
    for _ in range(3):
        _button(driver, "STEP").click()
        time.sleep(0.3)
    _until("step 3", lambda: "Step: 3" in _text(driver) and "Month 3" in _text(driver))

    # Another patient: a different figure.
    before = _figure(driver)
    _choose(driver, "patient", "7")
    after = _until("the motor-unit figure of patient 7",
                   lambda: (f := _figure(driver)) != before and "patient 7" in _findings(driver)
                   and f)
    assert after != before

    # A parameter reaches the model: every patient's disease starts in the bulbar region.
    assert f"bulbar {PATIENTS}" not in _text(driver)
    _choose(driver, "onset region", "bulbar")
    _button(driver, "RESET").click()
    _until("the model drawn with bulbar onsets",
           lambda: f"onset regions drawn: bulbar {PATIENTS}" in _text(driver))
    assert "Step: 0" in _text(driver)

    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    assert "Traceback" not in log.read_text(), log.read_text()

    # Two years in one click (Mesa's render interval: steps per click), for the screenshot.
    _slide(driver, "Render Interval (steps)", 12)
    _button(driver, "STEP").click()
    _until("step 25 after reset", lambda: "Step: 25" in _text(driver), timeout=2 * WAIT)
    shot = tmp_path / "explorer.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("PROGRESSION_SCREENSHOT") == "1":
        from PIL import Image  # matplotlib's dependency

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(shot) as image:  # 256 colours: a small file for the README
            image.convert("RGB").quantize(256).save(SCREENSHOT, optimize=True)


def _findings(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, ".findings").text.replace("Patient ", "patient ")
