"""SD3 and Flux (rectified-flow transformers) on tiny pipelines built in code: objective, fused step, style files."""

from __future__ import annotations

import pytest
import torch

from paircustom.adapters.layers import Route, add_pair_lora, set_route
from paircustom.files.style_file import StyleMetadata, lora_state_dict, save_adapter
from paircustom.models.flow import pack, unpack
from paircustom.models.forward import FlowMatching
from paircustom.models.registry import FAMILIES, family_of
from paircustom.tiny.flow import build_tiny_flow_pipeline
from paircustom.training.objective import EncodedPair, RowKind, pair_losses

FAMILY_NAMES = ("sd3", "flux")
PROMPTS = ["a photo of a sbu dog", "a photo of a sbu dog in digital art style"]


@pytest.fixture(params=FAMILY_NAMES)
def pipe(request):
    pipe = build_tiny_flow_pipeline(request.param)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def with_random_adapters(pipe, seed=0):
    """The transformer with pair adapters whose B's are random (so every route changes the output)."""
    family = family_of(pipe)
    layers = add_pair_lora(family.denoiser(pipe).requires_grad_(False), 4, 4, 4.0, 4.0, seed, family.lora_targets)
    generator = torch.Generator().manual_seed(seed)
    for layer in layers.values():
        for B in (layer.content_B, layer.style_B):
            B.data = torch.randn(B.shape, generator=generator) * 0.1
    return family, layers


def encoded_pair(pipe, family):
    generator = torch.Generator().manual_seed(1)
    mean = torch.randn(2, 4, 8, 8, generator=generator)
    with torch.no_grad():
        cond, _ = family.encode(pipe, PROMPTS, "cpu")
    return EncodedPair(mean, torch.full_like(mean, 0.1), cond)


def test_families_are_recognised_and_target_the_joint_projections(pipe):
    family = family_of(pipe)
    assert family is FAMILIES[type(pipe).__name__ == "FluxPipeline" and "flux" or "sd3"]
    names = [
        n
        for n, m in family.denoiser(pipe).named_modules()
        if isinstance(m, torch.nn.Linear) and any(n.endswith("." + t) for t in family.lora_targets)
    ]
    for target in family.lora_targets:
        assert any(n.endswith("." + target) for n in names), f"no {target} layer found in {family.name}"


def test_pack_unpack_round_trip():
    latents = torch.randn(2, 4, 6, 8)
    tokens = pack(latents)
    assert tokens.shape == (2, 12, 16)
    assert torch.equal(unpack(tokens, 6, 8), latents), "unpack(pack(x)) must give x back exactly"
    assert torch.equal(tokens[0, 0], latents[0, :, :2, :2].reshape(-1)), "a token is one 2x2 patch, channel-major"


@pytest.mark.parametrize("config", [dict(shift=3.0), dict(shift=3.0, use_dynamic_shifting=True)])
def test_flow_matching_noisy_input_and_target_follow_the_formulas(config):
    objective = FlowMatching(config)
    x0, noise = torch.randn(2, 4, 8, 8), torch.randn(1, 4, 8, 8).expand(2, 4, 8, 8)
    noisy, timesteps, target = objective.noisy_and_target(x0, noise, torch.Generator().manual_seed(3))
    sigma, timestep = objective.draw_sigma(torch.Generator().manual_seed(3))  # the same draw again
    assert 0 < sigma.item() <= 1 and timesteps.tolist() == [timestep.item()] * 2, "one sigma/timestep for all rows"
    assert abs(timestep.item() - 1000 * sigma.item()) < 1e-3, (
        f"t {timestep.item()} should be 1000 x sigma {sigma.item()}"
    )
    s = sigma.item()
    assert torch.allclose(noisy, (1 - s) * x0 + s * noise, atol=1e-6), "x_t must be (1 - s) x0 + s eps"
    assert torch.allclose(target, noise - x0, atol=1e-6), "the target must be eps - x0"
    sigmas = torch.stack([objective.draw_sigma(torch.Generator().manual_seed(i))[0] for i in range(400)]).flatten()
    if config.get("use_dynamic_shifting"):  # logit-normal on the unshifted table: median 0.5
        assert abs(sigmas.median().item() - 0.5) < 0.05, f"median sigma {sigmas.median().item()}"
    else:  # shift 3 moves the median to 3·0.5 / (1 + 2·0.5) = 0.75
        assert abs(sigmas.median().item() - 0.75) < 0.05, f"median sigma {sigmas.median().item()} (shift 3)"


