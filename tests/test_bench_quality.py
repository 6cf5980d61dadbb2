"""Quality benchmark (issue 4), quick mode: a trained style must beat no style on ground-truth fidelity."""

import pytest

from paircustom.shapes import world_version

pytestmark = pytest.mark.skipif(
    world_version() != 2,
    reason="the embedded shapes model was not trained on the v2 world (python -m paircustom.shapes.train); the "
           "quality benchmark needs a model that has learned this world, another gives meaningless fidelities")


def test_quick_benchmark_trained_style_beats_no_style(tmp_path):
    from dataclasses import replace

    from paircustom.bench.quality import QUICK, QualityConfig, run

    config = replace(QualityConfig(**QUICK), out=str(tmp_path), work=str(tmp_path / "work"))
    results = run(config, log=lambda message: None)
    overall = {r["method"]: r["fidelity"] for r in results["records"] if r["split"] == "all"}
    assert overall["none"] == pytest.approx(0.0)
    assert max(overall[m] for m in config.methods) > overall["none"], overall
    assert all((tmp_path / f"{config.name}.{ext}").is_file() for ext in ("md", "png", "json"))
