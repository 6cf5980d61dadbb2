"""Ctrl-C (SIGINT) at any moment of `paircustom train` exits 130 with one line, no traceback and no output file:
while the modules import, while the model loads (also when a library swallows the KeyboardInterrupt, as a
ThreadPoolExecutor callback once did), and during training (where the line says how to keep the work)."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from paircustom.shapes.examples import example_paths

ROOT = Path(__file__).resolve().parents[1]
# A child that runs the command line but stops inside the first weight file's loading (after writing the marker),
# so that SIGINT arrives while the model loads; "swallow" also catches the KeyboardInterrupt there and loads on.
LOADING_CHILD = """
import sys, time
from pathlib import Path
import safetensors.torch
marker, swallow, argv = sys.argv[1], sys.argv[2] == "swallow", sys.argv[3:]
load_file = safetensors.torch.load_file
def slow_load_file(*args, **kwargs):
    Path(marker).write_text("loading")
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        if not swallow:
            raise
    return load_file(*args, **kwargs)
safetensors.torch.load_file = slow_load_file
from paircustom.cli.main import main
sys.exit(main(argv))
"""
TIMEOUT = 300  # seconds for a child to reach the moment (imports are slow on a busy machine)


def _train_argv(tmp_path) -> list[str]:
    content, style = example_paths("trio")
    return [
        "train",
        str(content),
        str(style),
        "--subject",
        "scene",
        "--style",
        "inverted colours",
        "--steps",
        "300",
        "-o",
        str(tmp_path / "out" / "style.safetensors"),
    ]


class Child:
    """A subprocess whose stderr is collected in the background."""

    def __init__(self, argv, tmp_path):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr = b""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for chunk in iter(lambda: self.process.stderr.read1(4096), b""):
            self.stderr += chunk

    def wait_for(self, ready, what: str):
        deadline = time.monotonic() + TIMEOUT
        while not ready():
            assert self.process.poll() is None, f"the child ended before {what}: {self.stderr.decode()[-2000:]}"
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"the child did not reach {what} in {TIMEOUT} s")
            time.sleep(0.005)

    def interrupt(self) -> tuple[int, str, float]:
        """SIGINT; (exit code, stderr, seconds to exit)."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("the child still ran 60 s after Ctrl-C")
        self.reader.join(10)
        return code, self.stderr.decode(), time.monotonic() - start


def _maps(pid) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def _steps_shown(stderr: bytes) -> int:
    """The last step count the progress bar printed (it may skip some: tqdm redraws at most every 0.1 s)."""
    counts = re.findall(rb"pair training:[^|]*\|[^|]*\| *(\d+)/300", stderr)
    return int(counts[-1]) if counts else 0


def _start(moment, tmp_path) -> Child:
    """The child, stopped (or about to be) at ``moment``."""
    argv = _train_argv(tmp_path)
    if moment in ("loading", "loading, interrupt swallowed"):
        marker = tmp_path / "marker"
        swallow = "swallow" if "swallowed" in moment else "raise"
        child = Child([sys.executable, "-c", LOADING_CHILD, str(marker), swallow, *argv], tmp_path)
        child.wait_for(marker.exists, "model loading")
    elif moment == "import":
        child = Child([sys.executable, "-m", "paircustom", *argv], tmp_path)
        child.wait_for(lambda: "libtorch" in _maps(child.process.pid), "the import of torch")
    else:
        child = Child([sys.executable, "-m", "paircustom", *argv], tmp_path)
        child.wait_for(lambda: _steps_shown(child.stderr) >= 2, "training step 2")
    return child


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="watches the child through /proc")
@pytest.mark.parametrize("moment", ["import", "loading", "loading, interrupt swallowed", "training"])
def test_ctrl_c_exits_130_with_one_line_and_writes_nothing(moment, tmp_path):
    code, stderr, seconds = _start(moment, tmp_path).interrupt()
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert code == 130, f"exit code {code} after Ctrl-C during {moment}; stderr:\n{stderr[-3000:]}"
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
    assert lines and lines[-1].startswith("paircustom: interrupted"), stderr[-3000:]
    assert sum(line.startswith("paircustom: interrupted") for line in lines) == 1, "the line is printed twice"
    written = list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else []
    assert written == [], f"Ctrl-C during {moment} left {written}"
    if moment == "training":
        assert "--checkpoint-every" in lines[-1] and "--resume" in lines[-1], lines[-1]
    assert seconds < 30, f"the child took {seconds:.0f} s to stop after Ctrl-C"