def test_fused_step_gives_the_gradients_of_separate_content_and_style_passes(pipe):
    family, layers = with_random_adapters(pipe)
    model, pair = family.denoiser(pipe), encoded_pair(pipe, family)
    objective = family.training_objective(pipe)
    params = [p for l in layers.values() for p in (l.content_B, l.style_B)]

    kinds = (RowKind.CONTENT, RowKind.STYLE_OVER_FROZEN_CONTENT)
    losses = pair_losses(model, layers, objective, pair, kinds, torch.Generator().manual_seed(5), family)
    sum(losses.values()).backward()
    fused = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None

    # The same draws by hand (x0 for both rows, one eps, one sigma), then one pass per row.
    generator = torch.Generator().manual_seed(5)
    x0 = pair.latent_mean + pair.latent_std * torch.randn(2, 4, 8, 8, generator=generator)
    noise = torch.randn(1, 4, 8, 8, generator=generator).expand_as(x0)
    noisy, timesteps, target = objective.noisy_and_target(x0, noise, generator)
    separate = []
    for row, kind in enumerate(kinds):
        set_route(layers, [kind.route], "cpu")
        prediction = family.predict(model, noisy[row : row + 1], timesteps[row : row + 1], pair.cond.select([row]))
        loss = ((prediction - target[row : row + 1]) ** 2).mean()
        assert abs(loss.item() - losses[kind].item()) < 1e-5, f"row {row} loss differs"
        loss.backward()
    set_route(layers, None, "cpu")
    separate = [p.grad for p in params]
    assert all(g is not None for g in separate)
    worst = max((a - b).abs().max().item() for a, b in zip(fused, separate))
    assert worst <= 1e-5, f"fused and separate gradients differ by up to {worst:.3g}"
    assert max(g.abs().max().item() for g in fused) > 1e-4, "gradients are all ~0: the test would prove nothing"
    remove(pipe, family, layers)


def test_flow_forward_process_draws_one_sigma_per_pair(pipe):
    """Two pairs of two rows: x_t = (1 - s) x0 + s eps and target eps - x0, with each pair's own sigma and
    timestep (drawn in pair order from the generator) shared by its rows."""
    objective = family_of(pipe).training_objective(pipe)
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 4, 8, 8, generator=generator), torch.randn(4, 4, 8, 8, generator=generator)
    pair_of = [0, 0, 1, 1]
    noisy, timesteps, target = objective.noisy_and_target(x0, noise, torch.Generator().manual_seed(3), pair_of)
    sigma, timestep = objective.draw_sigma(torch.Generator().manual_seed(3), 2)  # (2,) each
    assert sigma[0] != sigma[1], "the check needs two different draws"
    assert torch.equal(timesteps, timestep[pair_of]), f"timesteps {timesteps.tolist()}, drawn {timestep.tolist()}"
    s = sigma[pair_of].view(-1, 1, 1, 1)
    assert torch.allclose(noisy, (1 - s) * x0 + s * noise, atol=1e-6), "x_t is not (1 - sigma) x0 + sigma eps"
    assert torch.allclose(target, noise - x0, atol=1e-6), "the flow target is not eps - x0"


@pytest.mark.parametrize(
    "weighting, logit_mean, logit_std",
    [("logit_normal", 0.0, 1.0), ("logit_normal", 1.5, 0.5), ("none", 0.0, 1.0), ("logit_normal", 40.0, 1.0)],
)
def test_flow_sigma_is_the_table_entry_at_u(pipe, weighting, logit_mean, logit_std):
    """u ~ sigmoid(N(mean, std)) (or U(0, 1)), sigma = the scheduler's table at floor(u N): recomputed here.
    Mean 40 gives u = 1 in float32, whose floor(u N) = N is clamped to the last entry."""
    objective = FlowMatching(pipe.scheduler.config, weighting, logit_mean, logit_std)
    sigma, timestep = objective.draw_sigma(torch.Generator().manual_seed(4), 64)
    generator = torch.Generator().manual_seed(4)
    u = (
        torch.rand(64, generator=generator)
        if weighting == "none"
        else torch.sigmoid(torch.randn(64, generator=generator) * logit_std + logit_mean)
    )
    index = (u * len(objective.sigmas)).long().clamp(max=len(objective.sigmas) - 1)
    assert torch.equal(sigma, objective.sigmas[index]) and torch.equal(timestep, objective.timesteps[index]), (
        f"{weighting} ({logit_mean}, {logit_std}): sigma is not the table entry at u"
    )


