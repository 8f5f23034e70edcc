"""`pairtune dashboard RUN`: optuna-dashboard over the shared search's study, looked at in a real headless
browser (Debian's chromium and chromium-driver, through selenium), as a user looks at it: the trial list
and each trial's intermediate values; a trial added to the journal while it serves shows up on reload
(what a user watching a running search sees). Its screenshots are left in the test's tmp_path."""

import re
import shutil
import subprocess
import sys
import time

import optuna
import pytest
from conftest import SHARED_TRIALS

from search.runs import study

pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver are needed (.ci/install installs them)"
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=options)
    yield b
    b.quit()


@pytest.fixture
def dashboard(shared_run_copy):
    """`pairtune dashboard COPY --port 0` in a subprocess, as users start it; yields (its URL, the run)."""
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "dashboard", str(shared_run_copy), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/dashboard/", line)
        assert match, line + proc.stdout.read() if proc.poll() is not None else line
        yield match.group(0), shared_run_copy
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def page_text(browser, url, expected: str, timeout=60) -> str:
    """The page's text once `expected` shows (the dashboard renders in the browser, after its API calls)."""
    from selenium.webdriver.common.by import By

    browser.get(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = browser.find_element(By.TAG_NAME, "body").text
        if expected in text:
            return text
        time.sleep(0.5)
    raise AssertionError(f"{expected!r} never showed on {url}:\n{text[:2000]}")


def test_the_dashboard_lists_the_trials_and_their_intermediate_values_in_a_browser(dashboard, browser, tmp_path):
    url, run = dashboard
    storage = study.journal_storage(run / study.STUDY_FILE)
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    assert len(trials) == SHARED_TRIALS

    text = page_text(browser, url, "shared")  # the study list
    assert "MAXIMIZE" in text
    text = page_text(browser, url + "studies/0", "Intermediate values")
    assert "val/agreement" in text  # the metric's name on the axes, not "Objective 0"
    browser.save_screenshot(str(tmp_path / "study.png"))
    text = page_text(browser, url + "studies/0/trials", f"{SHARED_TRIALS} Trials")
    browser.save_screenshot(str(tmp_path / "trials.png"))
    states = {"COMPLETE": "Complete", "PRUNED": "Pruned", "FAIL": "Fail"}
    listed = re.findall(r"^Trial (\d+)\n(Complete|Pruned|Fail)", text, flags=re.M)
    assert listed == [(str(t.number), states[t.state.name]) for t in trials]
    first = trials[0]  # the page opens on the first trial: its intermediate values and Tune trial id
    values = text.split("Intermediate Values", 1)[1].split("Parameter", 1)[0].split()
    assert [(int(s), float(v)) for s, v in zip(values[::2], values[1::2])] == sorted(first.intermediate_values.items())
    assert f"tune_trial_id {first.user_attrs[study.TUNE_TRIAL_ID]}" in text

    # While it serves, the search adds a trial to the journal: a reload shows it.
    added = optuna.load_study(study_name="shared", storage=storage)
    added.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5,
                                              intermediate_values={500: 0.45, 1000: 0.5}))
    page_text(browser, url + "studies/0/trials", f"{SHARED_TRIALS + 1} Trials")


def test_a_run_without_a_study_and_a_busy_port_are_clear_errors(shared_run_copy, tmp_path, run_cli):
    (shared_run_copy / study.STUDY_FILE).unlink()
    out = run_cli("dashboard", shared_run_copy)
    assert out.returncode == 2 and f"pairtune: error: {shared_run_copy}: no {study.STUDY_FILE}" in out.stderr
    out = run_cli("dashboard", tmp_path)
    assert out.returncode == 2 and f"pairtune: error: {tmp_path}: not a pairtune run directory" in out.stderr
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (shared_run_copy / study.STUDY_FILE).write_bytes(b"")
        out = run_cli("dashboard", shared_run_copy, "--port", port)
    assert out.returncode == 2 and f"pairtune: error: cannot listen on 127.0.0.1:{port}" in out.stderr and "--port" in out.stderr
