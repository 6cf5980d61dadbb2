"""A learned style word in the style file (pivotal tuning, issue 28; trained by ``training.style_word``).

The style file stores the word as a textual-inversion token ``TOKEN`` ("<s0>"; with n vectors "<s0>", "<s0>_1",
... as diffusers names them) per text encoder, an (n, D) tensor under ``WORD_PREFIX`` + "text_encoder" /
"text_encoder_2"; the header entry ``WORD_HEADER`` names the token, the words and the encoders, and the saved
style suffix uses the token (" in <s0> style").  ``load_style`` adds the token to the pipeline's tokenizer(s) and
a row per vector to its text encoder(s), as diffusers' ``load_textual_inversion`` does (docs/style-word.md).
"""

from __future__ import annotations

import json

import torch

from ..errors import UserError

TOKEN = "<s0>"  # the token's name in the style file; load_style takes <s1>, ... where it is taken
WORD_PREFIX = "style_word_lora."  # + text encoder name; "lora" in the key makes diffusers' load_lora_weights skip it
WORD_HEADER = "paircustom_style_word"  # header entry: {"token", "words", "encoders"}
ENCODERS = (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2"))


def text_encoders(pipe) -> list[tuple[str, object, object]]:
    """(name, tokenizer, text encoder) of each text encoder of ``pipe``: one for SD, two for SDXL."""
    return [
        (name, getattr(pipe, tokenizer), getattr(pipe, name))
        for name, tokenizer in ENCODERS
        if getattr(pipe, name, None) is not None
    ]


def with_token(text: str, words: str, token: str = TOKEN) -> str:
    """``text`` with the last occurrence of ``words`` replaced by ``token`` (the one the style row learned)."""
    start = text.rindex(words)
    return text[:start] + token + text[start + len(words) :]


def word_header(words: str, encoders: list[str]) -> dict[str, str]:
    return {WORD_HEADER: json.dumps({"token": TOKEN, "words": words, "encoders": encoders})}


def read_word(path, header: dict[str, str], tensors: dict[str, torch.Tensor]) -> dict | None:
    """{"token", "words", "vectors": {encoder name: (n, D)}} of a style file's learned word; None without one.

    ``tensors``: the file's tensors under ``WORD_PREFIX`` (``StyleFile.word``)."""
    if WORD_HEADER not in header and not tensors:
        return None
    try:
        info = json.loads(header[WORD_HEADER])
        token, vectors = info["token"], {name: tensors[WORD_PREFIX + name] for name in info["encoders"]}
        fine = all(
            v.ndim == 2 and len(v) and v.is_floating_point() and torch.isfinite(v).all() for v in vectors.values()
        )
        problem = (
            "the token is not text"
            if not isinstance(token, str) or not token
            else "its vectors are not finite (n, D) floats"
            if not fine
            else "it holds tensors its header does not name"
            if len(vectors) != len(tensors)
            else None
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        problem = f"{type(error).__name__}: {str(error)[:60]}"
    if problem:
        raise UserError(
            f"'{path}' has a damaged learned style word ({problem}); retrain it, or load the file in plain "
            "diffusers without it."
        )
    return {"token": token, "words": info.get("words", ""), "vectors": vectors}


def check_word(path, word: dict, pipe) -> None:
    """Refuse a learned word that does not fit the pipeline's text encoders, before anything is changed."""
    names = [name for name, _, _ in text_encoders(pipe)]
    if sorted(word["vectors"]) != sorted(names):
        raise UserError(
            f"'{path}' holds a style word for {', '.join(sorted(word['vectors']))} but this pipeline has "
            f"{', '.join(names) or 'no text encoder'}; load it into the kind of model it was trained on."
        )
    for name, _, encoder in text_encoders(pipe):
        have, width = word["vectors"][name].shape[1], encoder.get_input_embeddings().embedding_dim
        if have != width:
            raise UserError(
                f"'{path}' holds a style word embedding of size {have} for {name}, whose embeddings have size "
                f"{width}; load it into the model it was trained on."
            )


def add_word(pipe, word: dict) -> str:
    """Add the learned word to every tokenizer and text encoder of ``pipe`` as diffusers' load_textual_inversion
    does; return its token there: the file's, or "<s1>", "<s2>", ... where that one is taken."""
    encoders = text_encoders(pipe)
    taken = lambda t: any(t in tokenizer.get_vocab() for _, tokenizer, _ in encoders)  # noqa: E731
    token = word["token"]
    if taken(token):
        token = next(f"<s{k}>" for k in range(1, 10_000) if not taken(f"<s{k}>"))
    for name, tokenizer, encoder in encoders:
        vectors = word["vectors"][name]  # (n, D)
        names = [token] + [f"{token}_{i}" for i in range(1, len(vectors))]
        if names[0] not in tokenizer.get_vocab():  # SDXL's two tokenizers may be one object
            tokenizer.add_tokens(names)
        ids = tokenizer.convert_tokens_to_ids(names)
        if max(ids) >= encoder.get_input_embeddings().num_embeddings:
            encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        weight = encoder.get_input_embeddings().weight
        with torch.no_grad():
            weight[ids] = vectors.to(weight.device, weight.dtype)
    return token