def remove(pipe, family, layers):
    from paircustom.adapters.layers import remove_pair_lora

    remove_pair_lora(family.denoiser(pipe), layers)


def test_style_file_loads_in_plain_diffusers_with_identical_transformer_outputs(pipe, tmp_path):
    family, layers = with_random_adapters(pipe, seed=2)
    scale = 4.0 / 4
    tensors = lora_state_dict(
        {n: l.style_A for n, l in layers.items()},
        {n: l.style_B for n, l in layers.items()},
        scale,
        prefix=family.lora_prefix,
    )
    metadata = StyleMetadata(
        base_model="tiny",
        family=family.name,
        adapter="style",
        content_rank=4,
        style_rank=4,
        alpha=4.0,
        target_modules=list(family.lora_targets),
        basis_seed=2,
        subject="dog",
        style="digital art",
        style_suffix=" in digital art style",
        content_prompt=PROMPTS[0],
        style_prompt=PROMPTS[1],
    )
    path = save_adapter(tmp_path / "style.safetensors", tensors, metadata, overwrite=False)
    model, pair = family.denoiser(pipe), encoded_pair(pipe, family)
    noisy, timesteps = pair.latent_mean[:1], torch.tensor([500.0])
    with torch.no_grad():
        set_route(layers, [Route.STYLE_ALONE], "cpu")
        ours = family.predict(model, noisy, timesteps, pair.cond.select([1]))
        set_route(layers, None, "cpu")
        base = family.predict(model, noisy, timesteps, pair.cond.select([1]))
    remove(pipe, family, layers)

    fresh = build_tiny_flow_pipeline(family.name)
    fresh.load_lora_weights(str(path), adapter_name="style")
    with torch.no_grad():
        theirs = family.predict(family.denoiser(fresh), noisy, timesteps, pair.cond.select([1]))
    assert (ours - base).abs().max() > 1e-3, "the style changes nothing: the comparison would prove nothing"
    worst = (ours - theirs).abs().max().item()
    assert worst <= 1e-5, f"diffusers' load_lora_weights gives outputs {worst:.3g} away from ours"


def trained_style_file(pipe, tmp_path, seed=2):
    """A style file of random adapters for ``pipe`` (whose transformer is left as it was)."""
    family, layers = with_random_adapters(pipe, seed)
    tensors = lora_state_dict(
        {n: l.style_A for n, l in layers.items()},
        {n: l.style_B for n, l in layers.items()},
        1.0,
        prefix=family.lora_prefix,
    )
    remove(pipe, family, layers)
    metadata = StyleMetadata(
        base_model="tiny",
        family=family.name,
        adapter="style",
        content_rank=4,
        style_rank=4,
        alpha=4.0,
        target_modules=list(family.lora_targets),
        basis_seed=seed,
        subject="dog",
        style="digital art",
        style_suffix=" in digital art style",
        content_prompt=PROMPTS[0],
        style_prompt=PROMPTS[1],
    )
    return save_adapter(tmp_path / f"style{seed}.safetensors", tensors, metadata, overwrite=False)


def test_flow_decode_latents_undo_the_training_units(pipe):
    """Denoiser latents back to the VAE's: z / s + shift, computed here (tiny VAEs: s and shift not 1 and 0), the
    inverse of the training units (E(x) - shift) s."""
    family, config = family_of(pipe), pipe.vae.config
    assert config.scaling_factor != 1 and config.shift_factor, "the check needs a scale and a shift"
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    decoded = family.decode_latents(pipe.vae, z)
    assert torch.allclose(decoded, z / config.scaling_factor + config.shift_factor, atol=1e-6), "not z / s + shift"
    assert torch.allclose(family.vae_latents(pipe.vae, decoded, torch.ones(1))[0], z, atol=1e-5), "not inverses"


