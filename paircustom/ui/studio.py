"""What the web app does, without the web: one model, pair training in a background thread, loaded styles.

``Studio`` is driven by the Gradio page (``app.py``) and by tests directly.  Every mistake a user can make
raises ``UserError`` with the same one sentence the command line prints; training errors are kept in
``progress.error`` for the page to show.
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
import traceback
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from ..config.generate import GENERATE
from ..config.model_names import resolve_model
from ..config.train import TrainConfig, model_defaults
from ..errors import UserError, reason
from ..files.images import grid, load_pair

PREVIEWS = 3  # previews per training run (each is two 20-step samples)


@dataclass(frozen=True)
class Progress:
    """A snapshot of the training run, replaced (never changed) by the trainer thread."""

    running: bool = False
    step: int = 0
    total: int = 0
    content_loss: float | None = None
    style_loss: float | None = None  # None during the style warm-up
    preview: Path | None = None  # latest base | styled preview PNG
    output: Path | None = None  # the trained style file, once written
    style_name: str | None = None  # under which it was loaded for generation
    error: str | None = None  # one sentence

    def text(self) -> str:
        """One line for the page: 'step 12/300 · content loss 0.1234 · style loss warm-up'."""
        if self.error:
            return f"paircustom: error: {self.error}"
        if not self.running and not self.output:
            return "not trained yet"
        if self.step == 0:
            return "loading the model and encoding the pair ..."
        losses = f"content loss {self.content_loss:.4f} · style loss " + (
            "warm-up" if self.style_loss is None else f"{self.style_loss:.4f}"
        )
        done = f" · done: loaded as '{self.style_name}'" if self.output else ""
        return f"step {self.step}/{self.total} · {losses}{done}"


class Studio:
    """The app's state: ``train`` starts a background run, ``load`` adds a style file, ``generate`` draws."""

    def __init__(self, model: str = "shapes", workdir: str | Path | None = None, device: str | None = None):
        _, settings = resolve_model(model)  # a missing folder is one sentence, before the page starts
        self.model, self.device = model, device
        self.defaults = model_defaults(settings)  # the training defaults, the page's starting values
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="paircustom-ui-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.progress = Progress()
        self.styles: dict[str, Path] = {}  # loaded style name -> file
        self.notices: list[str] = []  # warnings from loading files, for the page
        self._pipe = None  # (Flow)StyleGuidedPipeline, loaded on first use
        self._lock = threading.Lock()  # one model user at a time (training owns its own copy)
        self._thread: threading.Thread | None = None

    # ---- training ---------------------------------------------------------------------------------------
    def train(self, content, style, subject: str, style_words: str, steps: int | None = None) -> TrainConfig:
        """Check the inputs now (the CLI's sentences), then train in a background thread; returns the config."""
        if self.progress.running:
            raise UserError("a training run is already going; wait for it to finish.")
        if not content or not style:
            raise UserError("give a content image and a style image (upload both or pick an example pair).")
        if not (subject or "").strip() or not (style_words or "").strip():
            raise UserError('give the subject word (e.g. "dog") and the style words (e.g. "digital art").')
        number = len(list(self.workdir.glob("*.safetensors"))) + 1
        output = self.workdir / f"{_slug(style_words)}-{number}.safetensors"
        config = TrainConfig(
            str(content),
            str(style),
            subject=subject.strip(),
            style=style_words.strip(),
            model=self.model,
            output=str(output),
            max_steps=steps,
            device=self.device,
            progress=False,
        )
        resolved = config.resolved()  # numbers checked here, in the caller's thread
        load_pair(config.content_image, config.style_image, resolved.resolution)  # images too
        config = replace(config, preview_every=-(-resolved.max_steps // PREVIEWS))  # ceil
        self.progress = Progress(running=True, total=resolved.max_steps)
        self._thread = threading.Thread(target=self._train, args=(config,), name="paircustom-train", daemon=True)
        self._thread.start()
        return config

    def _train(self, config: TrainConfig) -> None:
        from ..training.trainer import train_pair

        def on_step(trainer):
            _, content_loss, style_loss = trainer.history[-1]
            preview = trainer.preview_path(trainer.step)
            self.progress = replace(
                self.progress,
                step=trainer.step,
                total=trainer.config.max_steps,
                content_loss=content_loss,
                style_loss=style_loss,
                preview=preview if preview.is_file() else self.progress.preview,
            )

        try:
            path = train_pair(config, on_step=on_step)
            name = self.load(path)
            self.progress = replace(self.progress, output=path, style_name=name)
        except UserError as error:
            self.progress = replace(self.progress, error=str(error))
        except Exception as error:  # a bug: keep the traceback for the terminal, one sentence for the page
            traceback.print_exc(file=sys.stderr)
            self.progress = replace(self.progress, error=f"training failed unexpectedly ({reason(error)}).")
        finally:
            self.progress = replace(self.progress, running=False)

    def wait(self, timeout: float | None = None) -> Progress:
        """Block until the running training ends (tests and scripts; the page polls instead)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.progress

    # ---- styles and generation ----------------------------------------------------------------------------
    @property
    def pipe(self):
        if self._pipe is None:
            from ..sampling.pipeline import from_pretrained

            self._pipe = from_pretrained(self.model, device=self.device)  # SD / SDXL, or SD3 / Flux
        return self._pipe

    def load(self, path, suffix: str | None = None) -> str:
        """Load a style file (any layout ``generate`` reads) under a fresh name; returns the name."""
        from ..errors import PairCustomWarning
        from ..files.style_file import read_adapter, require_suffix

        path, suffix = Path(path), suffix if suffix and suffix.strip() else None
        require_suffix(path.name, read_adapter(path)[1], suffix)  # before the model loads
        stem = re.sub(r"[^\w-]", "-", path.stem) or "style"
        name = next(n for n in (stem, *(f"{stem}-{i}" for i in range(2, 1000))) if n not in self.styles)
        with self._lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PairCustomWarning)
            self.pipe.load_style(path, name=name, suffix=suffix)
        self.notices += [f"paircustom: warning: {w.message}" for w in caught if w.category is PairCustomWarning]
        self.styles[name] = path
        return name

    def generate(
        self,
        prompt: str,
        scales: dict[str, float],
        seed: int = 0,
        steps: int = GENERATE.num_inference_steps,
        guidance_scale: float = GENERATE.guidance_scale,
        style_start_fraction: float = GENERATE.style_start_fraction,
    ):
        """(base image, styled image, labelled comparison) for one prompt, same seed."""
        if not (prompt or "").strip():
            raise UserError('give a prompt, e.g. "a photo of a red circle on a blue background".')
        if not self.styles:
            raise UserError("no style is loaded yet; train one or load a style file first.")
        common = dict(num_inference_steps=int(steps), seed=int(seed), guidance_scale=guidance_scale)
        with self._lock:
            base = self.pipe(prompt, styles={}, **common).images[0]
            styled = self.pipe(prompt, styles=scales, style_start_fraction=style_start_fraction, **common).images[0]
        return base, styled, grid([[base, styled]], labels=["base", "styled"])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "style"
