"""A real browser (headless Chromium through chromedriver) on a running `dagctl serve`.

Usage: check_dashboard.py URL PLAN_ID LOG_FILE STATE_FILE SCREENSHOT_DIR ENV [ENV…]
Checks that the overview shows every environment, that a plan page shows a file's diff after a click,
that a log page shows a line appended to the log file while it is open, without a reload, and that the
overview shows the plan succeeded once the state file says so, without a manual reload.
Prints one line per check and exits non-zero on the first failure.
"""
import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

url, plan, log_file, state_file, shots, envs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]

options = Options()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(20)
try:
    driver.get(url + "/")
    for env in envs:
        card = driver.find_element(By.ID, "env-" + env)
        assert card.is_displayed(), f"the card of {env} is not shown"
    driver.save_screenshot(f"{shots}/overview.png")
    print("overview: every environment shown:", ", ".join(envs))

    driver.get(f"{url}/plans/{plan}")
    details = driver.find_elements(By.CSS_SELECTOR, "details")
    assert details, "no changed file on the plan page"
    pre = details[0].find_element(By.TAG_NAME, "pre")
    assert not pre.is_displayed(), "the diff should be collapsed at first"
    details[0].find_element(By.TAG_NAME, "summary").click()
    WebDriverWait(driver, 5).until(lambda d: pre.is_displayed())
    assert "@@" in pre.text or "+" in pre.text, f"no diff shown: {pre.text[:200]}"
    driver.save_screenshot(f"{shots}/plan.png")
    print("plan: the diff shows after a click:", pre.text.splitlines()[0] if pre.text else "")

    driver.get(f"{url}/plans/{plan}/attempts/1/run")
    driver.execute_script("window.dagctlMarker = 42")
    line = f"appended while the page was open {time.time()}"
    with open(log_file, "a") as f:
        f.write(line + "\n")
    started = time.time()
    WebDriverWait(driver, 5).until(lambda d: line in d.find_element(By.ID, "log").text)
    took = time.time() - started
    assert driver.execute_script("return window.dagctlMarker") == 42, "the page was reloaded"
    assert took < 2.5, f"the line took {took:.1f}s"
    driver.save_screenshot(f"{shots}/log.png")
    print(f"log: the appended line showed after {took:.1f}s without a reload")

    # The run ends (a reconcile rewrites the state file by rename): the open overview follows.
    driver.get(url + "/")
    assert "running" in driver.find_element(By.ID, "env-" + envs[0]).text
    state = json.load(open(state_file))
    env = state["environments"][envs[0]]
    env["plans"][-1]["status"] = "succeeded"
    env["plans"][-1]["attempts"][-1]["outcome"] = "succeeded"
    env["deployed"] = {"commit": env["plans"][-1]["commit"], "version": env["plans"][-1]["version"], "plan": plan}
    with open(state_file + ".new", "w") as f:
        json.dump(state, f)
    os.rename(state_file + ".new", state_file)
    started = time.time()
    WebDriverWait(driver, 8).until(lambda d: "deployed, idle" in d.find_element(By.ID, "env-" + envs[0]).text)
    print(f"overview: the plan's success showed after {time.time() - started:.1f}s without a manual reload")
finally:
    driver.quit()
