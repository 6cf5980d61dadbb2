"""Other tools' LoRA layouts in, kohya out: round trips on tiny SD and SDXL against our own peft layout.

The foreign files are built here from a trained style file's peft tensors, the way each tool names its keys:
old diffusers (``lora.down``/``lora.up``, and the attention-processor era's ``processor.to_q_lora``), kohya
(``lora_unet_*`` with a different alpha per module, SDXL also with the original UNet's block names) and files
that carry text-encoder weights too.
"""

import re
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from paircustom.cli.main import main
from paircustom.errors import PairCustomWarning, UserError
from paircustom.files.style_file import read_adapter, read_style
from paircustom.sampling.pipeline import StyleGuidedPipeline
from paircustom.tiny.unet import build_tiny_pipeline
from tests.helpers_bad_inputs import wider_context

TOLERANCE = 1e-5
SUFFIX = " in digital art style"
TEXT_ENCODER_KEYS = {  # one text-encoder layer in each tool's spelling (rank 2, width 32: the tiny SD encoder)
    "diffusers": (
        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight",
        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight",
    ),
    "kohya": (
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight",
    ),
}


def modules(peft: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module path: (A, B)} of a peft-layout state dict."""
    return {
        key[len("unet.") : -len(".lora_A.weight")]: (value, peft[key.replace("lora_A", "lora_B")])
        for key, value in peft.items()
        if key.endswith(".lora_A.weight")
    }


def old_diffusers(peft):
    return {
        f"unet.{m}.lora.{part}.weight": t for m, (A, B) in modules(peft).items() for part, t in (("down", A), ("up", B))
    }


def attention_processors(peft):
    """diffusers' attention-processor layout: attn1.to_q -> attn1.processor.to_q_lora, to_out.0 -> to_out_lora."""

    def name(m):
        return re.sub(r"\.(to_q|to_k|to_v|to_out)(\.0)?$", r".processor.\1_lora", m)

    return {
        f"unet.{name(m)}.{part}.weight": t
        for m, (A, B) in modules(peft).items()
        for part, t in (("down", A), ("up", B))
    }


def sgm_name(module: str, layers_per_block: int) -> str:
    """The original (sgm) UNet's block name of a diffusers attention module, as kohya writes SDXL files."""
    block, rest = re.match(r"(\w+\.\d+\.attentions\.\d+|mid_block\.attentions\.0)\.(.*)", module).groups()
    if block.startswith("mid_block"):
        return f"middle_block_1_{rest}"
    kind, b, _, layer = block.split(".")
    index = (
        1 + int(b) * (layers_per_block + 1) + int(layer)
        if kind == "down_blocks"
        else int(b) * (layers_per_block + 1) + int(layer)
    )
    return f"{'input' if kind == 'down_blocks' else 'output'}_blocks_{index}_1_{rest}"


def kohya(peft, sgm_layers_per_block=None):
    """kohya layout with alpha = rank x (1/2, 1, 3/2, ...) per module: lora_up holds B x rank / alpha."""
    tensors = {}
    for i, (m, (A, B)) in enumerate(modules(peft).items()):
        name = sgm_name(m, sgm_layers_per_block) if sgm_layers_per_block else m
        prefix = "lora_unet_" + name.replace(".", "_")
        alpha = A.shape[0] * (1 + i % 3) / 2
        tensors[f"{prefix}.lora_down.weight"] = A
        tensors[f"{prefix}.lora_up.weight"] = B * (A.shape[0] / alpha)
        tensors[f"{prefix}.alpha"] = torch.tensor(alpha)
    return tensors


def with_text_encoder(tensors, spelling):
    down, up = TEXT_ENCODER_KEYS[spelling]
    generator = torch.Generator().manual_seed(0)
    return {**tensors, down: torch.randn(2, 32, generator=generator), up: torch.randn(32, 2, generator=generator)}


