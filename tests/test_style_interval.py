"""Cheaper style guidance (issue 14): style deltas reused for ``style_interval`` steps, ``style_end``, and the
adaptive rule; checked against Eq. 10 written out, and by counting the rows the UNet is called with."""

import copy

import pytest
import torch

from paircustom.adapters.layers import peft_routing
from paircustom.bench.reference import per_term
from paircustom.errors import UserError
from paircustom.sampling.guide import StyleSchedule
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.tiny.unet import build_tiny_pipeline

PROMPT = "a photo of a cat"
SIZE = dict(height=32, width=32)
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def guided(style_files):
    pipe = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    pipe.pipe.set_progress_bar_config(disable=True)
    for name in ("art", "ink"):
        pipe.load_style(style_files["sd"], name=name)
    return pipe


def _latents(seed=0):
    return torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(seed))


def _reference(
    guided,
    latents,
    steps,
    scale=3.0,
    guidance_scale=5.0,
    style_start_fraction=0.2,
    style_end=1.0,
    interval=1,
    forecast=False,
):
    """Eq. 10 written out for one SD prompt and style "art": per step ONE UNet call of the rows
    [e0(∅), e0(c)] plus, on a recompute step, e_s(c_s); the delta e_s(c_s) − e0(c) of the last recompute step
    is used on every step in [style_start_fraction, style_end), or with ``forecast`` the line through the last
    two recompute steps' deltas, continued to this step.  With interval 1 this is the path before issue 14."""
    pipe = guided.pipe
    scheduler = copy.deepcopy(pipe.scheduler)
    scheduler.set_timesteps(steps)
    cond, uncond = pipe.encode_prompt([PROMPT], "cpu", 1, True)
    styled = pipe.encode_prompt([PROMPT + guided.suffixes["art"]], "cpu", 1, False)[0]
    hidden = torch.cat([uncond, cond, styled])
    first, stop = round(style_start_fraction * steps), round(style_end * steps)
    x, computed = latents * scheduler.init_noise_sigma, []  # computed: (step, delta) of the recompute steps
    pipe.unet.enable_lora()
    try:
        for i, t in enumerate(scheduler.timesteps):
            style_step = first <= i < stop
            fresh = style_step and (i - first) % interval == 0
            rows = 3 if fresh else 2
            with peft_routing(pipe.unet, [None, None, "art"][:rows]):
                e = pipe.unet(scheduler.scale_model_input(x, t).repeat(rows, 1, 1, 1), t, hidden[:rows]).sample
            e_uncond, e_cond, *e_style = e.chunk(rows)
            eps = e_uncond + guidance_scale * (e_cond - e_uncond)
            if fresh:
                computed.append((i, e_style[0] - e_cond))
            if style_step:
                at, delta = computed[-1]
                if forecast and not fresh and len(computed) > 1:
                    before, earlier = computed[-2]
                    delta = delta + (i - at) / (at - before) * (delta - earlier)
                eps = eps + scale * delta
            x = scheduler.step(eps, t, x, eta=0.0).prev_sample
    finally:
        pipe.unet.disable_lora()
    return x


def _sample(guided, steps, styles=None, **options):
    return guided(
        PROMPT,
        styles={"art": 3.0} if styles is None else styles,
        num_inference_steps=steps,
        latents=_latents(),
        output_type="latent",
        **SIZE,
        **options,
    ).images


def test_interval_one_is_bitwise_the_full_path(guided):
    expected = _reference(guided, _latents(), steps=6)
    for options in (
        {},
        {"style_interval": 1},
        {"style_interval": 1, "style_end": 1.0},
        {"style_interval": 1, "style_reuse": "forecast"},
    ):
        got = _sample(guided, 6, **options)
        assert torch.equal(got, expected), f"{options}: max difference {(got - expected).abs().max()}"


@pytest.mark.parametrize("interval, style_end", [(2, 1.0), (3, 1.0), (100, 1.0), (1, 0.6), (2, 0.7)])
def test_reuse_steps_apply_the_delta_of_the_last_recompute_step(guided, interval, style_end):
    got = _sample(guided, 10, style_interval=interval, style_end=style_end, style_reuse="hold")
    expected = _reference(guided, _latents(), steps=10, interval=interval, style_end=style_end)
    assert (got - expected).abs().max() < TOLERANCE, f"max difference {(got - expected).abs().max()}"
    full = _reference(guided, _latents(), steps=10)
    assert (got - full).abs().max() > 1e-4, "reusing the delta changed nothing: the test would not see a bug"


@pytest.mark.parametrize("interval, style_end", [(2, 1.0), (3, 1.0), (3, 0.8)])
def test_forecast_steps_continue_the_line_through_the_last_two_deltas(guided, interval, style_end):
    got = _sample(guided, 12, style_interval=interval, style_end=style_end)  # forecast: the default
    expected = _reference(guided, _latents(), steps=12, interval=interval, style_end=style_end, forecast=True)
    assert (got - expected).abs().max() < TOLERANCE, f"max difference {(got - expected).abs().max()}"
    held = _reference(guided, _latents(), steps=12, interval=interval, style_end=style_end)
    assert (got - held).abs().max() > 1e-4, "the forecast equals holding the delta: the test would not see a bug"


