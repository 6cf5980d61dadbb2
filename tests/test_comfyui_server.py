"""End to end: ComfyUI's own server, headless on the CPU, from a private copy with the node pack installed.

The example API workflow (shapes model + the bundled pair's style) POSTed to /prompt draws the picture
``StyleGuidedPipeline`` draws; bad style files come back in ComfyUI's error format; headless Chromium shows the
example UI workflow with our nodes (and, with PAIRCUSTOM_COMFYUI_SCREENSHOT=path, saves the docs screenshot).
Runs in ComfyUI's environment (integrations/comfyui/env.sh); skips elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from comfyui_helpers import (
    PACK,
    ROOT,
    build_workflows,
    install_copy,
    require_comfyui,
    train_shapes_style,
    with_family,
)
from PIL import Image

require_comfyui()

API_WORKFLOWS, UI_WORKFLOWS = PACK / "api_workflows", PACK / "example_workflows"
STARTUP_SECONDS, RUN_SECONDS = 240, 300


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(url: str, payload: dict | None = None) -> tuple[int, dict]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """ComfyUI's main.py on a free port, with a quickly trained style of the bundled pair in models/loras."""
    folder = tmp_path_factory.mktemp("comfyui-server")
    root = install_copy(folder)
    style = train_shapes_style(root / "models" / "loras" / build_workflows().demo_style_file())
    with_family(style, root / "models" / "loras" / "sdxl-style.safetensors", "sdxl")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TMPDIR": str(folder)}
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, f"ComfyUI exited; its log ends:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"ComfyUI did not answer in {STARTUP_SECONDS} s:\n{log_path.read_text()[-3000:]}"
            )
            try:
                if _request(url + "/object_info/PairCustomStyleGuider")[1]:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        yield {"url": url, "root": root, "log": log_path, "style": style}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _run(server, workflow: dict) -> dict:
    """POST a workflow to /prompt and poll /history until it has finished; its history entry."""
    status, answer = _request(server["url"] + "/prompt", {"prompt": workflow, "client_id": "paircustom-test"})
    assert status == 200, f"/prompt refused the workflow: {answer}"
    prompt_id = answer["prompt_id"]
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        entry = _request(f"{server['url']}/history/{prompt_id}")[1].get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            return entry
        time.sleep(1)
    raise AssertionError(f"the workflow did not finish in {RUN_SECONDS} s:\n{server['log'].read_text()[-3000:]}")


def _saved(server, entry: dict, node: str) -> np.ndarray:
    image = entry["outputs"][node]["images"][0]
    path = server["root"] / image["type"] / image["subfolder"] / image["filename"]
    return np.asarray(Image.open(path).convert("RGB"))


def _pipeline_image(api: dict, style_file: Path) -> np.ndarray:
    """The parity image: StyleGuidedPipeline with the workflow's settings (Euler as ComfyUI's "euler"/"simple";
    the same seeded noise), quantised as ComfyUI's SaveImage quantises (255·x, clipped, truncated)."""
    import torch
    from diffusers import EulerDiscreteScheduler

    from paircustom import StyleGuidedPipeline

    torch.set_num_threads(1)
    guider, loader, prompt = api["5"]["inputs"], api["2"]["inputs"], api["3"]["inputs"]
    pipe = StyleGuidedPipeline.from_pretrained("shapes")
    pipe.pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.pipe.scheduler.config)
    pipe.load_style(style_file, name="style")
    image = pipe(
        prompt["text"],
        styles={"style": loader["scale"]},
        guidance_scale=guider["cfg"],
        style_start_fraction=guider["style_start"],
        style_end=guider["style_end"],
        num_inference_steps=api["8"]["inputs"]["steps"],
        seed=api["6"]["inputs"]["noise_seed"],
        output_type="np",
    ).images[0]  # (H, W, 3) in [0, 1]
    return np.clip(255.0 * image, 0, 255).astype(np.uint8)


def test_api_workflow_draws_the_parity_image(server):
    api = json.loads((API_WORKFLOWS / "shapes_api.json").read_text())
    entry = _run(server, api)
    assert entry["status"]["status_str"] == "success", entry["status"]
    guided, one_node = _saved(server, entry, "12"), _saved(server, entry, "14")
    assert guided.shape == (64, 64, 3)
    assert np.array_equal(guided, one_node), "the Style Sampler node and the guider graph drew different images"
    reference = _pipeline_image(api, server["style"])
    difference = np.abs(guided.astype(int) - reference.astype(int))
    # latents agree to ~1e-5, so a pixel may only land on the other side of a quantisation step
    assert difference.max() <= 1 and difference.mean() < 0.01, (
        f"the server's image differs from StyleGuidedPipeline's by up to {difference.max()} levels"
    )


def test_missing_style_file_is_a_validation_error(server):
    api = json.loads((API_WORKFLOWS / "shapes_api.json").read_text())
    api["2"]["inputs"]["style_file"] = "missing.safetensors"
    status, answer = _request(server["url"] + "/prompt", {"prompt": api})
    assert status == 400, answer
    errors = answer["node_errors"]["2"]["errors"]
    assert errors[0]["type"] == "custom_validation_failed"
    assert "'missing.safetensors' is neither a full path nor a file in ComfyUI's models/loras" in errors[0]["details"]
    assert "Traceback" not in json.dumps(answer)


def test_style_of_another_family_is_a_node_error(server):
    api = json.loads((API_WORKFLOWS / "shapes_api.json").read_text())
    api["2"]["inputs"]["style_file"] = "sdxl-style.safetensors"
    entry = _run(server, api)
    assert entry["status"]["status_str"] == "error"
    error = next(data for event, data in entry["status"]["messages"] if event == "execution_error")
    assert error["node_type"] == "PairCustomStyleLoader" and error["exception_type"] == "paircustom.errors.UserError"
    assert error["exception_message"].strip().startswith("'"), error["exception_message"]
    assert "was trained on a SDXL model" in error["exception_message"]
    assert "but this model is SD 1.x/2.x" in error["exception_message"]


def _browser(tmp_path):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        message = "the ComfyUI page test needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("PAIRCUSTOM_COMFYUI_TESTS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1900,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_page_shows_the_example_workflow(server, tmp_path):
    workflow = json.loads((UI_WORKFLOWS / "shapes.json").read_text())
    # a fresh ComfyUI greets with its template browser; as after a first visit, start on the canvas
    for setting, value in (("Comfy.TutorialCompleted", True), ("Comfy.Minimap.Visible", False)):
        assert _request(f"{server['url']}/settings/{setting}", value)[0] == 200
    browser = _browser(tmp_path)
    try:
        browser.set_script_timeout(60)
        browser.get(server["url"])
        deadline = time.monotonic() + 120
        while not browser.execute_script("return !!(window.app && window.app.graph && window.LiteGraph)"):
            assert time.monotonic() < deadline, "ComfyUI's page did not start its app"
            time.sleep(1)
        browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.app.loadGraphData(arguments[0]).then(() => done(true));",
            workflow,
        )
        time.sleep(2)
        shown = browser.execute_script("return window.app.graph._nodes.map(n => n.type)")
        known = browser.execute_script("return Object.keys(window.LiteGraph.registered_node_types)")
        ours = {node["type"] for node in workflow["nodes"]}
        assert sorted(shown) == sorted(node["type"] for node in workflow["nodes"])
        assert ours <= set(known), f"the page does not know {sorted(ours - set(known))}"
        target = os.environ.get("PAIRCUSTOM_COMFYUI_SCREENSHOT")
        browser.save_screenshot(str(Path(target) if target else tmp_path / "comfyui.png"))
    finally:
        browser.quit()