LAYOUTS = {
    "old diffusers": (old_diffusers, "old diffusers", 0),
    "old diffusers + text encoder": (lambda p: with_text_encoder(old_diffusers(p), "diffusers"), "old diffusers", 2),
    "attention processors": (attention_processors, "old diffusers", 0),
    "kohya": (kohya, "kohya", 0),
    "kohya + text encoder": (lambda p: with_text_encoder(kohya(p), "kohya"), "kohya", 2),
}


def styled_latents(pipe, name):
    return pipe(
        "a photo of a cat",
        styles={name: 3.0} if name else {},
        num_inference_steps=3,
        style_start_fraction=0.0,
        height=32,
        width=32,
        seed=0,
        output_type="latent",
    ).images


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_foreign_layouts_generate_as_the_peft_layout(family, style_files, tmp_path):
    peft = load_file(style_files[family])
    pipe = StyleGuidedPipeline(build_tiny_pipeline(family))
    pipe.load_style(style_files[family], name="peft")
    layouts = dict(LAYOUTS)
    if family == "sdxl":  # kohya's own SDXL spelling: input_blocks/middle_block/output_blocks
        layers = pipe.pipe.unet.config.layers_per_block
        layouts["kohya sgm names"] = (lambda p: kohya(p, layers), "kohya", 0)
    reference, base = styled_latents(pipe, "peft"), styled_latents(pipe, None)
    assert (reference - base).abs().max() > 1e-3, "the style changes nothing, so equality below would prove nothing"
    for i, (label, (build, layout, ignored)) in enumerate(layouts.items()):
        path = tmp_path / f"{i}.safetensors"
        save_file({k: v.contiguous() for k, v in build(peft).items()}, path)
        style = read_style(path, pipe.pipe.unet.config)
        assert (style.layout, style.ignored) == (layout, ignored), label
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            name = pipe.load_style(path, name=f"layout{i}", suffix=SUFFIX)
        notices = [str(w.message) for w in caught if issubclass(w.category, PairCustomWarning)]
        assert len(notices) == (1 if ignored else 0) and all("text-encoder" in n for n in notices), (label, notices)
        difference = (styled_latents(pipe, name) - reference).abs().max().item()
        assert difference <= TOLERANCE, f"{family} {label}: latents differ from the peft layout's by {difference:.2e}"


def test_text_encoder_notice_is_one_line_and_a_foreign_file_still_needs_a_suffix(style_files, tmp_path, capsys):
    model = tmp_path / "sd"
    build_tiny_pipeline("sd").save_pretrained(model)
    capsys.readouterr()
    path = tmp_path / "k.safetensors"
    save_file(with_text_encoder(kohya(load_file(style_files["sd"])), "kohya"), path)
    common = [
        "generate",
        "a photo of a cat",
        "-s",
        str(path),
        "--model",
        str(model),
        "--steps",
        "2",
        "--height",
        "32",
        "--width",
        "32",
        "--quiet",
        "-o",
        str(tmp_path / "cat.png"),
    ]
    with pytest.raises(SystemExit) as refused:
        main(common)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and "--suffix" in err, err
    assert main([*common, "--suffix", SUFFIX]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("paircustom:")]
    assert lines == [
        f"paircustom: warning: '{path}' also holds 2 text-encoder LoRA tensors; paircustom adapts only "
        "the denoiser, so they are ignored."
    ], err


