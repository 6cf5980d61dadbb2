"""Quality benchmark (issue 4), quick mode: a trained style must beat no style on ground-truth fidelity; and the
rows of the cheaper style guidance (issue 14), which need no trained world to check."""

import json

import numpy as np
import pytest
import torch

from paircustom.bench import CHEAP_GUIDANCE
from paircustom.bench.quality import METHODS, QualityConfig, Sample, generate
from paircustom.bench.quality_report import pareto_table, pareto_verdict, shortcut_table
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.shapes import world_version
from paircustom.shapes.examples import EXAMPLES, MORE_SCENES
from paircustom.shapes.styles import STYLES
from paircustom.tiny.unet import build_tiny_pipeline


@pytest.mark.skipif(
    world_version() != 2,
    reason="the embedded shapes model was not trained on the v2 world (python -m paircustom.shapes.train); the "
    "quality benchmark needs a model that has learned this world, another gives meaningless fidelities",
)
def test_quick_benchmark_trained_style_beats_no_style(tmp_path):
    from dataclasses import replace

    from paircustom.bench.quality import QUICK, run

    config = replace(QualityConfig(**QUICK), out=str(tmp_path), work=str(tmp_path / "work"))
    results = run(config, log=lambda message: None)
    overall = {r["method"]: r["fidelity"] for r in results["records"] if r["split"] == "all"}
    assert overall["none"] == pytest.approx(0.0)
    assert max(overall[m] for m in config.methods) > overall["none"], overall
    assert all((tmp_path / f"{config.name}.{ext}").is_file() for ext in ("md", "png", "json"))


def test_cheaper_guidance_methods_sample_with_their_options(style_files):
    """Each issue-14 method is the pair-sg file under its own sampling options, and is run with exactly them."""
    assert {f"pair-sg-{key}" for key in CHEAP_GUIDANCE} <= METHODS.keys()
    guided = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    guided.pipe.set_progress_bar_config(disable=True)
    guided.load_style(style_files["sd"], name="art")
    config = QualityConfig(steps=10)
    sample = Sample(
        ["a photo of a cat", "a dog"],
        ["held-out", "training"],
        torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0)),
    )
    full = generate(guided, sample, config, "art", 3.0, "guidance", METHODS["pair-sg"].sample)
    for key, (_, options) in CHEAP_GUIDANCE.items():
        method = METHODS[f"pair-sg-{key}"]
        assert method.train == METHODS["pair-sg"].train and method.apply == "guidance", key
        got = generate(guided, sample, config, "art", 3.0, method.apply, method.sample)
        direct = guided(
            sample.prompts,
            styles={"art": 3.0},
            num_inference_steps=10,
            guidance_scale=5.0,
            style_start_fraction=0.2,
            latents=sample.latents.clone(),
            output_type="np",
            **options,
        ).images
        assert np.array_equal(got, (np.asarray(direct) * 255).round().clip(0, 255).astype(np.uint8)), key
        assert not np.array_equal(got, full), f"{key}: sampled as full style guidance"


def _record(style, method, fidelity, leakage):
    return dict(
        style=style, method=method, scale=3.0, split="all", fidelity=fidelity, leakage=leakage, structure=None, n=4
    )


def test_shortcut_table_holds_each_style_to_full_guidance():
    results = {
        "config": dict(
            styles=["inverted", "grayscale"],
            methods=["pair-sg", "pair-sg-i2", "pair-sg-i4"],
            default_style_scale=3.0,
            default_lora_scale=1.0,
        ),
        "records": [
            _record("inverted", "pair-sg", 0.30, 0.25),
            _record("grayscale", "pair-sg", 0.10, 0.50),
            _record("inverted", "pair-sg-i2", 0.285, 0.25),  # 0.015 below, same leakage: met
            _record("grayscale", "pair-sg-i2", 0.125, 0.375),  # above and less leakage: met
            _record("inverted", "pair-sg-i4", 0.27, 0.25),  # 0.03 below: missed
            _record("grayscale", "pair-sg-i4", 0.10, 0.625),
        ],
    }  # more leakage: missed
    lines = shortcut_table(results).splitlines()
    verdict = {tuple(cell.strip() for cell in line.split("|")[1:3]): line.split("|")[-2].strip() for line in lines[2:]}
    assert verdict == {
        ("pair-sg-i2", "inverted"): "met",
        ("pair-sg-i2", "grayscale"): "met",
        ("pair-sg-i2", "every style"): "met",
        ("pair-sg-i4", "inverted"): "MISSED",
        ("pair-sg-i4", "grayscale"): "MISSED",
        ("pair-sg-i4", "every style"): "MISSED",
    }, verdict
    assert shortcut_table({**results, "config": {**results["config"], "methods": ["pair-sg"]}}) == ""


