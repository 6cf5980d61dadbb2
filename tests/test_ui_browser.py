"""``paircustom ui`` end to end in headless Chromium: a bad click (its refusal beside Train), the bundled pair
uploaded and shown enlarged, an example pair picked (each field filled with its own text), a few training steps
under Gradio's progress bar (a screenshot mid-training), a generation, and the page read back (result size, loss
readout, a screenshot); and, on a tiny model, the blend view: two style files loaded, the blend grid and strength
strip drawn and read back.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``ui`` extra (gradio, selenium).  In CI
(``CI`` set) their absence fails the test; elsewhere it skips, saying what to install.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import paircustom
from paircustom.shapes.examples import EXAMPLES, example_paths

STEPS = 9  # training steps: style loss from step 3 on the embedded model's schedule; previews at 3, 6 and 9
STATUS = re.compile(rf"step {STEPS}/{STEPS} · content loss \d+\.\d{{4}} · style loss \d+\.\d{{4}} · done")


def _browser(tmp_path):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    missing = [name for name, found in (("chromium", chromium), ("chromium-driver", driver)) if not found]
    for module in ("gradio", "selenium"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        message = (
            f"the browser test needs {', '.join(missing)}: apt-get install chromium chromium-driver and "
            "pip install -e '.[ui]'"
        )
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run this test, not skip it)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1650"):
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")  # the browser's profile stays in tmp_path
    log = tmp_path / "chromedriver.log"
    service = Service(driver, log_output=str(log), service_args=["--verbose"])
    try:
        return webdriver.Chrome(service=service, options=options)
    except Exception as error:
        pytest.fail(
            f"Chromium did not start ({type(error).__name__}); the driver's log ends:\n"
            + "\n".join(log.read_text().splitlines()[-30:])
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(tmp_path, port, *options):
    (tmp_path / "server-tmp").mkdir()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": str(Path(paircustom.__file__).parents[1]),  # this checkout, from any folder
        "TMPDIR": str(tmp_path / "server-tmp"),
        "GRADIO_TEMP_DIR": str(tmp_path / "server-tmp" / "gradio"),
    }
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "paircustom", "ui", "--port", str(port), "--workdir", str(tmp_path / "work"), *options],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited: {(tmp_path / 'server.log').read_text()}"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    pytest.fail(f"the page did not come up in 120 s: {(tmp_path / 'server.log').read_text()}")


def _text(driver, element_id) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def _type(driver, element_id, text):
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, f"#{element_id} textarea, #{element_id} input")
    field.clear()
    field.send_keys(text)


def _upload(driver, element_id, path: Path):
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, f"#{element_id} input[type=file]")
    driver.execute_script("arguments[0].style.display = 'block';", field)  # Gradio hides it behind a drop zone
    field.send_keys(str(path))


def _rect(driver, element_id) -> dict:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).rect


def _value(driver, element_id) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f"#{element_id} textarea, #{element_id} input").get_attribute("value")


def _pick(driver, element_id, option: str):
    """Choose ``option`` in a Gradio dropdown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.CSS_SELECTOR, f"#{element_id} input").click()
    item = WebDriverWait(driver, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"li[role=option][aria-label='{option}']"),
        message=f"no option {option!r} in #{element_id}",
    )[0]
    item.click()


# Rendered width and height, natural width, and CSS image-rendering of an image.
IMAGE = (
    "const r = arguments[0].getBoundingClientRect();"
    "return [r.width, r.height, arguments[0].naturalWidth, getComputedStyle(arguments[0]).imageRendering];"
)
# Gradio's progress bar while training, if shown: [its fill's class, the fill's width, the track's width].
PROGRESS = (
    "const fill = document.querySelector('#train-progress .progress-level-inner');"
    "if (!fill || !fill.checkVisibility() || fill.getBoundingClientRect().width == 0) return null;"
    "return [fill.className, fill.getBoundingClientRect().width, fill.parentElement.getBoundingClientRect().width];"
)


def _enlarged(driver, selector: str) -> list:
    """The images under ``selector`` that are not shown enlarged with square pixels ([] when all are)."""
    from selenium.webdriver.common.by import By

    images = [driver.execute_script(IMAGE, img) for img in driver.find_elements(By.CSS_SELECTOR, selector)]
    assert images, f"no image under {selector}"
    return [i for i in images if not (i[0] >= 2.5 * i[2] and i[3] == "pixelated")]