def unet_output(pipe, generator_seed=0):
    unet = pipe.unet
    generator = torch.Generator().manual_seed(generator_seed)
    sample = torch.randn(1, 4, 16, 16, generator=generator)
    hidden = torch.randn(1, 77, unet.config.cross_attention_dim, generator=generator)
    added = None
    if unet.config.addition_embed_type == "text_time":
        added = {
            "text_embeds": torch.randn(1, 32, generator=generator),
            "time_ids": torch.randn(1, 6, generator=generator),
        }
    with torch.no_grad():
        return unet(sample, 500, encoder_hidden_states=hidden, added_cond_kwargs=added).sample


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_kohya_export_loads_in_plain_diffusers_as_the_original(family, style_files, tmp_path, capsys):
    out = tmp_path / "kohya.safetensors"
    assert main(["export", str(style_files[family]), "--format", "kohya", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    exported = load_file(out)
    assert exported and all(
        re.fullmatch(r"lora_unet_\w+\.(lora_down\.weight|lora_up\.weight|alpha)", k) for k in exported
    ), sorted(exported)[:4]
    pipe = build_tiny_pipeline(family)
    base = unet_output(pipe)
    pipe.load_lora_weights(str(style_files[family]), adapter_name="peft")
    pipe.load_lora_weights(str(out), adapter_name="kohya")
    outputs = {}
    for name in ("peft", "kohya"):
        pipe.set_adapters(name)
        outputs[name] = unet_output(pipe)
    assert (outputs["peft"] - base).abs().max() > 1e-4, "the LoRA changes nothing, so equality would prove nothing"
    difference = (outputs["kohya"] - outputs["peft"]).abs().max().item()
    assert difference <= TOLERANCE, f"{family}: the kohya export's UNet output differs by {difference:.2e}"


def test_export_header_has_kohya_and_paircustom_metadata_and_refuses_to_overwrite(style_files, tmp_path, capsys):
    from safetensors import safe_open

    out = tmp_path / "kohya.safetensors"
    assert main(["export", str(style_files["sdxl"]), "-o", str(out)]) == 0
    with safe_open(str(out), "pt") as file:
        header = file.metadata()
    assert header["ss_network_module"] == "networks.lora" and header["ss_network_dim"] == "4"
    assert header["ss_base_model_version"] == "sdxl_base_v1-0" and header["ss_sdxl"] == "True"
    assert read_adapter(out)[1] == read_adapter(style_files["sdxl"])[1], "the paircustom metadata did not survive"
    before = out.read_bytes()
    with pytest.raises(SystemExit) as refused:
        main(["export", str(style_files["sd"]), "-o", str(out)])
    assert refused.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [out.name]
    assert main(["export", str(style_files["sd"]), "-o", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != before


def test_file_for_another_architecture_names_family_and_first_differing_layer(style_files, tmp_path):
    """An SD 1.x file (768-wide text conditioning) on tiny SD (32 wide), as kohya writes it."""
    peft = load_file(style_files["sd"])
    widened = wider_context(peft)
    path = tmp_path / "sd15.safetensors"
    save_file(kohya(widened), path)
    pipe = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    with pytest.raises(UserError) as refused:
        pipe.load_style(path, suffix=SUFFIX)
    message = str(refused.value)
    first = sorted(k for k in widened if ".attn2.to_" in k and "lora_A" in k)[0][len("unet.") : -len(".lora_A.weight")]
    assert "an SD 1.x model" in message and f"first differing layer is {first} (file: 768 -> 32" in message, message
    assert message.count(". ") == 0 and message.endswith("trained on."), message


def test_kohya_conv_layers_load_as_the_same_peft_layers(style_files, tmp_path):
    """SD 1.x kohya files also adapt the 1x1 convolutions proj_in/proj_out: (r, in, 1, 1) and (out, r, 1, 1)."""
    peft = load_file(style_files["sd"])
    generator = torch.Generator().manual_seed(1)
    for module in ("down_blocks.0.attentions.0.proj_in", "up_blocks.1.attentions.0.proj_out"):
        peft[f"unet.{module}.lora_A.weight"] = torch.randn(2, 32, 1, 1, generator=generator) * 0.1
        peft[f"unet.{module}.lora_B.weight"] = torch.randn(32, 2, 1, 1, generator=generator) * 0.1
    save_file(peft, tmp_path / "peft.safetensors")
    save_file(kohya(peft), tmp_path / "kohya.safetensors")
    pipe = StyleGuidedPipeline(build_tiny_pipeline("sd"))
    for name in ("peft", "kohya"):
        pipe.load_style(tmp_path / f"{name}.safetensors", name=name, suffix=SUFFIX)
    assert read_style(tmp_path / "kohya.safetensors").tensors.keys() == peft.keys()
    difference = (styled_latents(pipe, "kohya") - styled_latents(pipe, "peft")).abs().max().item()
    assert difference <= TOLERANCE, f"kohya conv layers differ from the peft layout's by {difference:.2e}"