def test_three_pair_method_trains_on_three_scenes_each_with_its_caption(tmp_path, monkeypatch):
    from PIL import Image

    from paircustom.bench import quality, sections

    seen = []
    monkeypatch.setattr(sections, "train_pair", lambda config: seen.append(config))
    config = QualityConfig(work=str(tmp_path))
    quality.train_style(config, "grayscale", METHODS["pair-sg-3pairs"], tmp_path)
    (trained,) = seen
    scenes = [EXAMPLES["trio"].scene, *MORE_SCENES]
    assert len(trained.pairs) == 3 and len(set(trained.pairs)) == 3
    assert [trained.subject, *trained.pair_subjects] == [s.layout.caption.removeprefix("a photo of a ") for s in scenes]
    for (content, style), pair in zip(trained.pairs, quality.training_pairs(config, "grayscale", 3)):
        assert np.array_equal(np.asarray(Image.open(content)), pair.images()[0]), content
        assert np.array_equal(np.asarray(Image.open(style)), pair.images()[1]), style
    quality.train_style(config, "grayscale", METHODS["pair-sg"], tmp_path)
    assert seen[1].extra_pairs == () and seen[1].output != trained.output, "one pair: its own file"


def _leak_case(apply, count: int = 48):
    """Rendered held-out scenes x, their targets f(x), and the content and style images of the first two training
    pairs (content, style, content, style)."""
    from paircustom.shapes.world import render, render_batch

    images, _ = render_batch(np.random.default_rng(5), count, held_out=True)
    contents = [render(scene) for scene in (EXAMPLES["trio"].scene, MORE_SCENES[0])]
    return images, np.stack([apply(x) for x in images]), np.stack([i for c in contents for i in (c, apply(c))])


def _calibration_styles():
    from paircustom.shapes.families import BENCHMARK_MEMBERS
    from paircustom.shapes.styles import KNOWN_STYLES

    return {
        **{k: s.apply for k, s in STYLES.items()},
        **{k: s.apply for k, s in KNOWN_STYLES.items()},
        **{k: m.apply for k, m in BENCHMARK_MEMBERS.items()},
    }


def _moved(images: np.ndarray) -> np.ndarray:
    """Each image shifted by (4, -3) pixels and box-blurred: a sample with its own layout, drawn imprecisely."""
    from paircustom.shapes.styles import blurry

    return np.stack([blurry(np.roll(image, (4, -3), axis=(0, 1))) for image in images])


@pytest.mark.parametrize("style", list(_calibration_styles()))
def test_leakage_is_one_on_copies_of_the_pair_and_zero_on_perfect_samples(style):
    """Calibration (issue 28): a copy of a training image leaks; f(x_base), x_base, half-styled samples and perfect
    samples drawn a few pixels off do not, for every benchmark style, known style and family member."""
    from paircustom.bench.leakage import leakage

    apply = _calibration_styles()[style]
    base, target, pair_images = _leak_case(apply)
    leak = lambda samples: leakage(samples, base, target, pair_images[:2])  # noqa: E731
    for what, image in {"the pair's style image": pair_images[1], "the pair's content image": pair_images[0]}.items():
        assert leak(np.broadcast_to(image, base.shape)) >= 0.9, f"{style}: a copy of {what} must leak"
    half = np.rint(0.5 * base.astype(np.float32) + 0.5 * target).astype(np.uint8)
    for what, samples in {
        "f(x_base)": target,
        "x_base": base,
        "half-styled": half,
        "f(x_base) drawn 4 px off and blurred": _moved(target),
    }.items():
        assert leak(samples) <= 0.05, f"{style}: {what} copies nothing, yet leakage {leak(samples):.2f}"


def test_leakage_counts_a_copy_of_any_training_pair():
    from paircustom.bench.scores import metrics

    base, target, pair_images = _leak_case(STYLES["inverted"].apply)
    copied = np.broadcast_to(pair_images[3], base.shape)  # the second pair's style image, everywhere
    one = metrics(copied, base, target, pair_images[:2], readable=False)["leakage"]
    two = metrics(copied, base, target, pair_images, readable=False)["leakage"]
    assert one < 0.5 and two == 1.0, (one, two)


@pytest.mark.parametrize(
    "ours, theirs, verdict",
    [
        ([(0.5, 0.1)], [(0.4, 0.2)], "ours"),  # better on both
        ([(0.4, 0.2)], [(0.5, 0.1)], "theirs"),
        ([(0.5, 0.3)], [(0.4, 0.2)], "neither"),  # more fidelity, more leakage: crossing
        ([(0.2, 0.0), (0.6, 0.2)], [(0.1, 0.0), (0.5, 0.2)], "ours"),  # each of theirs matched by one of ours
        ([(0.2, 0.0), (0.6, 0.2)], [(0.1, 0.0), (0.7, 0.2)], "neither"),  # their strongest point is unmatched
        ([(0.3, 0.1)], [(0.3, 0.1)], "neither"),  # the same frontier
    ],
)
def test_pareto_verdict_compares_whole_scale_sweeps(ours, theirs, verdict):
    assert pareto_verdict(ours, theirs) == verdict


