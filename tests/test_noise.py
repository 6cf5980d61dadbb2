"""Training noises latents with the DDPM forward process of the model's own schedule (objective.py, step by step).

Each family runs with its real sampling scheduler config (tiny.SCHEDULER_CONFIGS): PNDM for SD 1.x, DDIM with
v-prediction for SD 2.x, Euler for SDXL.  The UNet input is captured by a forward hook and compared with

    x_t = sqrt(a_t)·x0 + sqrt(1 - a_t)·eps,   x0 = mean + std·z,   one eps and one t for all rows,

where a_t is computed here from the config's betas, not by diffusers, and x0, eps, t are redrawn from the
same seed in objective.pair_losses' documented order (x0 for all rows, then one eps, then one t).
"""

import copy

import pytest
import torch

from paircustom.models.family import Size
from paircustom.models.forward import training_scheduler
from paircustom.models.registry import family_of
from paircustom.tiny.flow import build_tiny_flow_pipeline
from paircustom.tiny.unet import SCHEDULER_CONFIGS, build_tiny_pipeline
from paircustom.training.objective import EncodedPair, RowKind, pair_losses
from paircustom.training.trainer import PairTrainer
from tests.conftest import RESOLUTION, quick_config, same_state

# scheduler config name -> family of the tiny pipeline that ships it
CASES = {"sd1-pndm": "sd", "sd2-v": "sd", "sdxl-euler": "sdxl"}
SEEDS = (0, 1, 2)  # three draws of t per check
TOLERANCE = 1e-5  # float32 arithmetic on values of order 1


PAIR_ROWS = (RowKind.CONTENT, RowKind.STYLE_OVER_FROZEN_CONTENT)  # the rows of a pair-training step


def alphas_cumprod(name: str) -> torch.Tensor:
    """a_t of the config: SD's scaled-linear betas, computed without diffusers (float64)."""
    config = SCHEDULER_CONFIGS[name]
    assert config["beta_schedule"] == "scaled_linear", "this test knows scaled_linear betas only"
    betas = (
        torch.linspace(
            config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, config["num_train_timesteps"], dtype=torch.float64
        )
        ** 2
    )
    return torch.cumprod(1 - betas, dim=0)


def make_trainer(name, pair, tmp_path, generate_first=False):
    pipe = build_tiny_pipeline(CASES[name], scheduler=name)
    pipe.set_progress_bar_config(disable=True)
    if generate_first:
        generate(pipe)
    return PairTrainer(quick_config(*pair, tmp_path / "s.safetensors"), pipe)


def generate(pipe):
    """A short ordinary diffusers call: it leaves the sampling scheduler mid-state (Euler keeps its step index)."""
    pipe(
        "a photo of a dog",
        num_inference_steps=2,
        height=RESOLUTION,
        width=RESOLUTION,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    )


def redraw(trainer, kinds, seed):
    """x0 (rows, C, h, w), eps (1, C, h, w) and t as pair_losses draws them from ``seed``."""
    rows = [kind.image for kind in kinds]
    mean, std = trainer.pair.latent_mean[rows], trainer.pair.latent_std[rows]
    generator = torch.Generator().manual_seed(seed)
    x0 = mean + std * torch.randn(*mean.shape, generator=generator)
    eps = torch.randn(1, *mean.shape[1:], generator=generator)
    t = torch.randint(0, trainer.noise_scheduler.config.num_train_timesteps, (1,), generator=generator)
    return x0.double(), eps.double(), int(t)