def _rows_per_step(guided, steps, **call):
    """The batch size of every UNet forward, grouped by denoising step (a wrapper around the forward)."""
    calls, per_step = [], []
    hook = guided.pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))

    def end_of_step(pipe, i, t, tensors):
        per_step.append(tuple(calls))
        calls.clear()

    try:
        guided(
            num_inference_steps=steps,
            output_type="latent",
            seed=0,
            callback_on_step_end=end_of_step,
            **SIZE,
            **call,
        )
    finally:
        hook.remove()
    return per_step


def test_reuse_steps_call_the_denoiser_with_the_cfg_rows_only(guided):
    # 2 prompts, 2 styles: CFG rows 2 x 2, a recompute step adds 2 x 2 style rows; styles from step 2, every 3rd
    per_step = _rows_per_step(
        guided,
        10,
        prompt=[PROMPT, "a dog"],
        styles={"art": 3.0, "ink": -1.0},
        style_start_fraction=0.2,
        style_interval=3,
    )
    assert per_step == [(4,), (4,), (8,), (4,), (4,), (8,), (4,), (4,), (8,), (4,)], per_step
    # one call per term: the CFG pair together, then each style alone; reuse steps make the CFG call only
    per_step = _rows_per_step(
        per_term(guided),
        6,
        prompt=PROMPT,
        styles={"art": 3.0, "ink": -1.0},
        style_start_fraction=0.0,
        style_interval=2,
    )
    assert per_step == [(2, 1, 1), (2,), (2, 1, 1), (2,), (2, 1, 1), (2,)], per_step


def test_style_end_stops_the_style_rows_after_its_step(guided):
    # 10 steps: style from round(0.2 * 10) = 2 up to, not including, round(0.7 * 10) = 7
    per_step = _rows_per_step(guided, 10, prompt=PROMPT, styles={"art": 3.0}, style_start_fraction=0.2, style_end=0.7)
    assert [rows for (rows,) in per_step] == [2, 2, 3, 3, 3, 3, 3, 2, 2, 2], per_step
    per_step = _rows_per_step(guided, 10, prompt=PROMPT, styles={"art": 3.0}, style_start_fraction=0.0, style_end=0.25)
    assert [rows for (rows,) in per_step] == [3, 3] + [2] * 8, per_step  # round(2.5) = 2 (Python rounds to even)


def test_adaptive_rule_recomputes_when_the_base_prediction_has_moved(guided):
    call = dict(prompt=PROMPT, styles={"art": 3.0}, style_start_fraction=0.2)
    never = _rows_per_step(guided, 10, style_interval=4, style_tolerance=100.0, **call)
    assert [rows for (rows,) in never] == [2, 2, 3, 2, 2, 2, 3, 2, 2, 2], "a huge tolerance must leave the interval"
    # tolerance 0: any movement of e0(c) on a reuse step makes the NEXT step a recompute step (one-step lag)
    always = _rows_per_step(guided, 10, style_interval=100, style_tolerance=0.0, **call)
    assert [rows for (rows,) in always] == [2, 2, 3, 2, 3, 2, 3, 2, 3, 2], always
    # in between: some steps recompute early, never more often than tolerance 0
    drift = _rows_per_step(guided, 10, style_interval=100, style_tolerance=0.05, **call)
    assert 1 <= sum(rows == 3 for (rows,) in drift) <= 4, drift


@pytest.mark.parametrize(
    "e_cond, stale",
    [
        (2.8, False),  # r = |2.8 - 2| / |2| = 0.4 <= 0.5
        (3.2, True),  # r = 0.6
        (1.4, False),  # r = 0.3
        (0.8, True),  # r = 0.6, moved down
        (3.0, False),  # r = 0.5 exactly: stale only once r exceeds the tolerance
    ],
)
def test_adaptive_rule_measures_the_relative_l1_change_of_e_cond(e_cond, stale):
    """r = |e0(c) - e0_ref(c)|_1 / |e0_ref(c)|_1 against the tolerance (0.5), reference e0_ref(c) = 2 everywhere."""
    schedule = StyleSchedule(first=0, stop=10, interval=100, tolerance=0.5, reuse="hold")
    reference = torch.full((1, 4, 2, 2), 2.0)
    schedule.update(0, reference, [reference + 1])
    schedule.update(1, torch.full_like(reference, e_cond), [])
    assert schedule.fresh(2) is stale, f"e0(c) = {e_cond} against 2 with tolerance 0.5: stale should be {stale}"


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(style_interval=0), "style_interval must lie between 1"),
        (dict(style_interval=1.5), "style_interval must be a whole number"),
        (dict(style_end=0.2), "style_end (0.2) must come after style_start_fraction (0.2)"),
        (dict(style_end=1.5), "style_end must lie between 0 and 1"),
        (dict(style_tolerance=float("nan")), "style_tolerance must be a finite"),
        (dict(style_tolerance=-1.0), "style_tolerance must lie between 0"),
        (dict(style_reuse="linear"), "style_reuse must be 'forecast' or 'hold'"),
    ],
)
def test_bad_schedule_values_are_one_sentence(guided, options, message):
    with pytest.raises(UserError) as error:
        _sample(guided, 2, **options)
    assert message in str(error.value), str(error.value)