def test_pareto_table_counts_styles_where_pair_beats_both_baselines():
    def rec(style, method, scale, fidelity, leakage, split="held-out"):
        return {**_record(style, method, fidelity, leakage), "scale": scale, "split": split}

    records = [
        rec("inverted", "pair-sg", 3, 0.6, 0.0),
        rec("inverted", "db-lora", 1, 0.4, 0.1),
        rec("inverted", "slider", 1, 0.5, 0.0),
        rec("grayscale", "pair-sg", 3, 0.6, 0.2),
        rec("grayscale", "db-lora", 1, 0.4, 0.1),
        rec("grayscale", "slider", 1, 0.1, 0.3),
        rec("inverted", "slider", 1, 0.9, 0.0, split="training"),
    ]  # another split: ignored
    config = dict(styles=["inverted", "grayscale"], methods=["pair-sg", "db-lora", "slider"])
    lines = pareto_table({"config": config, "records": records}).splitlines()
    assert [line.split("|")[4].strip() for line in lines[2:4]] == ["better", "neither"]
    assert [line.split("|")[6].strip() for line in lines[2:4]] == ["better", "better"]
    assert "1 of 2 styles" in lines[-1]
    assert pareto_table({"config": {**config, "methods": ["pair-sg", "db-lora"]}, "records": records}) == ""


def test_report_only_rewrites_the_tables_from_the_json(tmp_path, capsys):
    """--report-only renders <name>.md from <name>.json (with the Pareto section) and keeps the sample sheet; a
    missing JSON is one sentence and exit code 2."""
    from dataclasses import asdict

    from paircustom.bench import quality

    config = asdict(QualityConfig(styles=("inverted",), methods=("pair-sg", "db-lora", "slider")))
    records = [
        {**_record("inverted", m, f, l), "split": split, "analyzer_reads": 0.99, "readable": True}
        for m, f, l in (
            ("none", 0.0, 0.0),
            ("ideal", 1.0, 0.0),
            ("pair-sg", 0.5, 0.0),
            ("db-lora", 0.3, 0.1),
            ("slider", 0.2, 0.2),
        )
        for split in ("all", "held-out")
    ]
    (tmp_path / "quality.json").write_text(
        json.dumps(dict(config=config, minutes=1.0, records=records, prompts=[("held-out", "a photo of a red circle")]))
    )
    (tmp_path / "quality-samples.png").write_bytes(b"kept")
    quality.main(["--section", "new-words", "--report-only", "--out", str(tmp_path)])
    text = (tmp_path / "quality.md").read_text()
    assert "| better than both | 1 of 1 styles |" in text, text
    assert (tmp_path / "quality.png").is_file() and (tmp_path / "quality-samples.png").read_bytes() == b"kept"
    with pytest.raises(SystemExit) as stop:
        quality.main(["--section", "new-words", "--report-only", "--out", str(tmp_path / "missing")])
    assert stop.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_scale_sweeps_are_command_line_flags(monkeypatch):
    from paircustom.bench import quality

    seen = []
    monkeypatch.setattr(quality, "run", lambda config, log: seen.append(config))
    quality.main(["--section", "new-words", "--styles", "inverted", "--style-scales", "1,8", "--lora-scales", "2"])
    assert (seen[0].style_scales, seen[0].lora_scales, seen[0].styles) == ((1.0, 8.0), (2.0,), ("inverted",))
    quality.main(["--section", "new-words"])
    assert (seen[1].style_scales, seen[1].lora_scales) == (QualityConfig.style_scales, QualityConfig.lora_scales)


@pytest.mark.parametrize(
    "word_fidelities, verdict, count",
    [
        ((0.2, 0.2, 0.2, 0.2, 0.0, 0.0), "GAIN", 4),  # better on exactly 4 of 6: a gain
        ((0.2, 0.2, 0.2, 0.1, 0.0, 0.0), "NO GAIN", 3),  # a tie is not better
        ((0.0,) * 6, "NO GAIN", 0),
    ],
)
def test_learned_word_gain_needs_four_of_six_styles(word_fidelities, verdict, count):
    from paircustom.bench.quality_gates import word_gain_lines

    styles = ("a", "b", "c", "d", "e", "f")
    records = [
        {**_record(style, method, fidelity, 0.0), "split": "held-out"}
        for style, word in zip(styles, word_fidelities)
        for method, fidelity in (("pair-sg", 0.1), ("pair-sg-word", word))
    ]
    config = dict(styles=styles, methods=("pair-sg", "pair-sg-word"), style_scales=(3.0,))
    lines = word_gain_lines(dict(config=config, records=records))
    assert lines[0].startswith(f"- {verdict} at λ = 3:") and f"on {count} of 6 styles (need 4)" in lines[0], lines
    assert word_gain_lines(dict(config={**config, "methods": ("pair-sg",)}, records=records)) == []
