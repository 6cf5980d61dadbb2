"""The prepared GPU check script runs end to end on a CPU with --tiny (the same code path as on the GPU)."""

import json

from benchmarks import gpu_flux_check, gpu_sdxl_check


def _load():
    return gpu_sdxl_check


def test_tiny_run_trains_previews_generates_and_writes_figures(tmp_path):
    check = _load()
    out = tmp_path / "check"
    assert (
        check.main(
            ["--tiny", "--device", "cpu", "--warmup", "1", "--steps", "2", "--sample-steps", "2", "--out", str(out)]
        )
        == 0
    )
    results = json.loads(out.with_suffix(".json").read_text())
    assert results["losses_finite"] and results["training_steps_per_s"] > 0, results
    assert {"build", "training (timed)", "training preview (Euler)", "generation"} <= results["stages"].keys()
    assert "steps/s" in out.with_suffix(".md").read_text()


def test_full_size_run_asks_for_a_gpu_on_a_cpu(capsys):
    import torch

    if torch.cuda.is_available():
        return
    assert _load().main(["--device", "cpu"]) == 2
    assert "needs a GPU" in capsys.readouterr().err


def test_flux_check_tiny_run_trains_in_bf16_and_writes_figures(tmp_path):
    check = gpu_flux_check
    out = tmp_path / "flux"
    assert (
        check.main(
            ["--tiny", "--device", "cpu", "--warmup", "1", "--steps", "2", "--sample-steps", "2", "--out", str(out)]
        )
        == 0
    )
    results = json.loads(out.with_suffix(".json").read_text())
    assert results["losses_finite"] and results["training_steps_per_s"] > 0 and results["dtype"] == "bf16", results
    assert {"build", "training (timed)", "training preview (4 steps)", "generation"} <= results["stages"].keys()
    assert "Flux GPU check" in out.with_suffix(".md").read_text()
    assert check.main(["--device", "cpu"]) == 2, "the real-width run needs a GPU"
