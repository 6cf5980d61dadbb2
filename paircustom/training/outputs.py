"""What a training run writes: the style (and content) files with their metadata, resumable checkpoints and
base-vs-styled previews.  ``TrainerOutputs`` is the half of ``training.PairTrainer`` that does it; it reads the
trainer's state (``config``, ``layers``, ``step``, ``history``, ``optimizer``, ``generator``, ``accelerator``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch

from ..adapters.layers import Route, pair_routing
from ..config.train import file_name
from ..errors import reason
from ..files.images import atomic_write, grid
from ..files.safe_outputs import write_set
from ..files.style_file import StyleMetadata, adapter_writer, lora_state_dict
from ..files.style_word import with_token
from ..models.registry import DTYPES
from ..sampling.pipeline import style_guided
from .checkpoint import Checkpoint, load_checkpoint, result_settings, save_checkpoint, unusable_checkpoint


class TrainerOutputs:
    """Saving, checkpointing and previewing of a ``PairTrainer``."""

    def preview_path(self, step: int) -> Path:
        output = Path(self.config.output)
        return output.with_name(f"{output.stem}-preview-{step:05d}.png")

    def preview(self, steps: int = 20) -> Path:
        """Write <output>-preview-<step>.png: base and styled images for the content prompt, same seed."""

        def routing(names):  # the styled rows go through this run's own style adapter, Δs alone
            return pair_routing(self.layers, [Route.STYLE_ALONE if n else Route.BASE for n in names], self.device)

        guided = style_guided(self.pipe, routing=routing, routed_styles={"style": self.config.style_suffix})
        size = dict(height=self.config.resolution, width=self.config.resolution, num_inference_steps=steps, seed=0)
        word = self.style_word.applied() if self.style_word else nullcontext()  # the styled rows' learned word
        with self.encoders_on_device(), word:
            base = guided(self.config.content_prompt, styles={}, **size).images[0]
            styled = guided(self.config.content_prompt, styles=["style"], **size).images[0]  # the default style scale
        return atomic_write(self.preview_path(self.step), lambda temp: grid([[base, styled]]).save(temp, format="PNG"))

    def write_checkpoint(self) -> None:
        """Called by every process (collective); process 0 writes the generators of all of them."""
        generators = [self.generator.get_state()]
        if self.processes > 1:
            generators = list(self.accelerator.gather(generators[0].to(self.device)[None]).cpu())
        if not self.accelerator.is_main_process:
            return
        optimizer = self.optimizer.state_dict()["state"]
        save_checkpoint(
            self.config.checkpoint_path,
            Checkpoint(
                self.step,
                result_settings(self.config),
                self.history,
                self.trained_params,
                optimizer,
                generators,
            ),
            keep=self.config.keep_checkpoints,
        )

    def resume_from_checkpoint(self) -> None:
        """Continue from the checkpoint beside the output: adapters, optimizer state, generators, step, history."""
        path = self.config.checkpoint_path
        state = load_checkpoint(path)
        try:
            with torch.no_grad():
                for param, value in zip(self.trained_params, state.params, strict=True):
                    param.copy_(value)
            groups = self.optimizer.state_dict()["param_groups"]
            self.optimizer.load_state_dict({"state": state.optimizer_state, "param_groups": groups})
            self.generator.set_state(state.generator_states[self.accelerator.process_index])
        except Exception as error:  # shapes or counts that do not match this model
            raise unusable_checkpoint(path, reason(error)) from None
        self.step, self.history = state.step, [tuple(row) for row in state.history]
        self._train_only(self.kinds(self.step))

    def metadata(self, adapter: str) -> StyleMetadata:
        c = self.config
        training = {
            file_name(k): getattr(c, k)
            for k in (
                "learning_rate",
                "weight_decay",
                "max_steps",
                "style_start_step",
                "gradient_accumulation",
                "resolution",
                "seed",
                "mixed_precision",
                "dtype",
                "variant",
                "vae",
                "method",
                "orthogonal",
            )
        }
        training["step"] = self.step
        training["processes"] = self.processes  # N x gradient_accumulation draws per step
        training["pairs"] = len(c.pairs)
        if c.scale_lr:
            training["scale_lr"], training["effective_learning_rate"] = True, self.learning_rate
        if self.history:
            training["final_losses"] = list(self.history[-1][1:])
        styled = lambda text: text  # noqa: E731
        if self.style_word:  # a learned style word is called up by its token: " in <s0> style" (style_word)
            training["style_word_lr"] = c.style_word_lr or c.learning_rate
            styled = lambda text: with_token(text, c.style)  # noqa: E731
        alpha = c.style_alpha if adapter == "style" else c.content_alpha
        return StyleMetadata(
            base_model=c.model,
            family=self.family.name,
            adapter=adapter,
            content_rank=c.content_rank,
            style_rank=c.style_rank,
            alpha=alpha,
            target_modules=list(c.target_modules),
            basis_seed=c.basis_seed,
            subject=c.subject,
            style=c.style,
            style_suffix=styled(c.style_suffix),
            content_prompt=c.content_prompt,
            style_prompt=styled(c.style_prompt),
            training=training,
            dtype=c.save_dtype,
        )

    def save(self, path: str | Path | None = None) -> Path:
        """Write the style LoRA (and with ``save_content`` the content LoRA) to ``path`` (default: the output)."""
        layers = self.layers
        style = lora_state_dict(
            {n: l.style_A for n, l in layers.items()},
            {n: l.style_B for n, l in layers.items()},
            next(iter(layers.values())).style_scale,
            DTYPES[self.config.save_dtype],
            self.family.lora_prefix,
        )
        word = self.style_word
        if word:
            style.update(word.tensors(DTYPES[self.config.save_dtype]))
        items = [
            adapter_writer(
                path or self.config.output, style, self.metadata("style"), True, word.header() if word else None
            )
        ]
        for k in range(len(self.config.pairs)) if self.config.save_content else ():
            adapters = {n: l.content_adapter(k) for n, l in layers.items()}
            content = lora_state_dict(
                {n: A for n, (A, _) in adapters.items()},
                {n: B for n, (_, B) in adapters.items()},
                next(iter(layers.values())).content_scale,
                DTYPES[self.config.save_dtype],
                self.family.lora_prefix,
            )
            output = replace(self.config, output=str(items[0][0])).content_output(k)
            items.append(adapter_writer(output, content, self.metadata("content"), overwrite=True))
        return write_set(items)[0]  # the style file and its content files appear together
