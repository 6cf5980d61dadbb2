"""The web app's blend view (issue 32): two loaded styles, a strength slider for each, a button that draws their
blend grid (Eq. 11 at strengths 0 .. each slider's value on each axis) and one that draws the first style's
strength sweep as a strip.  The drawing goes through ``pipe.sweep`` (``paircustom.sweep``); ``blend_grid`` and
``strength_strip`` work without the page, for tests.
"""

from __future__ import annotations

import gradio as gr

from ..config.generate import GENERATE
from ..errors import UserError
from .studio import Studio

GRID_STEPS = 3  # strengths per axis of the blend grid, 0 included
STRIP_STEPS = 5  # strengths of the strip, 0 included
SLIDER_RANGE = (0.0, 10.0)


def _strengths(top: float, count: int) -> list[float]:
    return [top * i / (count - 1) for i in range(count)]


def _check(studio: Studio, prompt: str, names: list[str | None]) -> None:
    if not (prompt or "").strip():
        raise UserError('give a prompt, e.g. "a photo of a red circle on a blue background".')
    if not studio.styles or not all(names):
        raise UserError("load or train a style first, then choose it above the sliders.")
    if len(set(names)) != len(names):
        raise UserError("choose two different styles to blend (load a second style file first).")


def blend_grid(
    studio: Studio,
    prompt: str,
    style_a: str,
    style_b: str,
    top_a: float,
    top_b: float,
    seed: int = 0,
    steps: int = GENERATE.num_inference_steps,
):
    """The labelled blend grid of ``style_a`` (columns, 0 .. top_a) and ``style_b`` (rows, 0 .. top_b)."""
    _check(studio, prompt, [style_a, style_b])
    styles = {style_a: _strengths(top_a, GRID_STEPS), style_b: _strengths(top_b, GRID_STEPS)}
    with studio._lock:
        return studio.pipe.sweep(prompt, styles, seeds=[int(seed)], num_inference_steps=int(steps)).grid()


def strength_strip(
    studio: Studio, prompt: str, style: str, top: float, seed: int = 0, steps: int = GENERATE.num_inference_steps
):
    """The labelled strength sweep of ``style`` from 0 to ``top``, one row."""
    _check(studio, prompt, [style])
    with studio._lock:
        return studio.pipe.sweep(
            prompt, {style: _strengths(top, STRIP_STEPS)}, seeds=[int(seed)], num_inference_steps=int(steps)
        ).grid()


def blend_view(studio: Studio, prompt, seed, sample_steps) -> None:
    """Add the view to the page being built; ``prompt``, ``seed`` and ``sample_steps`` are the page's fields."""
    gr.Markdown("### Blend two styles (Multi-Slider)")
    with gr.Row():
        style_a = gr.Dropdown([], label="style A (columns)", elem_id="blend-a")
        style_b = gr.Dropdown([], label="style B (rows)", elem_id="blend-b")
        top_a = gr.Slider(
            *SLIDER_RANGE, value=GENERATE.style_scale, step=0.5, label="strength of A: 0 to", elem_id="blend-scale-a"
        )
        top_b = gr.Slider(
            *SLIDER_RANGE, value=GENERATE.style_scale, step=0.5, label="strength of B: 0 to", elem_id="blend-scale-b"
        )
    with gr.Row():
        blend = gr.Button("Draw blend grid", variant="primary", elem_id="blend")
        strip = gr.Button("Draw strength strip of A", elem_id="strip")
    message = gr.Markdown(elem_id="blend-message")
    grid = gr.Image(label="blend grid", format="png", interactive=False, elem_id="blend-grid")
    strip_image = gr.Image(label="strength strip", format="png", interactive=False, elem_id="strip-image")
    seen = gr.State(0)
    timer = gr.Timer(1.0)

    def choices(seen):
        """Every second: the loaded styles as choices once their number changed (A the first, B the second)."""
        names = list(studio.styles)
        if len(names) == seen:
            return gr.skip(), gr.skip(), seen
        return (
            gr.update(choices=names, value=names[0] if names else None),
            gr.update(choices=names, value=names[1] if len(names) > 1 else None),
            len(names),
        )

    def draw(kind, prompt, a, b, top_a, top_b, seed, steps):
        try:
            if kind == "grid":
                return "", blend_grid(studio, prompt, a, b, top_a, top_b, seed or 0, steps), gr.skip()
            return "", gr.skip(), strength_strip(studio, prompt, a, top_a, seed or 0, steps)
        except UserError as error:
            return f"paircustom: error: {error}", gr.skip(), gr.skip()

    inputs = [prompt, style_a, style_b, top_a, top_b, seed, sample_steps]
    timer.tick(choices, seen, [style_a, style_b, seen])
    blend.click(lambda *values: draw("grid", *values), inputs, [message, grid, strip_image])
    strip.click(lambda *values: draw("strip", *values), inputs, [message, grid, strip_image])
