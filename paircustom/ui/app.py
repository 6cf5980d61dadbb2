"""The Gradio page of ``paircustom ui``: pair in, style trained in the background, styles applied by guidance.

Layout, top to bottom: the pair (upload or an example), subject and style words, Train and its refusals; the
Gradio's progress bar and the live progress line, the latest preview and the trained file; style files to load;
prompt, one slider per loaded style, and base | styled results; the blend view (``blend``: two styles' grid, one
style's strength strip).  Images are shown enlarged with square pixels.  All work goes through ``Studio``; its
``UserError`` sentences appear in the page.
"""

from __future__ import annotations

import time

import gradio as gr

from ..config.generate import GENERATE
from ..errors import UserError
from .blend import blend_view
from .studio import Studio

MAX_STYLES = 6  # sliders on the page; styles loaded beyond these stay at scale 0
SLIDER_RANGE = (-10.0, 10.0)
POLL_SECONDS = 0.5  # how often the training progress bar follows the run
# Images fill their boxes, enlarged with square pixels (the embedded model's are 64x64 in 200 px boxes).
CSS = """
#content img, #style img, #preview img, #base img, #styled img, #compare img {
    image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain;
}
"""


def _error(error: UserError) -> str:
    return f"paircustom: error: {error}"  # one line: UserError folds its message


def _sliders(studio: Studio) -> list:
    """One update per slider: visible and named for each loaded style, hidden otherwise (values kept)."""
    names = list(studio.styles)[:MAX_STYLES]
    return [
        gr.update(visible=True, label=f"{names[i]}: style guidance scale")
        if i < len(names)
        else gr.update(visible=False)
        for i in range(MAX_STYLES)
    ]