def _refusal_beside_train(driver, wait):
    """A click without images: the CLI's one sentence, right under the Train button (not under Generate)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "train").click()
    wait.until(lambda d: "paircustom: error:" in _text(d, "train-message"))
    assert "give a content image and a style image" in _text(driver, "train-message")
    below = _rect(driver, "train-message")["y"] - _rect(driver, "train")["y"]
    assert 0 < below < 120, f"the refusal is {below:.0f} px below the Train button, not beside it"
    assert not _text(driver, "message"), "the refusal also appears under Generate"


def _pair_enlarged_and_example_picked(driver, wait):
    """The bundled pair uploaded and shown enlarged; then the same example picked, each field filled with its own
    kind of text (the caption goes to the prompt)."""
    from selenium.webdriver.common.by import By

    name = next(iter(EXAMPLES))
    pair = EXAMPLES[name]
    content, style = example_paths(name)
    _upload(driver, "content", content)
    _upload(driver, "style", style)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#content img, #style img")) == 2)
    small = _enlarged(driver, "#content img, #style img")
    assert not small, f"images not enlarged with square pixels ([shown w, h, natural w, rendering]): {small}"
    _pick(driver, "example", name)
    wait.until(lambda d: _value(d, "prompt") == pair.caption)
    assert _value(driver, "subject") == pair.subject and _value(driver, "style-words") == pair.style_prompt
    assert "what the content image shows" in _text(driver, "subject"), "the subject field's label"


def test_train_and_generate_in_the_browser(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser(tmp_path)
    port = _free_port()
    server = _serve(tmp_path, port)
    start = time.monotonic()
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.ID, "train"))
        _refusal_beside_train(driver, wait)
        _pair_enlarged_and_example_picked(driver, wait)
        _type(driver, "steps", str(STEPS))
        driver.find_element(By.ID, "train").click()
        mid = WebDriverWait(driver, 300).until(
            lambda d: (
                (bar := d.execute_script(PROGRESS)) and re.search(r"step [1-9]\d*/", _text(d, "status") + " ") and bar
            ),
            message="no progress bar while training",
        )
        WebDriverWait(driver, 300).until(  # for the docs' screenshot: a preview beside the bar, if training lasts
            lambda d: d.find_elements(By.CSS_SELECTOR, "#preview img") or STATUS.search(_text(d, "status"))
        )
        bar = driver.execute_script(PROGRESS)
        driver.save_screenshot(str(tmp_path / "ui-training.png"))
        print(f"progress bar mid-training: {mid}; at the screenshot {tmp_path / 'ui-training.png'}: {bar}")
        WebDriverWait(driver, 300).until(
            lambda d: STATUS.search(_text(d, "status")), message="training did not finish with a loss readout"
        )
        assert driver.find_elements(By.CSS_SELECTOR, "#preview img"), "no training preview in the page"
        assert driver.find_elements(By.CSS_SELECTOR, "#download a"), "no download link for the trained file"
        wait.until(lambda d: d.find_element(By.ID, "scale-0").is_displayed())

        _type(driver, "sample-steps", "10")
        driver.find_element(By.ID, "generate").click()
        size = "return [arguments[0].naturalWidth, arguments[0].naturalHeight];"
        styled = WebDriverWait(driver, 180).until(
            lambda d: next(
                (img for img in d.find_elements(By.CSS_SELECTOR, "#styled img") if d.execute_script(size, img)[0] > 0),
                None,
            ),
            message="no styled image appeared",
        )
        assert driver.execute_script(size, styled) == [64, 64], "the styled image is not the model's 64x64"
        assert driver.find_elements(By.CSS_SELECTOR, "#base img") and driver.find_elements(
            By.CSS_SELECTOR, "#compare img"
        )
        assert not _enlarged(driver, "#base img, #styled img"), "results not enlarged with square pixels"
        assert not _text(driver, "message").startswith("paircustom: error"), _text(driver, "message")
        driver.save_screenshot(str(tmp_path / "ui.png"))
        assert (tmp_path / "ui.png").stat().st_size > 10_000, "the screenshot is (nearly) empty"
        print(f"browser test: {time.monotonic() - start:.0f} s after the page came up")
    except Exception:
        (tmp_path / "page.html").write_text(driver.page_source)
        raise
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)
    assert list((tmp_path / "work").glob("*.safetensors")), "no style file was trained"


def _page_image(driver, element_id, size, timeout=180):
    """The PIL image an output of the page shows, once it has one (its file fetched from the server)."""
    import base64
    import io

    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    image = WebDriverWait(driver, timeout).until(
        lambda d: next(
            (img for img in d.find_elements(By.CSS_SELECTOR, f"#{element_id} img") if d.execute_script(size, img)[0]),
            None,
        ),
        message=f"no image appeared in #{element_id}",
    )
    source = image.get_attribute("src")
    if source.startswith("data:"):
        data = base64.b64decode(source.split(",", 1)[1])
    else:
        data = urllib.request.urlopen(source, timeout=30).read()
    return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny SD model saved to disk (32-pixel images, grids enlarge them to 128) and two style files for it."""
    import json

    from PIL import Image

    from paircustom.tiny.unet import build_tiny_pipeline
    from paircustom.training.trainer import train_pair
    from tests.conftest import quick_config, write_pair
    from tests.test_ui_studio import TINY_DEFAULTS

    folder = tmp_path_factory.mktemp("blend-ui")
    build_tiny_pipeline("sd").save_pretrained(folder / "tiny")
    (folder / "tiny" / "paircustom.json").write_text(json.dumps({"train_defaults": TINY_DEFAULTS}))
    content, inverted = write_pair(folder / "pair")
    grey = folder / "pair" / "grey.png"
    Image.open(content).convert("L").convert("RGB").save(grey)  # a second style: greyscale
    files = []
    for name, style in (("inverted", inverted), ("grey", grey)):
        files.append(
            Path(train_pair(quick_config(content, style, folder / f"{name}.safetensors"), build_tiny_pipeline("sd")))
        )
    return folder / "tiny", files


