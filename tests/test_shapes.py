"""The shapes world v2: renderer, analyzer, held-out rule, styles, examples, base training and the embedded model."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from paircustom.models.registry import load_pipeline
from paircustom.shapes import MODEL_DIR, world_version
from paircustom.shapes.analyzer import analyze
from paircustom.shapes.evaluate import eval_layouts, format_confusion, generate, score, shape_confusion
from paircustom.shapes.examples import EXAMPLES, example_paths
from paircustom.shapes.styles import (
    KNOWN_STYLES,
    STYLE_WORDS,
    STYLES,
    blurry,
    faded,
    grayscale,
    hue_rotated,
    inverted,
    line_sketch,
    pixelate,
    posterize,
    striped,
)
from paircustom.shapes.world import (
    COLOURS,
    GROUP_SIZE,
    MARGIN,
    MAX_OVERLAP,
    MIN_GAP,
    PALETTE,
    SHAPES,
    SINGLE_SIZE,
    Layout,
    Scene,
    Thing,
    caption,
    is_held_out,
    random_layout,
    render,
    render_batch,
)

RED, BLUE, WHITE = COLOURS["red"], COLOURS["blue"], COLOURS["white"]


@pytest.mark.parametrize("objects, exact_at_least", [(1, 1.0), (2, 0.97), (3, 0.93)])  # saw 1.0, 0.99, 0.95
def test_renderer_analyzer_round_trip(objects, exact_at_least):
    """Rendered scenes read back as their layout; overlaps can hide a corner, so 2-3 objects may miss a few."""
    images, scenes = render_batch(np.random.default_rng(123), 300, objects=objects)
    readings = [analyze(image) for image in images]
    exact = np.mean([r == s.layout for r, s in zip(readings, scenes)])
    counts = np.mean([len(r.objects) == objects for r in readings])
    colours = np.mean([dict(r.objects).keys() == dict(s.layout.objects).keys() for r, s in zip(readings, scenes)])
    assert exact >= exact_at_least, f"{objects} objects: {exact:.3f} read back exactly"
    assert counts == 1.0 and colours == 1.0, (counts, colours)


def test_render_pixels_and_drawing_order():
    scene = Scene(2, (Thing(0, 0, left=16, top=16, size=32),))  # red circle on blue
    image = render(scene)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == BLUE and tuple(image[32, 32]) == RED
    assert len({tuple(p) for p in image.reshape(-1, 3)}) > 2  # anti-aliased rim
    palette = np.arange(27, dtype=np.uint8).reshape(9, 3) * 9  # any colours, for VAE training
    recoloured = render(scene, palette)
    assert tuple(recoloured[0, 0]) == tuple(palette[2]) and tuple(recoloured[32, 32]) == tuple(palette[0])
    # A ring's hole shows whatever lies below it: here a white square drawn first.
    ring = render(Scene(2, (Thing(6, 1, left=24, top=24, size=16), Thing(0, 3, left=16, top=16, size=32))))
    assert tuple(ring[32, 32]) == WHITE and tuple(ring[32, 20]) == RED


def test_layout_caption_and_held_out_rule():
    assert caption(0, 0, 2) == "a photo of a red circle on a blue background"  # v1's one-object form is kept
    assert Layout(6, ((0, 1), (4, 3))).caption == "a photo of a red square and a cyan ring on a white background"
    assert SHAPES == ("circle", "square", "triangle", "ring")
    assert is_held_out(0, 0, 7) and not is_held_out(0, 0, 2)
    assert Layout(6, ((0, 1), (4, 3))).held_out and not Layout(2, ((0, 0), (3, 1))).held_out
    rng = np.random.default_rng(0)
    assert not any(random_layout(rng).held_out for _ in range(300))
    assert all(random_layout(rng, held_out=True).held_out for _ in range(300))
    counts = np.bincount([len(random_layout(rng).objects) for _ in range(600)])
    assert counts[0] == 0 and min(counts[1:]) > 150, counts  # 1, 2 and 3 objects, about equally often


def test_placement_keeps_sizes_margins_order_and_overlap_limits():
    _, scenes = render_batch(np.random.default_rng(1), 400)
    for scene in scenes:
        things = scene.things
        low, high = SINGLE_SIZE if len(things) == 1 else GROUP_SIZE
        assert all(low * 64 - 1e-6 <= t.size <= high * 64 + 1e-6 for t in things)
        assert all(t.left >= MARGIN - 1e-6 and t.top >= MARGIN - 1e-6 for t in things)
        assert all(t.left + t.size <= 64 - MARGIN + 1e-6 and t.top + t.size <= 64 - MARGIN + 1e-6 for t in things)
        centres = sorted(t.centre_x for t in things)
        assert all(b - a >= MIN_GAP for a, b in zip(centres, centres[1:]))
        colours = [t.colour for t in things] + [scene.background]
        assert len(set(colours)) == len(colours)
        for i, a in enumerate(things):
            for b in things[:i]:
                w = min(a.left + a.size, b.left + b.size) - max(a.left, b.left)
                h = min(a.top + a.size, b.top + b.size) - max(a.top, b.top)
                assert max(w, 0) * max(h, 0) <= MAX_OVERLAP * min(a.size, b.size) ** 2 + 1e-6


def test_palette_is_closed_under_the_colour_permuting_styles():
    palette = {tuple(int(v) for v in colour) for colour in PALETTE}
    for style in (inverted, hue_rotated):
        mapped = {tuple(int(v) for v in style(np.array([[colour]], dtype=np.uint8))[0, 0]) for colour in palette}
        assert all(min(np.abs(np.subtract(m, p)).max() for p in palette) <= 1 for m in mapped), style.__name__


def test_styles_shapes_dtypes_and_names():
    image = render(Scene(4, (Thing(3, 2, left=10, top=12, size=30),)))
    for style in (*STYLES.values(), *KNOWN_STYLES.values()):
        out = style.apply(image)
        assert out.shape == (64, 64, 3) and out.dtype == np.uint8, style.name
    assert len(STYLES) == 6 and not set(STYLES) & set(KNOWN_STYLES)
    assert {"inverted", "colours", "line", "sketch", "blurry"} <= set(STYLE_WORDS)


def test_style_pixels():
    red = np.full((64, 64, 3), RED, dtype=np.uint8)
    assert tuple(inverted(red)[5, 5]) == (40, 215, 215)
    assert tuple(grayscale(red)[5, 5]) == (92, 92, 92)  # 0.299 * 215 + 0.587 * 40 + 0.114 * 40 = 92.3
    assert tuple(hue_rotated(red)[5, 5]) == (40, 215, 40)  # red -> green
    assert (
        tuple(posterize(red)[5, 5]) == (255, 0, 0)
        and tuple(posterize(np.full((1, 1, 3), 128, np.uint8))[0, 0]) == (255,) * 3
    )
    assert (pixelate(red) == red).all() and (line_sketch(red) == 255).all()
    assert (blurry(red) == red).all() and tuple(faded(red)[0, 0]) == (208, 120, 120)
    assert tuple(striped(red)[0, 0]) == RED and tuple(striped(red)[4, 0]) == (129, 24, 24)
    stripes = np.zeros((64, 64, 3), dtype=np.uint8)
    stripes[:, ::2] = 200
    assert (pixelate(stripes) == 100).all()
    split = np.zeros((64, 64, 3), dtype=np.uint8)
    split[:, 32:] = 255
    sketch = line_sketch(split)
    assert sketch[10, 31, 0] == 0 and sketch[10, 10, 0] == 255 and sketch[10, 50, 0] == 255
    quarter = np.zeros((64, 64, 3), dtype=np.uint8)
    quarter[:8, :8] = 255  # a quarter of the top-left 16x16 block
    assert (pixelate(quarter)[:16, :16] == 64).all() and (pixelate(quarter)[16:] == 0).all()


def test_example_pairs_are_shipped_and_current():
    for name, pair in EXAMPLES.items():
        content, style = pair.images()
        assert analyze(content) == pair.scene.layout and not pair.scene.layout.held_out
        assert name == "red_circle" or len({c for c, _ in pair.scene.layout.objects}) == 3  # several colours
        for path, expected in zip(example_paths(name), (content, style)):
            assert (np.asarray(Image.open(path).convert("RGB")) == expected).all(), path


def test_score_counts_objects_colours_and_shapes():
    layouts = [Layout(2, ((0, 0), (3, 1))), Layout(7, ((0, 0),))]
    images = np.stack(
        [
            render(Scene(2, (Thing(0, 0, 4, 20, 20), Thing(3, 1, 36, 20, 20)))),  # exact
            render(Scene(7, (Thing(0, 1, 20, 20, 24),))),
        ]
    )  # square, not circle
    result = score(images, layouts)
    assert (result.colour, result.shape, result.background, result.objects, result.all) == (1.0, 2 / 3, 1.0, 1.0, 0.5)
    assert [len(layout.objects) for layout in eval_layouts(6, True)] == [1, 2, 3, 1, 2, 3]


def test_shape_confusion_puts_each_prompted_object_under_the_shape_read_for_its_colour():
    layouts = [Layout(2, ((0, 0), (3, 1))), Layout(7, ((0, 0),)), Layout(7, ((5, 2),))]
    images = np.stack(
        [
            render(Scene(2, (Thing(0, 0, 4, 20, 20), Thing(3, 1, 36, 20, 20)))),  # circle, square: right
            render(Scene(7, (Thing(0, 1, 20, 20, 24),))),  # circle drawn square
            render(Scene(7, (Thing(4, 2, 20, 20, 24),))),
        ]
    )  # colour 5 missing
    table = shape_confusion(images, layouts)
    expected = np.zeros((4, 5), dtype=np.int64)
    expected[0, 0] = expected[1, 1] = expected[0, 1] = expected[2, 4] = 1
    assert (table == expected).all(), table
    text = format_confusion(table)
    assert "| circle | 1 | 1 | 0 | 0 | 0 | 50% |" in text and "| triangle | 0 | 0 | 0 | 0 | 1 | 0% |" in text, text


def _tiny_base_config(**overrides):
    from paircustom.shapes.base_config import BaseTrainConfig

    settings = dict(
        vae_steps=2,
        vae_channels=(8, 8, 8, 8),
        latent_channels=4,
        vae_batch=2,
        decoder_steps=1,
        unet_steps=4,
        unet_channels=(16, 32),
        unet_heads=2,
        text_hidden=16,
        text_layers=1,
        pool_size=32,
        unet_batch=4,
        warmup_steps=1,
        checkpoint_every=2,
        sample_every=100,
    )
    return replace(BaseTrainConfig(), **{**settings, **overrides})


def test_vae_stage_keeps_the_output_conv_orthogonal_and_ties_the_latent_to_the_mean_colour(tmp_path):
    """The decoder's last conv starts with orthonormal rows and never trains; the colour-latent term pulls
    latent channels 0-2 towards the 8x8 mean colour, much closer than training without it."""
    import torch.nn.functional as F

    from paircustom.files.images import from_uint8
    from paircustom.shapes import stages
    from paircustom.shapes.data import vae_images
    from paircustom.shapes.networks import build_models

    gaps = {}
    for weight in (0.0, 1.0):
        config = _tiny_base_config(vae_steps=40, vae_batch=4, vae_lr=1e-2, colour_latent_weight=weight)
        vae = build_models(config, 10)[0]
        rows = vae.decoder.conv_out.weight.flatten(1).clone()  # (3, C*k*k)
        gram = rows @ rows.T / rows.norm(dim=1).mean() ** 2
        torch.testing.assert_close(gram, torch.eye(3), atol=1e-5, rtol=0, msg="output rows not orthonormal")
        stages.train_vae(vae, config, tmp_path / str(weight))
        assert torch.equal(vae.decoder.conv_out.weight.flatten(1), rows), "the output conv trained"
        images = from_uint8(vae_images(np.random.default_rng(3), 8, config))
        with torch.no_grad():
            gaps[weight] = F.l1_loss(vae.encode(images).latent_dist.mean[:, :3], F.avg_pool2d(images, 8)).item()
    assert gaps[1.0] < 0.5 * gaps[0.0], f"mean |latent[:3] - 8x8 mean colour| with / without the term: {gaps}"


@pytest.mark.parametrize("plain", [0, 1, 2])
def test_unet_plain_levels_drop_attention_at_the_leading_levels(plain):
    from paircustom.shapes.networks import build_models

    unet = build_models(_tiny_base_config(unet_channels=(16, 16, 32), unet_plain_levels=plain), 10)[2]
    down = [hasattr(block, "attentions") for block in unet.down_blocks]
    up = [hasattr(block, "attentions") for block in unet.up_blocks]
    assert down == [False] * plain + [True] * (3 - plain) and up == down[::-1], (plain, down, up)
    assert unet.sample_size == 8, "64 px through a 4-level VAE gives 8x8 latents"


def test_base_unet_trains_on_v_targets_of_a_zero_terminal_snr_schedule(tmp_path, monkeypatch):
    """No signal is left at t=999 (so the caption alone sets the background), the UNet learns v there, and the
    saved pipeline carries that schedule, from which pair training builds its own."""
    from diffusers import StableDiffusionPipeline

    from paircustom.models.forward import training_scheduler
    from paircustom.shapes import stages
    from paircustom.shapes import train as base
    from paircustom.shapes.networks import shapes_scheduler
    from paircustom.tiny.unet import sd_scheduler

    scheduler = shapes_scheduler()
    assert scheduler.alphas_cumprod[-1] == 0 and scheduler.config.prediction_type == "v_prediction"
    torch.testing.assert_close(
        scheduler.alphas_cumprod[0],
        sd_scheduler().alphas_cumprod[0],
        rtol=0.05,
        atol=0,
        msg="the rescaled schedule should start near SD's",
    )
    targets, original = [], stages.prediction_target

    def recording(scheduler, x0, noise, t):
        target = original(scheduler, x0, noise, t)
        a = scheduler.alphas_cumprod[t][:, None, None, None]
        torch.testing.assert_close(target, a.sqrt() * noise - (1 - a).sqrt() * x0, msg="v = sqrt(a) eps - sqrt(1-a) x0")
        targets.append(t)
        return target

    monkeypatch.setattr(stages, "prediction_target", recording)
    monkeypatch.setattr(stages, "check", lambda *args, **kwargs: None)
    base.train(_tiny_base_config(decoder_steps=1), tmp_path)
    assert len(targets) == _tiny_base_config().unet_steps, "every UNet step goes through the v target"
    saved = training_scheduler(StableDiffusionPipeline.from_pretrained(tmp_path / "pipeline").scheduler)
    assert saved.config.prediction_type == "v_prediction" and saved.alphas_cumprod[-1] == 0


def test_base_training_resumes_in_stages_to_the_same_model(tmp_path, monkeypatch):
    """Stopped between stages and inside the UNet stage, then started again: equal to an uninterrupted run, bitwise."""
    from paircustom.shapes import stages
    from paircustom.shapes import train as base

    monkeypatch.setattr(stages, "check", lambda *args, **kwargs: None)  # the held-out check is slow and optional
    config = _tiny_base_config()
    base.train(config, tmp_path / "straight")
    stopped = tmp_path / "stopped"
    assert base.train(config, stopped, stop_after="vae") is None
    assert (stopped / "vae" / "config.json").is_file() and not (stopped / "unet").exists()
    saver = stages.Checkpoint.save

    def stop_after_first_unet_checkpoint(self, step):
        saver(self, step)
        if self.path.name.startswith("unet"):
            raise KeyboardInterrupt

    monkeypatch.setattr(stages.Checkpoint, "save", stop_after_first_unet_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        base.train(config, stopped)
    assert json.loads((stopped / "unet_checkpoint.json").read_text())["step"] == 2
    monkeypatch.setattr(stages.Checkpoint, "save", saver)
    base.train(config, stopped)
    for part in (
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    ):
        a, b = (load_file(str(tmp_path / run / "pipeline" / part)) for run in ("straight", "stopped"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    with pytest.raises(SystemExit):  # another configuration cannot continue this run
        base.train(replace(config, unet_steps=6), stopped)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # keep this process's thread count
    assert base.train(replace(config, threads=2), stopped) is not None, "another thread count may continue it"


def test_training_pool_puts_filler_words_where_pair_training_puts_its_token():
    """A share of the captions gets one filler word after "a photo of a "; images and all other captions are
    those of a pool without fillers, and no filler is the V* token or a style word."""
    from paircustom.config.train import TrainConfig
    from paircustom.shapes import data

    config = _tiny_base_config(pool_size=400)
    images, captions = data.training_pool(config)
    plain_images, plain_captions = data.training_pool(replace(config, filler_share=0.0))
    assert np.array_equal(images, plain_images), "fillers change captions only"
    changed = [(a, b) for a, b in zip(captions, plain_captions) if a != b]
    assert 0.2 < len(changed) / len(captions) < 0.4, f"{len(changed)} of {len(captions)} captions with a filler"
    for with_filler, plain in changed:
        words = with_filler.removeprefix(data.CAPTION_START).split(" ", 1)
        assert words[0] in data.FILLER_WORDS and data.CAPTION_START + words[1] == plain, (with_filler, plain)
    token = TrainConfig.__dataclass_fields__["token"].default
    assert not {token, *STYLE_WORDS} & set(data.FILLER_WORDS)


def test_unet_stage_can_continue_a_finished_pipeline(tmp_path, monkeypatch):
    """--unet-from loads a finished pipeline's UNet and text encoder before the UNet stage (here with 0 steps:
    the result is that pipeline's weights); another architecture is refused with a message."""
    from paircustom.shapes import stages
    from paircustom.shapes import train as base

    monkeypatch.setattr(stages, "check", lambda *args, **kwargs: None)
    config = _tiny_base_config()
    base.train(config, tmp_path / "first")
    base.train(
        replace(config, unet_steps=0),
        tmp_path / "continued",
        vae_from=tmp_path / "first" / "vae",
        unet_from=tmp_path / "first" / "unet",
    )
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        a, b = (load_file(str(tmp_path / run / "unet" / part)) for run in ("first", "continued"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    (tmp_path / "continued" / "unet" / "model_index.json").unlink()  # as if stopped inside the UNet stage
    with pytest.raises(SystemExit, match="same --unet-from"):  # a stopped continuation cannot go on from scratch
        base.train(replace(config, unet_steps=0), tmp_path / "continued")
    with pytest.raises(SystemExit, match="does not fit"):
        base.train(
            replace(config, unet_channels=(16, 16)),
            tmp_path / "other",
            vae_from=tmp_path / "first" / "vae",
            unet_from=tmp_path / "first" / "unet",
        )


def test_base_training_cli_takes_channel_widths(tmp_path, monkeypatch):
    """Tuple fields such as the UNet's channel widths are comma-separated flags; the rest keep their defaults."""
    from paircustom.shapes import train as base

    seen = []
    monkeypatch.setattr(base, "train", lambda config, *args: seen.append(config))
    base.main(["--out", str(tmp_path), "--unet-channels", "32,64,128", "--unet-steps", "7"])
    assert seen == [replace(base.BaseTrainConfig(), unet_channels=(32, 64, 128), unet_steps=7)]


needs_model = pytest.mark.skipif(
    world_version() != 2,
    reason="the embedded shapes model predates the v2 world (train it with python -m paircustom.shapes.train)",
)


@needs_model
def test_embedded_model_follows_prompts():
    meta = json.loads((MODEL_DIR / "paircustom.json").read_text())
    assert meta["family"] == "sd" and "rank" in meta["train_defaults"]
    size = sum(f.stat().st_size for f in MODEL_DIR.rglob("*") if f.is_file())
    assert size < 30e6
    torch.manual_seed(0)
    pipe = load_pipeline("shapes")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.dtype == torch.float32
    longest = (
        "a photo of a sbu red circle and a yellow square and a white triangle on a blue background in "
        "inverted colours style"
    )
    assert pipe.tokenizer(longest).input_ids[-1] == pipe.tokenizer.eos_token_id  # pair prompts are not truncated
    assert all(len(pipe.tokenizer(word, add_special_tokens=False).input_ids) == 1 for word in STYLE_WORDS)
    layouts = eval_layouts(6, held_out=True)
    result = score(generate(pipe, [layout.caption for layout in layouts], steps=20), layouts)
    assert result.colour >= 0.6 and result.background >= 0.6, result


@needs_model
def test_embedded_model_reads_past_an_inserted_token():
    """Pair training's content prompt puts its token V* before the subject ("a photo of a sbu red circle ..."); like
    SDXL, the base model must still denoise that scene as well as under its plain caption (run 5, trained without
    filler captions, did not: loss 0.28 against 0.10).  An unknown style suffix may disturb it a little more: the
    family-trained model has learned that "in <word> style" asks for a styled image (measured: 1.16x the caption's
    loss, against 1.0x on the model trained without families), but not as much as a wrong scene would."""
    from experiments import style_denoising_probe
    from paircustom.sampling.pipeline import StyleGuidedPipeline

    loss = style_denoising_probe.token_losses(StyleGuidedPipeline.from_pretrained("shapes"), draws=32)
    assert loss["with V* inserted"] < 1.1 * loss["caption"], loss
    assert loss["with a style suffix"] < 1.25 * loss["caption"], loss


def test_identifiability_probe_recovers_a_latent_affine_map():
    """The probe's fit returns the map that made the styled latents, and a zero map leaves latents unchanged."""
    from experiments import style_identifiability

    probe = style_identifiability
    generator = torch.Generator().manual_seed(0)
    plain = torch.randn(3, 8, 16, 16, generator=generator)  # (N, C, h, w)
    D = 0.3 * torch.randn(9, 8, generator=generator)  # (C + 1, C): linear part and offset
    styled = probe.apply_map(D, plain)
    manual = plain + torch.einsum("nchw,cd->ndhw", plain, D[:8]) + D[8][None, :, None, None]
    assert torch.allclose(styled, manual, atol=1e-5), (styled - manual).abs().max()
    fitted = probe.fit_map(plain, styled)
    assert torch.allclose(fitted, D, atol=1e-3), (fitted - D).abs().max()  # the ridge term costs < 1e-3
    assert torch.equal(probe.apply_map(torch.zeros(9, 8), plain), plain)


def test_world_version_reads_the_model_settings(tmp_path):
    assert world_version(tmp_path) == 0
    (tmp_path / "paircustom.json").write_text(json.dumps({"family": "sd"}))
    assert world_version(tmp_path) == 1
    (tmp_path / "paircustom.json").write_text(json.dumps({"family": "sd", "version": 2}))
    assert world_version(tmp_path) == 2


def test_vae_ceilings_score_a_perfect_and_a_useless_round_trip(monkeypatch):
    """1 when the VAE returns f(x) exactly, 0 when it returns x itself."""
    from paircustom.shapes import evaluate

    monkeypatch.setattr(evaluate, "vae_round_trip", lambda vae, images: images)
    perfect = evaluate.vae_ceilings(None, count=8)
    assert all(c == pytest.approx(1.0) for name, (c, e) in perfect.items() if name != "plain")
    assert perfect["plain"][1] == 0.0
    images, _ = render_batch(np.random.default_rng(7), 8)
    monkeypatch.setattr(evaluate, "vae_round_trip", lambda vae, targets: images)
    useless = evaluate.vae_ceilings(None, count=8)
    assert all(c == pytest.approx(0.0, abs=1e-6) for name, (c, e) in useless.items() if name != "plain")
    assert "inverted +0.00" in evaluate.format_ceilings(useless)


@needs_model
def test_known_style_oracle_is_the_base_models_own_style_term(tmp_path):
    """The ceiling script's oracle file has every B = 0 and the known style's suffix, so style guidance with it at
    scale = CFG from the first step is CFG towards the style prompt (Eq. 10: u + g(c - u) + g(e_s - c) =
    u + g(e_s - u)), i.e. the base model prompted with the style words."""
    from safetensors.torch import load_file

    from experiments import known_style_ceiling
    from paircustom.sampling.pipeline import StyleGuidedPipeline
    from paircustom.shapes.styles import KNOWN_STYLES, styled_caption

    ceiling = known_style_ceiling
    style = KNOWN_STYLES["faded"]
    path = ceiling.oracle_style_file("shapes", style, tmp_path)
    weights = load_file(path)
    assert all(t.abs().max() == 0 for k, t in weights.items() if "lora_B" in k), "the oracle's B must be zero"
    guided = StyleGuidedPipeline.from_pretrained("shapes")
    guided.pipe.set_progress_bar_config(disable=True)
    name = guided.load_style(path, name="oracle")
    assert guided.suffixes[name] == " in faded style", guided.suffixes[name]
    caption = "a photo of a red circle on a blue background"
    common = dict(num_inference_steps=4, guidance_scale=5.0, output_type="np", seed=0)
    styled = guided(caption, styles={name: 5.0}, style_start_fraction=0.0, **common).images
    prompted = guided(styled_caption(caption, style), styles={}, **common).images
    assert abs(styled - prompted).max() < 1e-4, (
        f"oracle guidance differs from prompting by {abs(styled - prompted).max()}"
    )


def test_saved_base_model_carries_no_local_paths(tmp_path):
    """A component loaded from a folder (--vae-from) keeps that folder in its config; save() drops it, so the
    shipped model names no path of the machine it was trained on."""
    from paircustom.shapes.train import save
    from paircustom.tiny.unet import build_tiny_pipeline

    pipe = build_tiny_pipeline("sd")
    pipe.vae.save_pretrained(tmp_path / "vae-stage")
    pipe.vae = type(pipe.vae).from_pretrained(tmp_path / "vae-stage")
    assert str(pipe.vae.config._name_or_path) == str(tmp_path / "vae-stage"), "the premise: loading records the folder"
    save(pipe, tmp_path / "pipeline")
    leaked = [p.parent.name for p in (tmp_path / "pipeline").glob("*/config.json") if "_name_or_path" in p.read_text()]
    assert leaked == [], f"configs naming a local folder: {leaked}"
