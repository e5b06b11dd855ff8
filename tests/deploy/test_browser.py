"""A real browser on a real `emoshift serve`: headless Chromium (Debian's chromium + chromium-driver) via selenium
opens the page, uploads a synthetic take, waits for the bars, checks the label against the API, then a bad file;
for a dimensional model, the point drawn on the arousal-valence plane is the API's arousal and valence."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(exported: tuple[Path, dict]) -> Iterator[str]:
    run, _ = exported
    yield from _serve(run)


@pytest.fixture(scope="module")
def dim_server(dim_exported: tuple[Path, dict, Path]) -> Iterator[str]:
    # the rated fixture's clips are pitched tones, not speech: the VAD rightly finds none, so its check is off
    yield from _serve(dim_exported[0], "--no-vad-check")


def _serve(run: Path, *extra: str) -> Iterator[str]:
    """`emoshift serve RUN` on a free port, until the test module is done."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "emoshift", "serve", str(run), "--port", str(port), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"emoshift serve exited: {proc.stdout.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip("chromium and chromium-driver are not installed and could not be (.ci/run installs them with apt-get)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1600"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_upload_shows_api_label_and_bad_file_message(server: str, browser: object, synth_tiny: Path,
                                                         tmp_path: Path) -> None:
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    take = sorted((synth_tiny / "crema-d").rglob("*.wav"))[0]  # 16 kHz: the browser's WAV has the same samples
    api = httpx.post(server + "/v1/predict", content=take.read_bytes(), headers={"content-type": "audio/wav"}).json()
    driver.get(server + "/")  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: "trained on" in d.find_element(By.ID, "model-line").text)
    driver.find_element(By.ID, "file").send_keys(str(take))  # type: ignore[attr-defined]
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#bars .bar-row")))
    shown = driver.find_element(By.ID, "label").text.strip().lower()  # type: ignore[attr-defined]
    assert shown == api["label"]
    bars = driver.find_elements(By.CSS_SELECTOR, "#bars [role=progressbar]")  # type: ignore[attr-defined]
    assert {b.get_attribute("aria-label") for b in bars} == set(api["probabilities"])
    top = next(b for b in bars if b.get_attribute("aria-label") == api["label"])
    assert abs(float(top.get_attribute("aria-valuenow")) - 100 * api["probabilities"][api["label"]]) < 1.0  # the browser re-encodes to 16-bit WAV
    if os.environ.get("EMOSHIFT_SCREENSHOT"):
        driver.save_screenshot(os.environ["EMOSHIFT_SCREENSHOT"])  # type: ignore[attr-defined]

    bad = tmp_path / "notes.wav"
    bad.write_text("these are my notes, not a recording")
    driver.find_element(By.ID, "file").send_keys(str(bad))  # type: ignore[attr-defined]
    wait.until(lambda d: d.find_element(By.ID, "error").text.strip() != "")
    message = driver.find_element(By.ID, "error").text  # type: ignore[attr-defined]
    assert "Could not analyse" in message and "not audio" in message
    assert driver.find_element(By.ID, "result").get_attribute("hidden") is not None  # type: ignore[attr-defined]


def test_dimensional_model_is_drawn_on_the_arousal_valence_plane(dim_server: str, browser: object,
                                                                 dim_exported: tuple[Path, dict, Path]) -> None:
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    take = sorted((dim_exported[2].parent / "wav").glob("*.wav"))[0]  # 16 kHz
    api = httpx.post(dim_server + "/v1/predict", content=take.read_bytes(), headers={"content-type": "audio/wav"}).json()
    driver.get(dim_server + "/")  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: "rates arousal, valence" in d.find_element(By.ID, "model-line").text)
    driver.find_element(By.ID, "file").send_keys(str(take))  # type: ignore[attr-defined]
    point = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#av-plane svg circle#av-point")))
    assert driver.find_element(By.ID, "av-plane").is_displayed()  # type: ignore[attr-defined]
    assert abs(float(point.get_attribute("data-arousal")) - api["arousal"]) < 0.01  # re-encoded 16-bit WAV
    assert abs(float(point.get_attribute("data-valence")) - api["valence"]) < 0.01
    # the point sits where the values say: valence left to right, arousal bottom to top, on the 0-1 range
    cx, cy = float(point.get_attribute("cx")), float(point.get_attribute("cy"))
    assert cx == pytest.approx(30 + 300 * min(max(api["valence"], 0), 1), abs=1.5)
    assert cy == pytest.approx(30 + 300 * (1 - min(max(api["arousal"], 0), 1)), abs=1.5)
    bars = driver.find_elements(By.CSS_SELECTOR, "#bars [role=progressbar]")  # type: ignore[attr-defined]
    assert [b.get_attribute("aria-label") for b in bars] == ["arousal", "valence"]
    assert "arousal" in driver.find_element(By.ID, "label").text.lower()  # type: ignore[attr-defined]
    assert "CCC" in driver.find_element(By.ID, "scores-heading").text  # type: ignore[attr-defined]
    if os.environ.get("EMOSHIFT_SCREENSHOT_DIM"):
        driver.save_screenshot(os.environ["EMOSHIFT_SCREENSHOT_DIM"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("width", [1280, 900])
def test_labels_stay_beside_their_controls(browser: object, width: int) -> None:
    """At 1280 px "Over time" and its select were drawn on separate lines: every label of the controls row must
    share a line with its control, at any width that wraps the row."""
    from importlib import resources

    from selenium.webdriver.common.by import By

    driver = browser
    page = resources.files("emoshift.deploy.serve") / "static" / "index.html"
    driver.set_window_size(width, 900)  # type: ignore[attr-defined]
    driver.get(Path(str(page)).as_uri())  # type: ignore[attr-defined]  # the layout needs no server
    for control in ("file", "segments"):
        label = driver.find_element(By.CSS_SELECTOR, f"label[for={control}]").rect  # type: ignore[attr-defined]
        box = driver.find_element(By.ID, control).rect  # type: ignore[attr-defined]
        middle = label["y"] + label["height"] / 2
        assert box["y"] <= middle <= box["y"] + box["height"], (control, label, box)
        assert label["x"] < box["x"]