def test_blend_view_in_the_browser(tmp_path, tiny_model):
    """Two style files loaded through the page; the blend grid and A's strip drawn, read back from the page and
    compared with the same grids drawn here (``ui.blend``); the labels are part of the compared pixels."""
    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from paircustom.config.generate import GENERATE
    from paircustom.ui.blend import blend_grid, strength_strip
    from paircustom.ui.studio import Studio

    model, files = tiny_model
    driver = _browser(tmp_path)
    port = _free_port()
    server = _serve(tmp_path, port, "--model", str(model), "--device", "cpu")
    prompt, steps, size = "a photo of a dog", 5, "return [arguments[0].naturalWidth, arguments[0].naturalHeight];"
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "blend"))
        for file in files:
            _upload(driver, "style-file", file)
            driver.find_element(By.ID, "load").click()
            WebDriverWait(driver, 60).until(
                lambda d, file=file: f"loaded '{file.stem}'" in _text(d, "message"), message=f"{file.name} not loaded"
            )
            driver.find_element(By.CSS_SELECTOR, "#style-file button[aria-label='Clear']").click()  # room for the next
        chosen = "return document.querySelector('#blend-b input').value;"
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(chosen) == "grey", message="style B is not set")
        _type(driver, "prompt", prompt)
        _type(driver, "sample-steps", str(steps))
        driver.find_element(By.ID, "blend").click()
        grid = _page_image(driver, "blend-grid", size)
        driver.find_element(By.ID, "strip").click()
        strip = _page_image(driver, "strip-image", size)
        assert not _text(driver, "blend-message"), _text(driver, "blend-message")
        driver.execute_script("arguments[0].scrollIntoView();", driver.find_element(By.ID, "blend-grid"))
        driver.save_screenshot(str(tmp_path / "blend.png"))
        assert (tmp_path / "blend.png").stat().st_size > 10_000, "the screenshot is (nearly) empty"
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)

    cell = 128  # the tiny model's 32 pixels, enlarged
    assert 3 * cell < grid.width < 4 * cell and 3 * cell < grid.height < 4 * cell, f"grid {grid.size}: not 3x3 cells"
    assert 5 * cell < strip.width < 6 * cell and cell < strip.height < 2 * cell, f"strip {strip.size}: not 5 cells"
    studio = Studio(str(model), tmp_path / "here", device="cpu")
    a, b = (studio.load(file) for file in files)
    scale = GENERATE.style_scale  # the sliders' starting value
    expected = {
        "grid": (grid, blend_grid(studio, prompt, a, b, scale, scale, 0, steps)),
        "strip": (strip, strength_strip(studio, prompt, a, scale, 0, steps)),
    }
    for name, (shown, drawn) in expected.items():
        assert shown.size == drawn.size, f"the page's {name} is {shown.size}, drawn here {drawn.size}"
        difference = np.abs(np.asarray(shown, np.int16) - np.asarray(drawn, np.int16))
        assert difference.max() <= 8 and difference.mean() < 0.5, (
            f"the page's {name} differs from the one drawn here: max {difference.max()}, mean {difference.mean():.3f}"
        )