def capture(trainer, kinds, seed):
    """Run pair_losses once; return (UNet sample input, UNet timesteps, UNet prediction, losses)."""
    seen = {}

    def before(module, args, kwargs):
        seen["sample"], seen["timesteps"] = args[0].detach().clone(), args[1].detach().clone()

    def after(module, args, kwargs, output):
        seen["prediction"] = output.sample.detach().clone()

    handles = [
        trainer.denoiser.register_forward_pre_hook(before, with_kwargs=True),
        trainer.denoiser.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        with torch.no_grad():
            losses = pair_losses(
                trainer.denoiser,
                trainer.layers,
                trainer.noise_scheduler,
                trainer.pair,
                kinds,
                torch.Generator().manual_seed(seed),
                trainer.family,
            )
    finally:
        for handle in handles:
            handle.remove()
    return seen["sample"], seen["timesteps"], seen["prediction"], {k: v.item() for k, v in losses.items()}


def check_forward_process(trainer, name, when):
    """UNet input = DDPM x_t and loss = MSE to eps (or v) for the drawn t, for several seeds."""
    a = alphas_cumprod(name)
    kinds = PAIR_ROWS
    for seed in SEEDS:
        sample, timesteps, prediction, losses = capture(trainer, kinds, seed)
        x0, eps, t = redraw(trainer, kinds, seed)
        assert timesteps.tolist() == [t, t], f"{name} {when}, seed {seed}: UNet got t={timesteps.tolist()}, drew {t}"
        expected = a[t].sqrt() * x0 + (1 - a[t]).sqrt() * eps
        error = (sample.double() - expected).abs().max().item()
        assert error < TOLERANCE, (
            f"{name} {when}, seed {seed}, t={t}: UNet input is not sqrt(a_t) x0 + "
            f"sqrt(1-a_t) eps (max error {error:.3g}, input std {sample.std():.3g})"
        )
        v_prediction = SCHEDULER_CONFIGS[name].get("prediction_type", "epsilon") == "v_prediction"
        target = a[t].sqrt() * eps - (1 - a[t]).sqrt() * x0 if v_prediction else eps.expand_as(x0)
        for row, kind in enumerate(kinds):
            wanted = ((prediction[row].double() - target[row]) ** 2).mean().item()
            assert losses[kind] == pytest.approx(wanted, rel=1e-5), (
                f"{name} {when}, seed {seed}, t={t}: {kind.label} loss {losses[kind]:.6g} is not the MSE to the "
                f"{'v' if v_prediction else 'eps'} target ({wanted:.6g})"
            )


@pytest.mark.parametrize("name", CASES)
def test_unet_input_and_target_are_ddpm_forward_process(name, pair, tmp_path):
    trainer = make_trainer(name, pair, tmp_path)
    check_forward_process(trainer, name, "fresh pipeline")
    trainer.close()


@pytest.mark.parametrize("name", CASES)
def test_forward_process_holds_after_generation_calls(name, pair, tmp_path):
    trainer = make_trainer(name, pair, tmp_path, generate_first=True)
    check_forward_process(trainer, name, "after a generation before training")
    trainer.train_step()
    generate(trainer.pipe)  # as a notebook or a preview would, between training steps
    check_forward_process(trainer, name, "after a generation during training")
    trainer.close()


@pytest.mark.parametrize("name", CASES)
def test_training_scheduler_is_the_models_schedule_and_sampling_state_is_untouched(name, pair, tmp_path):
    trainer = make_trainer(name, pair, tmp_path, generate_first=True)
    noise_scheduler = training_scheduler(trainer.pipe)
    assert torch.allclose(noise_scheduler.alphas_cumprod.double(), alphas_cumprod(name), rtol=1e-5), (
        f"{name}: the training scheduler's a_t differ from the config's scaled-linear schedule"
    )
    assert noise_scheduler.config.prediction_type == SCHEDULER_CONFIGS[name].get("prediction_type", "epsilon")
    before = copy.deepcopy(vars(trainer.pipe.scheduler))
    trainer.train_step(), trainer.evaluate(draws=1)
    after = vars(trainer.pipe.scheduler)
    changed = [key for key in before if not same_state(before[key], after[key])]
    assert not changed, f"{name}: training changed the sampling scheduler's {changed}"
    trainer.close()


def test_content_and_style_rows_share_one_eps_and_one_t(pair, tmp_path):
    """With both rows' latents set to the same fixed point (std 0), the two noisy rows must be identical."""
    trainer = make_trainer("sdxl-euler", pair, tmp_path)
    trainer.pair.latent_mean[1] = trainer.pair.latent_mean[0]
    trainer.pair.latent_std.zero_()
    for seed in SEEDS:
        sample, timesteps, _, _ = capture(trainer, PAIR_ROWS, seed)
        assert timesteps[0] == timesteps[1], f"seed {seed}: rows got different timesteps {timesteps.tolist()}"
        difference = (sample[0] - sample[1]).abs().max().item()
        assert difference == 0, f"seed {seed}: rows got different noise (max difference {difference:.3g})"
    trainer.close()


@pytest.mark.parametrize("name", ["sd1-pndm", "sdxl-euler"])
def test_x0_is_drawn_from_the_latent_distribution(name, pair, tmp_path):
    """x0 = mean + std·z: with a wide latent std (1.0) the std term dominates, so ignoring it fails the check."""
    trainer = make_trainer(name, pair, tmp_path)
    trainer.pair.latent_std.fill_(1.0)
    check_forward_process(trainer, name, "latent std 1")
    # and std really moves the input: the same draws with std 0 give a different x_t
    sample_wide = capture(trainer, PAIR_ROWS, 0)[0]
    trainer.pair.latent_std.zero_()
    sample_point = capture(trainer, PAIR_ROWS, 0)[0]
    assert (sample_wide - sample_point).abs().max() > 1e-3, "the latent std does not reach the UNet input"
    trainer.close()


def test_pair_losses_refuses_the_sampling_scheduler(pair, tmp_path):
    trainer = make_trainer("sdxl-euler", pair, tmp_path)
    with pytest.raises(TypeError, match="training scheduler"):
        pair_losses(
            trainer.denoiser,
            trainer.layers,
            trainer.pipe.scheduler,
            trainer.pair,
            (RowKind.CONTENT,),
            torch.Generator().manual_seed(0),
            trainer.family,
        )
    trainer.close()


# family -> tiny pipeline builder; the flow VAE has scaling 1.5 and shift 0.1, the SD ones 0.18215
LATENT_CASES = {
    "sd": lambda: build_tiny_pipeline("sd"),
    "sdxl": lambda: build_tiny_pipeline("sdxl"),
    "flux": lambda: build_tiny_flow_pipeline("flux"),
}


@pytest.mark.parametrize("family", LATENT_CASES)
def test_pair_latents_are_the_vae_posterior_in_the_denoisers_units(family):
    """x0 = mean + std·z is drawn in the denoiser's units: the posterior mean is shifted then scaled, its std is
    scaled by the same factor (an unscaled std would widen x0 ~5x on SD), computed here from the VAE config."""
    pipe = LATENT_CASES[family]()
    pixels = [
        torch.rand(3, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(k)) * 2 - 1 for k in range(2)
    ]
    size = Size((RESOLUTION, RESOLUTION), (0, 0), (RESOLUTION, RESOLUTION))
    encoded = EncodedPair.encode(pipe, family_of(pipe), pixels, ["a photo of a dog"] * 2, [size] * 2, "cpu")
    with torch.no_grad():
        posterior = pipe.vae.encode(torch.stack(pixels)).latent_dist
    scale, shift = pipe.vae.config.scaling_factor, getattr(pipe.vae.config, "shift_factor", None) or 0.0
    assert scale != 1.0, "the check needs a VAE whose scaling factor is not 1"
    for name, got, wanted in (
        ("mean", encoded.latent_mean, (posterior.mean - shift) * scale),
        ("std", encoded.latent_std, posterior.std * scale),
    ):
        error = (got - wanted).abs().max().item()
        assert error < TOLERANCE, f"{family}: latent {name} is not the posterior's in denoiser units ({error:.3g})"
