"""Pair training (paper Sec. 3): learn a content LoRA and an orthogonal style LoRA from one image pair.

One optimisation step = ``gradient_accumulation`` draws of (eps, t), each a
single batched UNet call on [content row, style row] (see ``objective``), and
ONE AdamW step on all B's.  The research code instead runs a content
forward/backward/step, then a style forward/backward/step.  Because Δc is
detached in the style loss and Δs is absent from the content loss, the fused
gradient is exactly (∇_Bc L_content, ∇_Bs L_style); the only difference is that
the style loss sees Δc *before* this step's content update rather than after
it — a lag of one step of a slowly changing adapter, for half the UNet calls
and no second optimizer step."""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import distributed
from ..adapters.layers import add_pair_lora, remove_pair_lora
from ..config.train import TrainConfig  # noqa: F401  (re-exported: callers import it from here)
from ..errors import UserError
from ..models.family import Size
from ..models.registry import DTYPES, family_of, load_pipeline
from .objective import EncodedPair, RowKind, pair_losses
from .outputs import TrainerOutputs
from .setup import accelerator_of, checked_run, lock_run, optimizer_class
from .style_word import StyleWord


class PairTrainer(TrainerOutputs):
    """Holds the model with both adapters, the encoded pair and the optimizer; ``fit`` runs the loop."""

    def __init__(self, config: TrainConfig, pipe=None):
        # 1. settings and inputs first, so mistakes are reported before a large model loads
        config, pipe, images, resume_from = checked_run(config, pipe)
        self.config, self.resumed = config, resume_from is not None
        self.lock = lock_run(config, self.resumed).__enter__() if distributed.is_main() else None
        try:
            self._load(config, pipe, images, resume_from)
        except BaseException:
            self.close()  # lets go of the outputs
            raise

    def _load(self, config: TrainConfig, pipe, images, resume_from: Path | None) -> None:
        """The model, the encoded pair, the adapters and the optimizer (after every check passed)."""
        # 2. model; encode the pair once, then the VAE and text encoders leave the device (previews bring them back)
        device = distributed.process_device(distributed.check_device(config.device))
        if pipe is None:
            pipe = load_pipeline(config.model, DTYPES[config.dtype], config.variant, config.vae)
        self.pipe, self.family = pipe, family_of(pipe)
        self.noise_scheduler = self.family.training_objective(pipe)  # DDPM or flow matching; not pipe.scheduler
        config, self.accelerator = accelerator_of(config, device)
        self.config = config
        self.processes = self.accelerator.num_processes
        device = self.device = self.accelerator.device
        sizes = [Size(image.original_size, image.crop_top_left, (config.resolution,) * 2) for image in images]
        with self.encoders_on_device():  # only the encoders: the denoiser need not share the device with them
            self.pair = EncodedPair.encode(
                pipe,
                self.family,
                [image.pixels for image in images],
                [p for prompts in config.pair_prompts for p in prompts],
                sizes,
                device,
            )
        # beyond the paper: the style words' embedding, trained in the style rows only (style_word)
        self.style_word = None
        if config.learn_style_word:
            prompts = [style for _, style in config.pair_prompts]
            self.style_word = StyleWord(pipe, self.family, config.style, prompts, sizes[1::2], device)
        # 3. adapters: frozen denoiser, frozen A's, trainable zero B's
        denoiser = self._add_adapters(self.family.denoiser(pipe).requires_grad_(False).to(device))
        # 4. optimizer, and the adapters this step trains (DDP holds only those)
        self.learning_rate = config.learning_rate * (self.processes if config.scale_lr else 1)
        groups = [{"params": self.content_params + self.style_params}]
        if self.style_word:  # its own learning rate, no weight decay (which would pull it to zero)
            groups.append({"params": self.style_word.params, "lr": config.style_word_lr or config.learning_rate})
            groups[-1]["weight_decay"] = 0.0
        optimizer = optimizer_class(config, device)(groups, lr=self.learning_rate, weight_decay=config.weight_decay)
        self.denoiser = denoiser
        self._train_only(self.kinds(0))
        self.denoiser, self.optimizer = self.accelerator.prepare(denoiser, optimizer)
        # each process its own (eps, t) draws: process r seeds its generator with seed + r
        self.generator = torch.Generator().manual_seed(config.seed + self.accelerator.process_index)
        self.step = 0
        self.history: list[tuple[int, float, float | None]] = []  # (step, content loss, style loss)
        if resume_from is not None:
            self.resume_from_checkpoint()

    def _add_adapters(self, denoiser):
        """The pair LoRA on ``denoiser``'s target layers (``layers``), their content and style parameters."""
        self.layers = add_pair_lora(
            denoiser,
            self.config.content_rank,
            self.config.style_rank,
            self.config.content_alpha,
            self.config.style_alpha,
            self.config.basis_seed,
            self.config.target_modules,
            orthogonal=self.config.orthogonal,
            pairs=len(self.config.pairs),
        )
        if not self.layers:
            raise UserError(
                f"no layer of this model matches the target modules {list(self.config.target_modules)}; "
                "use names such as to_q, to_k, to_v, to_out.0."
            )
        if self.config.gradient_checkpointing:
            denoiser.enable_gradient_checkpointing()
        self.content_params = [p for l in self.layers.values() for p in (l.content_A, l.content_B) if p.requires_grad]
        self.style_params = [p for l in self.layers.values() for p in (l.style_A, l.style_B) if p.requires_grad]
        return denoiser

    @property
    def trained_params(self) -> list[torch.nn.Parameter]:
        """Every trained tensor in optimizer order: content B's, style B's, then a learned style word's vectors."""
        return self.content_params + self.style_params + (self.style_word.params if self.style_word else [])

    def encoded_pair(self, kinds: tuple[RowKind, ...]) -> EncodedPair:
        """The pair as encoded once, or with a learned style word its style rows encoded anew (with gradient)."""
        if self.style_word is None or not any(kind.prompt for kind in kinds):
            return self.pair
        return self.style_word.pair(self.pair)

    def kinds(self, step: int) -> tuple[RowKind, ...]:
        """The loss terms of a step: content only during the style warm-up, then content and style."""
        if self.config.method == "style-only":
            return (RowKind.STYLE_ALONE,)
        if self.config.method == "slider":
            return (RowKind.SLIDER_MINUS, RowKind.SLIDER_PLUS)
        if step < self.config.style_start_step:
            return (RowKind.CONTENT,)
        return (RowKind.CONTENT, RowKind.STYLE_OVER_FROZEN_CONTENT)

    def _train_only(self, kinds: tuple[RowKind, ...]) -> None:
        """Make exactly the parameters that ``kinds`` uses trainable; rebuild DDP when that set changes.

        DDP (which by default does not search for unused parameters) expects a gradient for every parameter it holds
        in every step, and the style B's get none during the style warm-up (nor the content B's in style-only or
        slider training), so they are frozen and left out of DDP until used: DDP is built for the warm-up without
        them and rebuilt once, at style_start_step, with them. The optimizer skips parameters without a gradient
        either way, so the result is the same; a single process (no DDP) leaves every adapter trainable."""
        from accelerate.utils import DistributedType

        if self.processes == 1 or self.accelerator.distributed_type in (
            DistributedType.DEEPSPEED,
            DistributedType.FSDP,
        ):
            return  # no DDP; or engines that take their trainable set at prepare
        used = set()
        if any(kind.route.trains_content for kind in kinds):
            used.update(map(id, self.content_params))
        if any(kind.route.trains_style for kind in kinds):
            used.update(map(id, self.style_params))
        changed = [p for p in self.content_params + self.style_params if p.requires_grad != (id(p) in used)]
        for param in changed:
            param.requires_grad_(id(param) in used)
        if changed and isinstance(self.denoiser, torch.nn.parallel.DistributedDataParallel):
            inner = self.accelerator.unwrap_model(self.denoiser, keep_fp32_wrapper=False)
            self.denoiser = self.accelerator.prepare_model(inner, device_placement=False)

    @staticmethod
    def _as_pair(losses: dict) -> tuple:
        """(content loss, style loss) with None for a term that was not computed."""
        pair = [None, None]
        for kind, loss in losses.items():
            pair[kind.column] = loss
        return tuple(pair)

    def train_step(self) -> tuple[float | None, float | None]:
        """One optimizer step (with accumulation); returns the mean (content, style) losses."""
        config, kinds = self.config, self.kinds(self.step)
        self._train_only(kinds)
        totals = dict.fromkeys(kinds, 0.0)
        for _ in range(config.gradient_accumulation):
            with self.accelerator.accumulate(self.denoiser), self.accelerator.autocast():
                pair = self.encoded_pair(kinds)
                losses = pair_losses(
                    self.denoiser, self.layers, self.noise_scheduler, pair, kinds, self.generator, self.family
                )
                self.accelerator.backward(sum(losses.values()))
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            for kind, loss in losses.items():
                totals[kind] += loss.item() / config.gradient_accumulation
        if self.processes > 1:  # the mean over all processes' draws: the same history (and checks) everywhere
            mean = self.accelerator.reduce(
                torch.tensor(list(totals.values()), dtype=torch.float64, device=self.device), "mean"
            )
            totals = dict(zip(kinds, mean.tolist()))
        for kind, loss in totals.items():
            if not math.isfinite(loss):
                raise UserError(
                    f"training diverged at step {self.step + 1}: the {kind.label} loss is {loss}, "
                    f"most likely because the learning rate ({self.learning_rate}) or alpha "
                    f"({config.alpha or 'the rank'}) is too large; lower it and train again."
                )
        self.step += 1
        result = self._as_pair(totals)
        self.history.append((self.step, *result))
        return result

    @torch.no_grad()
    def evaluate(self, draws: int = 8, seed: int = 1234) -> tuple[float | None, float | None]:
        """Mean (content, style) loss over a fixed set of (eps, t) draws: comparable across steps."""
        generator = torch.Generator().manual_seed(seed)
        kinds = self.kinds(self.config.max_steps)
        totals = dict.fromkeys(kinds, 0.0)
        for _ in range(draws):
            for kind, loss in pair_losses(
                self.denoiser,
                self.layers,
                self.noise_scheduler,
                self.encoded_pair(kinds),
                kinds,
                generator,
                self.family,
            ).items():
                totals[kind] += loss.item() / draws
        return self._as_pair(totals)

    def fit(self, on_step=None) -> None:
        """Train to ``max_steps``; ``on_step(trainer)`` runs on process 0 after each step (and its due preview)."""
        config, main = self.config, self.accelerator.is_main_process
        description = "pair training" + (f" ({self.processes} processes)" if self.processes > 1 else "")
        bar = tqdm(
            range(self.step, config.max_steps),
            desc=description,
            disable=not (config.progress and main),
            initial=self.step,
            total=config.max_steps,
        )
        for _ in bar:
            content_loss, style_loss = self.train_step()
            bar.set_postfix(
                content="-" if content_loss is None else f"{content_loss:.4f}",
                style="warm-up" if style_loss is None else f"{style_loss:.4f}",
            )
            due = lambda every: every and self.step % every == 0  # noqa: E731
            if due(config.checkpoint_every):
                self.write_checkpoint()  # every process: it gathers their generators
            if main and due(config.save_every) and self.step < config.max_steps:
                self.save(config.step_output(self.step))
            if main and due(config.preview_every):
                self.preview()
            if due(config.checkpoint_every) or due(config.save_every) or due(config.preview_every):
                self.accelerator.wait_for_everyone()  # the others wait while process 0 writes
            if main and on_step is not None:
                on_step(self)

    @contextmanager
    def encoders_on_device(self):
        """The VAE and text encoders on the training device for the duration, on the CPU otherwise: the pair's
        latents and prompt embeddings are computed once and kept, so the encoders (Flux's T5 alone is 9.5 GB in
        bf16) need not stay beside the denoiser."""
        modules = [m for m in (self.pipe.vae, *self.family.text_encoders(self.pipe)) if m is not None]
        for module in modules:
            module.to(self.device)
        try:
            yield
        finally:
            for module in modules:
                module.to("cpu")

    def close(self) -> None:
        """Give the pipeline its plain denoiser back; let go of the outputs."""
        if self.lock is not None:
            self.lock.release()
        if hasattr(self, "layers") and hasattr(self, "denoiser"):
            remove_pair_lora(self.accelerator.unwrap_model(self.denoiser), self.layers)


def train_pair(config: TrainConfig, pipe=None, on_step=None) -> Path:
    """Train a style from a content/style pair and write the style LoRA; return its path.

    Under several processes every process trains and returns the path; only process 0 writes.
    ``on_step(trainer)`` is called after every step (``trainer.step``, ``trainer.history``, ``preview_path``)."""
    trainer = PairTrainer(config, pipe)
    main = trainer.accelerator.is_main_process
    try:
        trainer.fit(on_step)
        path = Path(trainer.config.output)
        if trainer.config.checkpoint_every:  # kept: --resume with more steps extends this run
            trainer.write_checkpoint()
        if main:
            trainer.save()
            if not trainer.config.checkpoint_every and trainer.resumed and trainer.config.checkpoint_path.is_file():
                trainer.config.checkpoint_path.unlink()  # the checkpoint this run resumed from, now behind it
        trainer.accelerator.wait_for_everyone()  # nobody reports success before the file is there
    finally:
        trainer.close()
    return path
