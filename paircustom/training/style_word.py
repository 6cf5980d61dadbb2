"""Beyond the paper: the style words' input embedding trained with the style LoRA (pivotal tuning, issue 28).

With ``TrainConfig.learn_style_word`` the style words (``--style``, e.g. "inverted") get their own input
embedding per text encoder, w: (n, D) for the n tokens the words encode to, initialised from the words' own rows
of the frozen embedding matrix.  It enters ONLY the style row of the objective (``objective``):

    L_style   = || eps - eps[θ0 + sg(Δc) + Δs](x_t(x0_s), c_s(w), t) ||²   c_s(w): the style prompt encoded with
                                                                         the style words' embeddings replaced by w
    L_content   unchanged: its prompt holds no style words, and its conditioning is encoded once, frozen

and trains with the B's of Δs in the same AdamW step.  At step 0, c_s(w) is the plain c_s.  The style file
carries w as a textual-inversion token (``files.style_word``; docs/style-word.md).
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch

from ..errors import UserError
from ..files.style_word import WORD_PREFIX, text_encoders, word_header
from ..models.family import Conditioning


def token_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def last_match(row: list[int], ids: list[int]) -> int | None:
    """The start of the last occurrence of ``ids`` in ``row``, or None."""
    n = len(ids)
    return next((i for i in range(len(row) - n, -1, -1) if row[i : i + n] == ids), None)


class StyleWord:
    """The trainable style-word embeddings of a run, and the style rows of the pair encoded with them."""

    def __init__(self, pipe, family, words: str, style_prompts: list[str], sizes: list, device):
        """``style_prompts``: each pair's style prompt; ``sizes``: its style image's ``family.Size``."""
        self.pipe, self.family, self.words = pipe, family, words
        self.style_prompts, self.sizes, self.device = style_prompts, sizes, device
        self.ids: dict[str, list[int]] = {}
        self.vectors: dict[str, torch.nn.Parameter] = {}  # encoder name -> (n, D), fp32
        for name, tokenizer, encoder in text_encoders(pipe):
            ids = token_ids(tokenizer, words)
            for prompt in style_prompts:
                if last_match(tokenizer(prompt, truncation=True).input_ids, ids) is None:
                    raise UserError(
                        f"--learn-style-word found the style words {words!r} cut off or split differently in "
                        f"the style prompt {prompt!r}; put them in it as separate words."
                    )
            encoder.requires_grad_(False)  # frozen: only the vectors below train
            self.ids[name] = ids
            weight = encoder.get_input_embeddings().weight
            self.vectors[name] = torch.nn.Parameter(weight[ids].detach().float().clone().to(device))

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return list(self.vectors.values())

    @contextmanager
    def applied(self):
        """Inside: every prompt the text encoders embed has the last occurrence of the style words' tokens
        replaced by the learned vectors (a forward hook on each input embedding)."""
        handles = [
            encoder.get_input_embeddings().register_forward_hook(partial(self._replace, name))
            for name, _, encoder in text_encoders(self.pipe)
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _replace(self, name: str, module, args, output: torch.Tensor) -> torch.Tensor:
        ids, vectors = self.ids[name], self.vectors[name]
        out = output.clone()  # (B, T, D)
        for b, row in enumerate(args[0].tolist()):  # input_ids (B, T)
            start = last_match(row, ids)
            if start is not None:
                out[b, start : start + len(ids)] = vectors.to(out.device, out.dtype)
        return out

    def pair(self, pair):
        """``pair`` (an ``objective.EncodedPair``) with its style rows encoded anew through the learned vectors
        (with gradient); the content rows stay as encoded once."""
        for _, _, encoder in text_encoders(self.pipe):
            encoder.to(self.device)  # a preview may have moved them off the device
        with self.applied():
            styled, _ = self.family.encode(self.pipe, self.style_prompts, self.device)
        styled = self.family.add_size(self.pipe, styled, self.sizes)  # (K, T, D)
        rows = [part for k in range(pair.pairs) for part in (pair.cond.select([2 * k]), styled.select([k]))]
        return type(pair)(pair.latent_mean, pair.latent_std, Conditioning.cat(rows))

    def tensors(self, dtype) -> dict[str, torch.Tensor]:
        """What the style file stores: each encoder's vectors under ``WORD_PREFIX``."""
        return {WORD_PREFIX + name: v.detach().to(dtype).cpu().contiguous() for name, v in self.vectors.items()}

    def header(self) -> dict[str, str]:
        return word_header(self.words, list(self.vectors))
