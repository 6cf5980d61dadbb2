"""A learned style word (pivotal tuning, issue 28): trained in the style row only, saved in the style file,
loaded by load_style and by plain diffusers (docs/style-word.md)."""

from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from paircustom import StyleGuidedPipeline
from paircustom.errors import UserError
from paircustom.files.style_word import text_encoders
from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.objective import RowKind, pair_losses
from paircustom.training.trainer import PairTrainer, train_pair
from tests.conftest import quick_config, write_pair

CONTENT = "a photo of a sbu dog"
WORDS = "digital art"  # two tokens in the tiny tokenizer: the word has two vectors, "<s0>" and "<s0>_1"
KEY = "style_word_lora.text_encoder"
FEW_STEPS = {"max_steps": 4, "style_start_step": 1}  # the style row (and the word) train from the second step


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{family: (trainer after 4 steps, the last 3 with the style row; its style file)}: tiny SD and SDXL."""
    folder = tmp_path_factory.mktemp("style-word")
    content, style = write_pair(folder)
    runs = {}
    for family in ("sd", "sdxl"):
        trainer = PairTrainer(
            quick_config(content, style, folder / f"{family}.safetensors", learn_style_word=True, **FEW_STEPS),
            build_tiny_pipeline(family),
        )
        trainer.initial = {name: v.detach().clone() for name, v in trainer.style_word.vectors.items()}
        trainer.fit()
        runs[family] = trainer, trainer.save()
    return runs


def _encode(pipe, prompt):
    """The conditioning the UNet gets for ``prompt`` (SD: hidden states; SDXL: also the pooled embedding)."""
    from paircustom.models.registry import family_of

    cond, _ = family_of(pipe).encode(pipe, [prompt], "cpu")
    return [cond.hidden, *cond.added.values()]


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_the_word_starts_as_the_style_words_and_only_the_style_row_changes_it(family, pair, tmp_path):
    trainer = PairTrainer(
        quick_config(*pair, tmp_path / "s.safetensors", learn_style_word=True), build_tiny_pipeline(family)
    )
    kinds = (RowKind.CONTENT, RowKind.STYLE_OVER_FROZEN_CONTENT)
    encoded = trainer.encoded_pair(kinds)
    for got, want in zip(
        [encoded.cond.hidden, *encoded.cond.added.values()],
        [trainer.pair.cond.hidden, *trainer.pair.cond.added.values()],
    ):
        assert (got - want).abs().max() < 1e-5, (  # batch-size round-off only: one prompt here, two at encoding
            f"at step 0 the learned word must encode as the style words; differs by {(got - want).abs().max():.2e}"
        )
    losses = pair_losses(
        trainer.denoiser,
        trainer.layers,
        trainer.noise_scheduler,
        encoded,
        kinds,
        torch.Generator().manual_seed(0),
        trainer.family,
    )
    vectors = trainer.style_word.params
    content_grad = torch.autograd.grad(losses[RowKind.CONTENT], vectors, allow_unused=True, retain_graph=True)
    style_grad = torch.autograd.grad(losses[RowKind.STYLE_OVER_FROZEN_CONTENT], vectors, allow_unused=True)
    assert all(g is None or not g.any() for g in content_grad), "the content loss reached the style word"
    assert all(g is not None and g.abs().sum() > 0 for g in style_grad), "the style loss misses an encoder's word"
    frozen = [p for _, _, e in text_encoders(trainer.pipe) for p in e.parameters()]
    assert not any(p.requires_grad for p in frozen), "the text encoders must stay frozen"
    trainer.close()


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_training_moves_the_word_after_the_warm_up_and_leaves_the_encoders_alone(family, trained):
    trainer, _ = trained[family]
    for name, vector in trainer.style_word.vectors.items():
        assert (vector.detach() - trainer.initial[name]).abs().max() > 1e-4, f"{name}: the word did not train"
    fresh = build_tiny_pipeline(family)
    for name, _, encoder in text_encoders(trainer.pipe):
        assert torch.equal(encoder.get_input_embeddings().weight, getattr(fresh, name).get_input_embeddings().weight), (
            f"{name}'s embeddings changed"
        )


def test_the_word_waits_for_the_style_start(pair, tmp_path):
    trainer = PairTrainer(
        quick_config(*pair, tmp_path / "s.safetensors", learn_style_word=True, style_start_step=2),
        build_tiny_pipeline("sd"),
    )
    before = trainer.style_word.params[0].detach().clone()
    trainer.train_step(), trainer.train_step()
    assert torch.equal(trainer.style_word.params[0].detach(), before), "the word moved during the style warm-up"
    trainer.train_step()
    assert not torch.equal(trainer.style_word.params[0].detach(), before), "the word did not move after it"
    trainer.close()


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_load_style_encodes_the_style_prompt_as_training_did(family, trained):
    trainer, path = trained[family]
    with safe_open(str(path), "pt") as file:
        names = [k for k in file.keys() if k.startswith("style_word_lora.")]
    assert sorted(names) == sorted("style_word_lora." + n for n in trainer.style_word.vectors), names
    guided = StyleGuidedPipeline(build_tiny_pipeline(family))
    name = guided.load_style(path)
    assert guided.suffixes[name] == " in <s0> style", guided.suffixes[name]
    with torch.no_grad():
        want = trainer.style_word.pair(trainer.pair).cond
        got = _encode(guided.pipe, CONTENT + guided.suffixes[name])
    for g, w in zip(got, [want.hidden[1:2], want.added.get("text_embeds", torch.empty(0))[1:2]]):
        assert (g - w).abs().max() < 1e-5, f"loaded word encodes {(g - w).abs().max():.2e} away from training's"
    second = guided.load_style(path, name="again")
    assert guided.suffixes[second] == " in <s1> style", "a second copy must get a token of its own"


def test_plain_diffusers_loads_the_word_and_the_lora_as_the_guide_says(trained):
    """docs/style-word.md, "In plain diffusers", line by line, on a tiny SD pipeline."""
    _, path = trained["sd"]
    pipe = build_tiny_pipeline("sd")
    state = load_file(path)
    pipe.load_textual_inversion(state["style_word_lora.text_encoder"], token="<s0>")
    pipe.load_lora_weights(path)
    prompt = "a photo of a sbu dog in <s0> style"
    got, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
    guided = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    name = guided.load_style(path)
    want = _encode(guided.pipe, CONTENT + guided.suffixes[name])[0]
    assert torch.equal(got, want), f"diffusers' text embedding differs by {(got - want).abs().max():.2e}"
    layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    lora = pipe.unet.get_submodule(layer).lora_B
    assert torch.equal(next(iter(lora.values())).weight, state[f"unet.{layer}.lora_B.weight"]), "LoRA not loaded"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda state: {**state, KEY: torch.zeros(2, 31)}, "size 31"),
        (lambda state: {**state, KEY: torch.full((2, 32), float("nan"))}, "damaged learned style word"),
        (lambda state: {k: v for k, v in state.items() if k != KEY}, "damaged learned style word"),
    ],
)
def test_a_word_that_does_not_fit_is_refused_before_anything_changes(change, message, trained, tmp_path):
    _, path = trained["sd"]
    with safe_open(str(path), "pt") as file:
        header = file.metadata()
    bad = tmp_path / "bad.safetensors"
    save_file(change(load_file(path)), bad, metadata=header)
    guided = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    size = len(guided.pipe.tokenizer)
    with pytest.raises(UserError, match=message) as error:
        guided.load_style(bad)
    assert "\n" not in str(error.value) and not guided.suffixes and len(guided.pipe.tokenizer) == size


def test_an_sd_word_is_refused_by_sdxl_with_one_line(trained, tmp_path):
    _, path = trained["sd"]
    with pytest.raises(UserError) as error:
        StyleGuidedPipeline(build_tiny_pipeline("sdxl")).load_style(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_style_scale_zero_with_a_learned_word_is_plain_cfg(family, trained):
    _, path = trained[family]
    base = build_tiny_pipeline(family)
    base.set_progress_bar_config(disable=True)
    expected = base(
        "a photo of a cat",
        num_inference_steps=3,
        guidance_scale=5.0,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
        height=32,
        width=32,
    ).images
    guided = StyleGuidedPipeline(base)
    name = guided.load_style(path)
    got = guided(
        "a photo of a cat", styles={name: 0.0}, num_inference_steps=3, output_type="np", seed=0, height=32, width=32
    ).images
    assert abs(got - expected).max() < 1e-4, f"max pixel difference {abs(got - expected).max()}"


def test_resume_carries_the_word(pair, tmp_path):
    """2 steps + resume to 4 == 4 steps straight: the word, the LoRA and the optimizer state all come back."""
    config = quick_config(*pair, tmp_path / "a.safetensors", learn_style_word=True, checkpoint_every=2, **FEW_STEPS)
    straight = load_file(train_pair(config, build_tiny_pipeline("sd")))
    split = replace(config, output=str(tmp_path / "b.safetensors"))
    train_pair(replace(split, max_steps=2), build_tiny_pipeline("sd"))
    resumed = load_file(train_pair(replace(split, resume=True), build_tiny_pipeline("sd")))
    assert straight.keys() == resumed.keys() and KEY in straight
    worst = max((straight[k] - resumed[k]).abs().max().item() for k in straight)
    assert worst < 1e-6, f"resumed run differs by {worst:.2e}"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(style_word_lr=1e-3), "needs --learn-style-word"),
        (dict(learn_style_word=True, style_prompt=CONTENT + " in watercolor"), "must stand in the style prompt"),
        (dict(learn_style_word=True, method="slider"), "not the slider"),
        (dict(learn_style_word=True, style_word_lr=float("nan")), "style word learning rate"),
    ],
)
def test_bad_style_word_settings_are_one_sentence(overrides, message, pair, tmp_path):
    with pytest.raises(UserError, match=message) as error:
        PairTrainer(quick_config(*pair, tmp_path / "s.safetensors", **overrides), build_tiny_pipeline("sd"))
    assert "\n" not in str(error.value)


def test_the_command_line_trains_shows_and_exports_a_learned_word(pair, tmp_path, capsys):
    from paircustom.cli.main import main
    from paircustom.files.style_file import read_style

    build_tiny_pipeline("sd").save_pretrained(tmp_path / "model")
    output, kohya = tmp_path / "word.safetensors", tmp_path / "word-kohya.safetensors"
    fast = ["--rank", "4", "--lr", "1e-2", "--steps", "3", "--style-start-step", "1", "--accumulation", "1"]
    args = ["train", *map(str, pair), "--subject", "dog", "--style", WORDS, "--model", str(tmp_path / "model")]
    assert (
        main(
            [
                *args,
                "-o",
                str(output),
                "--learn-style-word",
                "--style-word-lr",
                "0.05",
                *fast,
                "--resolution",
                "32",
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["info", str(output)]) == 0
    text = capsys.readouterr().out
    assert '"style_suffix": " in <s0> style"' in text and "learned style word <s0> (text_encoder 2 x 32)" in text, text
    assert main(["export", str(output), "-o", str(kohya)]) == 0
    assert "stays in the style file" in capsys.readouterr().out
    exported = read_style(kohya)
    assert not exported.word and "paircustom_style_word" not in exported.header, "the export claims a word it lacks"