def test_flow_default_size_and_size_check_follow_the_pipeline(pipe):
    """No height and width: the wrapped pipeline's default size; a side that is a multiple of the VAE's factor
    but not of factor x patch (2x2 latents per token) is refused in one sentence."""
    from paircustom.errors import UserError
    from paircustom.sampling.pipeline import FlowStyleGuidedPipeline

    guided, family = FlowStyleGuidedPipeline(pipe), family_of(pipe)
    expected = pipe("a photo of a dog", num_inference_steps=1, output_type="np", max_sequence_length=32).images
    got = guided("a photo of a dog", styles={}, num_inference_steps=1, output_type="np").images
    assert got.shape == expected.shape, f"{family.name}: default image {got.shape}, diffusers draws {expected.shape}"
    factor = pipe.vae_scale_factor * family.patch
    assert family.patch == 2, "the check needs 2x2 patches"
    with pytest.raises(UserError, match=f"multiples of {factor}; got height {factor * 2 + factor // 2}"):
        guided("a photo of a dog", styles={}, num_inference_steps=1, height=factor * 2 + factor // 2, width=factor * 2)


@pytest.mark.parametrize("true_cfg", [False, True])
def test_style_guidance_at_scale_0_is_the_plain_pipeline(pipe, tmp_path, true_cfg):
    from paircustom.sampling.pipeline import FlowStyleGuidedPipeline

    family = family_of(pipe)
    plain_kwargs = dict(num_inference_steps=3, height=32, width=32, output_type="latent")
    if family.name == "flux":
        plain_kwargs.update(guidance_scale=3.5, max_sequence_length=32)
        ours_kwargs = dict(guidance_scale=3.5)
        if true_cfg:
            plain_kwargs.update(true_cfg_scale=4.0, negative_prompt="blurry")
            ours_kwargs.update(true_cfg_scale=4.0, negative_prompt="blurry")
    else:
        plain_kwargs.update(guidance_scale=5.0 if true_cfg else 1.0, max_sequence_length=32)
        ours_kwargs = dict(guidance_scale=plain_kwargs["guidance_scale"])
        if true_cfg:
            plain_kwargs.update(negative_prompt="blurry")
            ours_kwargs.update(negative_prompt="blurry")
    latents = pipe(
        "a photo of a dog",
        num_inference_steps=1,
        height=32,
        width=32,
        output_type="latent",
        max_sequence_length=32,
        generator=torch.Generator().manual_seed(0),
    ).images * 0 + torch.randn(
        1,
        *pipe(
            "a", num_inference_steps=1, height=32, width=32, output_type="latent", max_sequence_length=32
        ).images.shape[1:],
        generator=torch.Generator().manual_seed(7),
    )
    expected = pipe("a photo of a dog", latents=latents.clone(), **plain_kwargs).images
    guided = FlowStyleGuidedPipeline(pipe)
    guided.load_style(trained_style_file(pipe, tmp_path), name="art")
    ours = guided(
        "a photo of a dog",
        styles={"art": 0.0},
        latents=latents.clone(),
        num_inference_steps=3,
        height=32,
        width=32,
        output_type="latent",
        **ours_kwargs,
    ).images
    assert ours.shape == expected.shape, f"latent layouts differ: {tuple(ours.shape)} vs {tuple(expected.shape)}"
    worst = (ours - expected).abs().max().item()
    assert worst <= 1e-4, f"style scale 0 is {worst:.3g} away from the plain {type(pipe).__name__}"
    styled = guided(
        "a photo of a dog",
        styles={"art": 3.0},
        style_start_fraction=0.0,
        latents=latents.clone(),
        num_inference_steps=3,
        height=32,
        width=32,
        output_type="latent",
        **ours_kwargs,
    ).images
    assert (styled - expected).abs().max() > 1e-3, "style scale 3 changes nothing"
    again = pipe("a photo of a dog", latents=latents.clone(), **plain_kwargs).images
    assert torch.equal(again, expected), "the wrapped pipeline, called directly, must stay the base model"


def test_style_reuse_reaches_the_flow_schedule(pipe, tmp_path):
    from paircustom.sampling.pipeline import FlowStyleGuidedPipeline

    guided = FlowStyleGuidedPipeline(pipe)
    guided.load_style(trained_style_file(pipe, tmp_path), name="art")

    def run(**options):  # 5 steps, deltas computed on steps 0, 2 and 4: step 1 holds, step 3 is forecast
        return guided(
            "a photo of a dog",
            styles={"art": 3.0},
            style_start_fraction=0.0,
            style_interval=2,
            num_inference_steps=5,
            height=32,
            width=32,
            output_type="latent",
            seed=0,
            **options,
        ).images

    default, forecast, hold = run(), run(style_reuse="forecast"), run(style_reuse="hold")
    assert torch.equal(default, forecast), "the default reuse is not 'forecast'"
    assert (forecast - hold).abs().max() > 1e-6, "style_reuse did not reach the flow pipeline's schedule"


def _rows_per_step(guided, **call) -> list[int]:
    """The transformer's batch size at each step of one 32x32 call with ``call``'s options."""
    sizes = []
    hook = guided.denoiser.register_forward_pre_hook(
        lambda module, args, kwargs: sizes.append(len((args or [kwargs["hidden_states"]])[0])), with_kwargs=True
    )
    try:
        guided("a photo of a dog", height=32, width=32, output_type="latent", seed=0, **call)
    finally:
        hook.remove()
    return sizes


@pytest.mark.parametrize(
    "start, end, styled", [(0.4, 0.8, [0, 0, 1, 1, 0]), (0.0, None, [1, 1, 1, 1, 1]), (0.2, 0.6, [0, 1, 1, 0, 0])]
)
def test_flow_style_rows_run_from_style_start_to_style_end(pipe, tmp_path, start, end, styled):
    """Of 5 steps, those in [round(5 start), round(5 end)) call the transformer with the style block as well as
    the plain blocks (SD3: ∅ and c for its CFG; Flux: c alone), counted by a hook on its batch size."""
    from paircustom.sampling.pipeline import FlowStyleGuidedPipeline

    guided = FlowStyleGuidedPipeline(pipe)
    guided.load_style(trained_style_file(pipe, tmp_path), name="art")
    sizes = _rows_per_step(
        guided, styles={"art": 3.0}, style_start_fraction=start, style_end=end, num_inference_steps=5
    )
    plain = 2 if family_of(pipe).name == "sd3" else 1
    assert sizes == [plain + s for s in styled], f"start {start}, end {end}: blocks per step {sizes}"


@pytest.mark.parametrize("scale, rows", [(1.0, 1), (1.5, 2)])
def test_flow_unconditional_row_only_above_cfg_1(pipe, scale, rows):
    """As the diffusers pipelines decide: SD3 adds the ∅ row for guidance_scale > 1, Flux for true_cfg_scale > 1
    with a negative prompt; at exactly 1 each step is one row (the conditional one)."""
    from paircustom.sampling.pipeline import FlowStyleGuidedPipeline

    options = (
        dict(guidance_scale=scale)
        if family_of(pipe).name == "sd3"
        else dict(true_cfg_scale=scale, negative_prompt="blurry")
    )
    sizes = _rows_per_step(FlowStyleGuidedPipeline(pipe), styles={}, num_inference_steps=2, **options)
    assert sizes == [rows, rows], f"{family_of(pipe).name} at {scale}: rows per step {sizes}"


def test_command_line_refuses_a_damaged_flux_folder_in_one_sentence_before_loading(tmp_path, capsys):
    from paircustom.cli.main import main

    folder = tmp_path / "flux"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "FluxPipeline", "transformer": ["diffusers", "x"]}')
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (64, 64)).save(image)
    argv = [
        "train",
        str(image),
        str(image),
        "--subject",
        "dog",
        "--style",
        "art",
        "--model",
        str(folder),
        "-o",
        str(tmp_path / "out.safetensors"),
        "--device",
        "cpu",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1, f"exit {exit_info.value.code}, stderr {err}"
    assert err[0].startswith("paircustom: error: ") and "lacks transformer/" in err[0], err[0]
    assert not list(tmp_path.glob("out*")), "nothing may be written"
