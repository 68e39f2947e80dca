"""The web page in a real browser: Debian's chromium, headless, driven by Selenium through the
system's chromedriver (apt: chromium chromium-driver), against a real uvicorn server on loopback.

Skipped, with the reason, where that browser is not installed. ``NST_SCREENSHOT=FILE`` also writes
the first test's screenshot there (the README's picture); otherwise it goes to the test's tmp_path.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi", reason="nst[serve] is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="nst[serve] is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from nst.models.modelfile import save_model  # noqa: E402
from nst.networks.transformer import TransformerNet  # noqa: E402
from nst.serve.app import Settings, create_app  # noqa: E402

pytestmark = pytest.mark.e2e

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (BROWSER and DRIVER):
    pytest.skip("no system chromium and chromedriver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

SAMPLES = Path(__file__).resolve().parent.parent / "nst" / "assets" / "samples"
CARD = {"style": ["starry_night.jpg"], "style_size": 32,
        "loss": {"content_layers": {"relu2_2": 1.0}, "style_layers": {"relu1_2": 1.0, "relu2_2": 1.0},
                 "content_weight": 1.0, "style_weight": 1.0, "tv_weight": 1.0, "normalize": True},
        "vgg": {"arch": "vgg16", "weights": "random"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    strength = TransformerNet(8, 1, strength_input=True)
    with torch.no_grad():  # away from the initial identity conditioning, so strength shows
        for p in strength.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    save_model(folder / "tiny_strength.safetensors", strength.eval(), CARD)
    port = free_port()
    app = create_app(Settings(port=port, models=str(folder), vgg_weights="random", gatys_max_side=64))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    end = time.monotonic() + 60
    while not srv.started and time.monotonic() < end:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                 "--disable-gpu", "--no-first-run"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


def until(driver, condition, timeout: float = 90):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def open_page(driver, url: str, photo: Path) -> None:
    driver.get(url)
    until(driver, lambda d: len(Select(d.find_element(By.ID, "model")).options) > 0)
    driver.find_element(By.ID, "file").send_keys(str(photo))
    until(driver, lambda d: d.execute_script("return document.getElementById('preview').naturalWidth") > 0)


def result_src(driver) -> str:
    return driver.find_element(By.ID, "result").get_attribute("src") or ""


def test_a_photo_and_a_shipped_model_give_a_picture(browser, server, tmp_path):
    photo = sorted(SAMPLES.glob("*.jpg"))[0]
    open_page(browser, server, photo)
    Select(browser.find_element(By.ID, "model")).select_by_value("starry_night")
    browser.find_element(By.ID, "go").click()
    until(browser, lambda d: d.execute_script("return document.getElementById('result').naturalWidth") > 0)
    assert "starry_night" in browser.find_element(By.ID, "time").text
    assert browser.find_element(By.ID, "download").is_displayed()
    assert not browser.find_element(By.ID, "error").is_displayed()
    shot = Path(os.environ.get("NST_SCREENSHOT") or tmp_path / "serve.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_moving_the_strength_slider_restylizes(browser, server):
    open_page(browser, server, sorted(SAMPLES.glob("*.jpg"))[0])
    Select(browser.find_element(By.ID, "model")).select_by_value("tiny_strength")
    assert "network's input" in browser.find_element(By.ID, "strength-label").text
    browser.find_element(By.ID, "go").click()
    until(browser, lambda d: result_src(d).startswith("blob:"))
    first = result_src(browser)
    browser.execute_script("const s = document.getElementById('strength'); s.value = '0.2';"
                           "s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change'));")
    until(browser, lambda d: result_src(d) != first)
    assert browser.find_element(By.ID, "strength-value").text == "0.20"


def test_a_gatys_run_starts_shows_its_steps_and_cancels(browser, server):
    open_page(browser, server, sorted(SAMPLES.glob("*.jpg"))[0])
    Select(browser.find_element(By.ID, "model")).select_by_value("tiny_strength")
    for key, value in (("gatys-iterations", "500"), ("gatys-size", "64")):
        field = browser.find_element(By.ID, key)
        field.clear()
        field.send_keys(value)
    browser.find_element(By.ID, "gatys-go").click()
    until(browser, lambda d: "running, step" in d.find_element(By.ID, "gatys-status").text
          and d.execute_script("return document.getElementById('gatys-image').naturalWidth") > 0)
    browser.find_element(By.ID, "gatys-cancel").click()
    until(browser, lambda d: "cancelled" in d.find_element(By.ID, "gatys-status").text)
    step = int(browser.find_element(By.ID, "gatys-status").text.split("step ")[1].split()[0])
    assert step < 500


def test_a_broken_file_shows_its_message_on_the_page(browser, server, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    open_page(browser, server, sorted(SAMPLES.glob("*.jpg"))[0])
    browser.find_element(By.ID, "file").send_keys(str(broken))
    browser.find_element(By.ID, "go").click()
    until(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "broken.jpg" in browser.find_element(By.ID, "error").text