def build(studio: Studio) -> gr.Blocks:
    """The page.  One function, over 60 lines: Gradio creates the components and wires their events inside one
    ``gr.Blocks`` context, and the event handlers close over the components; split up, some twenty components
    would be handed between functions."""
    from ..shapes.examples import EXAMPLES, example_paths

    steps_default = studio.defaults["max_steps"]
    with gr.Blocks(title="paircustom") as page:
        gr.Markdown(
            "## paircustom: learn a style from one image pair\nTrain a style LoRA from a content image and "
            f"the same picture in a style, then apply it with style guidance. Model: `{studio.model}`."
        )
        with gr.Row():
            content = gr.Image(type="filepath", label="content image", format="png", height=220, elem_id="content")
            style = gr.Image(type="filepath", label="style image", format="png", height=220, elem_id="style")
            with gr.Column():
                example = gr.Dropdown(list(EXAMPLES), value=None, label="or an example pair", elem_id="example")
                subject = gr.Textbox(
                    label="subject: what the content image shows", placeholder="dog", elem_id="subject"
                )
                words = gr.Textbox(label="style words", placeholder="digital art", elem_id="style-words")
                steps = gr.Number(steps_default, precision=0, minimum=1, label="training steps", elem_id="steps")
                train = gr.Button("Train", variant="primary", elem_id="train")
                train_message = gr.Markdown(elem_id="train-message")  # refusals, beside the button
        with gr.Row():
            with gr.Column():
                bar = gr.Markdown(min_height=50, elem_id="train-progress")  # Gradio's progress bar while training
                status = gr.Markdown(studio.progress.text(), elem_id="status")
                download = gr.File(label="trained style file", interactive=False, elem_id="download")
            preview = gr.Image(
                label="preview: base | styled", format="png", interactive=False, height=160, elem_id="preview"
            )
        gr.Markdown("### Generate with style guidance")
        with gr.Row():
            upload = gr.File(label="load a style file", file_types=[".safetensors"], height=110, elem_id="style-file")
            suffix = gr.Textbox(
                label="style suffix (only for files from other tools)",
                placeholder=" in watercolor style",
                elem_id="suffix",
            )
            load = gr.Button("Load style file", elem_id="load")
        prompt = gr.Textbox(label="prompt", elem_id="prompt")
        sliders = [
            gr.Slider(*SLIDER_RANGE, value=GENERATE.style_scale, step=0.5, visible=False, elem_id=f"scale-{i}")
            for i in range(MAX_STYLES)
        ]
        with gr.Row():
            seed = gr.Number(0, precision=0, label="seed", elem_id="seed")
            sample_steps = gr.Slider(
                5, 100, value=GENERATE.num_inference_steps, step=1, label="denoising steps", elem_id="sample-steps"
            )
            generate = gr.Button("Generate", variant="primary", elem_id="generate")
        message = gr.Markdown(elem_id="message")
        with gr.Row():
            base = gr.Image(label="base", format="png", interactive=False, height=200, elem_id="base")
            styled = gr.Image(label="styled", format="png", interactive=False, height=200, elem_id="styled")
            compare = gr.Image(label="base | styled", format="png", interactive=False, height=200, elem_id="compare")
        blend_view(studio, prompt, seed, sample_steps)
        seen = gr.State((0, None, None))  # (styles with sliders, preview, trained file) the page shows
        timer = gr.Timer(1.0)

        def pick_example(name):
            if not name:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            pair = EXAMPLES[name]
            caption = pair.caption.removeprefix("a photo of a ")
            return (*map(str, example_paths(name)), caption, pair.style_prompt, pair.caption)

        def start(content, style, subject, words, steps):
            try:
                studio.train(content, style, subject, words, int(steps) if steps else None)
            except UserError as error:
                return _error(error), studio.progress.text()
            return "", studio.progress.text()

        def follow(progress=gr.Progress()):  # noqa: B008  (Gradio finds the progress bar by this default)
            """Gradio's progress bar while the run lasts (in its own box: the timer's updates of the status line
            would end a progress display there every second)."""
            while studio.progress.running:
                now = studio.progress
                progress((now.step, now.total or None), desc="training", unit="steps")
                time.sleep(POLL_SECONDS)
            return ""

        def poll(seen):
            """Every second: the progress line, and whatever changed since the last tick."""
            progress = studio.progress
            now = (len(studio.styles), progress.preview, progress.output)
            changed = lambda i, value: value if now[i] != seen[i] and now[i] is not None else gr.skip()  # noqa: E731
            return (
                progress.text(),
                changed(1, str(progress.preview)),
                changed(2, str(progress.output)),
                now,
                *(_sliders(studio) if now[0] != seen[0] else [gr.skip()] * MAX_STYLES),
            )

        def load_file(file, suffix):
            if file is None:
                return (
                    "paircustom: error: choose a .safetensors style file first.",
                    gr.skip(),
                    *[gr.skip()] * MAX_STYLES,
                )
            before = len(studio.notices)
            try:
                name = studio.load(file, suffix)
            except UserError as error:
                return _error(error), gr.skip(), *[gr.skip()] * MAX_STYLES
            return "\n\n".join([f"loaded '{name}'", *studio.notices[before:]]), gr.skip(), *_sliders(studio)

        def draw(prompt, seed, sample_steps, *values):
            scales = dict(zip(list(studio.styles)[:MAX_STYLES], values))
            try:
                images = studio.generate(prompt, scales, seed=int(seed or 0), steps=int(sample_steps))
            except UserError as error:
                return _error(error), gr.skip(), gr.skip(), gr.skip()
            return "", *images

        example.change(pick_example, example, [content, style, subject, words, prompt])
        train.click(start, [content, style, subject, words, steps], [train_message, status]).then(follow, None, bar)
        timer.tick(poll, seen, [status, preview, download, seen, *sliders])
        load.click(load_file, [upload, suffix], [message, seen, *sliders])
        generate.click(draw, [prompt, seed, sample_steps, *sliders], [message, base, styled, compare])
    return page


def launch(studio: Studio, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Serve the page until interrupted."""
    from ..shapes.examples import EXAMPLES_DIR

    page = build(studio)
    try:  # served files: the trained styles and previews, and the example pairs
        page.queue().launch(
            server_name=host,
            css=CSS,
            server_port=port,
            allowed_paths=[str(studio.workdir), str(EXAMPLES_DIR)],
            quiet=True,
            show_error=True,
        )
    except OSError as error:  # the port is taken, or the host is not this machine's
        raise UserError(
            f"cannot serve the web app on {host}:{port or 7860} ({' '.join(str(error).split())[:160]}); "
            "choose another --port."
        ) from None
