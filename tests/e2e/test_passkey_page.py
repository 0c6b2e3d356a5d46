"""The local server's dev passkey page in real headless Chromium (Debian's chromium and chromium-driver),
with Selenium's virtual authenticator (CTAP2, internal, resident keys, user verification): a person
registers a passkey, reviews a key creation (the summary shown before the authenticator is asked),
approves it with the passkey, and the key appears in the list.

.ci/run installs chromium and chromium-driver when missing; this is skipped, saying why, only where they
are not installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local_server import LocalServer, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 30

INSTALLED = (CHROMIUM.exists() and CHROMEDRIVER.exists()) or bool(
    shutil.which("chromium") and shutil.which("chromedriver"))
pytestmark = pytest.mark.skipif(
    not INSTALLED,
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)")


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    server = start_server(tmp_path_factory.mktemp("page") / "state")
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.virtual_authenticator import (
        Protocol,
        Transport,
        VirtualAuthenticatorOptions,
    )

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    # Never a downloaded driver: Debian's, by its path.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER if CHROMEDRIVER.exists()
                                                  else shutil.which("chromedriver"))), options=options)
    try:
        authenticator = VirtualAuthenticatorOptions()
        authenticator.protocol = Protocol.CTAP2
        authenticator.transport = Transport.INTERNAL
        authenticator.has_resident_key = True
        authenticator.has_user_verification = True
        authenticator.is_user_verified = True
        authenticator.is_user_consenting = True
        driver.add_virtual_authenticator(authenticator)
        yield driver
    finally:
        driver.quit()


def test_a_person_registers_a_passkey_and_approves_a_key_creation_in_the_browser(page_server: LocalServer,
                                                                                  browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS)
    port = page_server.base_url.rsplit(":", 1)[1]
    # Given the dev page, opened on the API's own origin under the local RP ID (localhost)
    browser.get(f"http://localhost:{port}/dev/passkeys")
    # When the demo user signs in and registers a passkey on the (virtual) platform authenticator
    browser.find_element(By.ID, "sign-in").click()
    wait.until(shown.text_to_be_present_in_element((By.ID, "signed-in"), "signed in as demo"))
    browser.find_element(By.ID, "register").click()
    wait.until(shown.text_to_be_present_in_element((By.ID, "registered"), "registered: this browser"))
    assert len(browser.get_credentials()) == 1
    # And asks to create a read+trade key for this machine
    label = browser.find_element(By.ID, "key-label")
    label.clear()
    label.send_keys("browser bot")
    browser.find_element(By.ID, "trade").click()
    browser.find_element(By.ID, "review").click()
    # Then the change is summarised before the authenticator is asked for anything
    wait.until(shown.visibility_of_element_located((By.ID, "summary")))
    assert browser.find_element(By.ID, "summary").text == (
        "Create API key 'browser bot' with read, trade; IPs 127.0.0.1; never expires")
    assert browser.find_element(By.ID, "keys").text == ""
    # When they approve it with the passkey
    browser.find_element(By.ID, "approve").click()
    # Then the key is created and appears in the list
    wait.until(shown.text_to_be_present_in_element((By.ID, "status"), "key created"))
    listed = browser.find_element(By.ID, "keys").text
    assert "browser bot" in listed and "[read, trade]" in listed, listed
    assert browser.find_element(By.ID, "created").text.startswith("Created ")


def test_the_page_on_127_0_0_1_cannot_use_the_local_passkeys(page_server: LocalServer, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    # Given the same page on the IP address (an origin that is not the RP ID's)
    browser.get(page_server.base_url + "/dev/passkeys")
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, WAIT_SECONDS).until(shown.text_to_be_present_in_element((By.ID, "signed-in"), "demo"))
    # When a passkey is registered there
    browser.find_element(By.ID, "register").click()
    # Then the browser refuses the RP ID, and no passkey is made
    WebDriverWait(browser, WAIT_SECONDS).until(shown.text_to_be_present_in_element((By.ID, "status"), "Error"))
    assert browser.get_credentials() == []
