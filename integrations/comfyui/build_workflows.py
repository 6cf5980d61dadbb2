"""Write the example workflows in both of ComfyUI's formats from one description each.

    python integrations/comfyui/build_workflows.py [COMFYUI_FOLDER]    (in ComfyUI's environment)

API format (``api_workflows/*_api.json``, what POST /prompt takes): {node id: {"class_type", "inputs"}}, an
input either a value or [source node id, output index].  UI format (``example_workflows/*.json``, what the
page's Load button, drag-and-drop and its Templates list, under "paircustom", take): LiteGraph nodes with link
slots and widget values, laid out in columns.  The UI file is derived from the API one with the nodes' own
INPUT_TYPES, so the two always describe the same graph.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # this checkout's paircustom, also when it is not installed
from paircustom.config.generate import GENERATE  # noqa: E402  (after the path above)

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
SHAPES_PROMPT = "a red circle on a black background"


def _sampling(
    model: list,
    styled_clip: list,
    text: str,
    negative: str,
    cfg: float,
    steps: int,
    scheduler: str,
    size: int,
    style_file: str,
    prefix: str,
) -> dict:
    """The style-guidance graph shared by both examples, from a loader's MODEL and CLIP outputs."""
    return {
        "2": {
            "class_type": "PairCustomStyleLoader",
            "inputs": {"model": model, "style_file": style_file, "scale": GENERATE.style_scale, "suffix": ""},
        },
        "3": {"class_type": "PairCustomStylePrompt", "inputs": {"clip": styled_clip, "text": text, "styles": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": styled_clip}},
        "5": {
            "class_type": "PairCustomStyleGuider",
            "inputs": {
                "model": model,
                "styled": ["3", 0],
                "negative": ["4", 0],
                "cfg": cfg,
                "style_start": GENERATE.style_start_fraction,
                "style_end": 1.0,
            },
        },
        "6": {"class_type": "RandomNoise", "inputs": {"noise_seed": 0}},
        "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "8": {
            "class_type": "BasicScheduler",
            "inputs": {"model": model, "scheduler": scheduler, "steps": steps, "denoise": 1.0},
        },
        "9": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "10": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["6", 0],
                "guider": ["5", 0],
                "sampler": ["7", 0],
                "sigmas": ["8", 0],
                "latent_image": ["9", 0],
            },
        },
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 2]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": prefix}},
    }


def demo_style_file() -> str:
    """The name of the style file 'paircustom demo' trains from its bundled pair."""
    from paircustom.demo import DemoConfig
    from paircustom.shapes.examples import EXAMPLES

    example = DemoConfig().example
    return f"{example}-{EXAMPLES[example].style}.safetensors"


def shapes_api() -> dict:
    """The embedded shapes model with the bundled pair's style ('paircustom demo' writes the file; copy it into
    models/loras).  EmptyLatentImage counts 8 pixels per latent cell, the shapes VAE 4: 128 there is 64x64 here.
    The Style Sampler node draws the same picture in one node."""
    graph = {"1": {"class_type": "PairCustomShapesModelLoader", "inputs": {}}}
    graph.update(
        _sampling(
            ["1", 0],
            ["1", 1],
            SHAPES_PROMPT,
            "",
            GENERATE.guidance_scale,
            20,
            "simple",
            128,
            demo_style_file(),
            "paircustom_shapes",
        )
    )
    graph["13"] = {
        "class_type": "PairCustomStyleSampler",
        "inputs": {
            "model": ["1", 0],
            "clip": ["1", 1],
            "vae": ["1", 2],
            "styles": ["2", 0],
            "prompt": SHAPES_PROMPT,
            "negative_prompt": "",
            "seed": 0,
            "steps": 20,
            "cfg": GENERATE.guidance_scale,
            "sampler_name": "euler",
            "scheduler": "simple",
            "width": 64,
            "height": 64,
            "style_start": GENERATE.style_start_fraction,
            "style_end": 1.0,
        },
    }
    graph["14"] = {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "paircustom_sampler"}}
    return graph


def sdxl_api() -> dict:
    """A template for SDXL: put the checkpoint in models/checkpoints and a style trained on it in models/loras."""
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}}
    graph.update(
        _sampling(
            ["1", 0],
            ["1", 1],
            "a photo of a dog",
            "",
            GENERATE.guidance_scale,
            30,
            "normal",
            1024,
            "my_sdxl_style.safetensors",
            "paircustom_sdxl",
        )
    )
    return graph


def _slots(node_class, inputs: dict) -> tuple[list, list]:
    """(link inputs, widget values) in the order of the node's INPUT_TYPES."""
    declared = node_class.INPUT_TYPES()
    links, widgets = [], []
    for name, spec in {**declared.get("required", {}), **declared.get("optional", {})}.items():
        kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
        if isinstance(kind, list) or kind in WIDGET_TYPES:
            widgets.append(inputs[name])
            if options.get("control_after_generate"):
                widgets.append("fixed")
        elif name in inputs:
            links.append((name, kind, inputs[name]))
    return links, widgets


def to_ui(api: dict, node_classes: dict) -> dict:
    """The LiteGraph form of an API graph: nodes in columns by depth, one link per connected input."""
    depth: dict[str, int] = {}

    def level(node_id: str) -> int:
        if node_id not in depth:
            sources = [v[0] for v in api[node_id]["inputs"].values() if isinstance(v, list)]
            depth[node_id] = 1 + max((level(s) for s in sources), default=-1)
        return depth[node_id]

    nodes, links, rows = [], [], {}
    outputs: dict[tuple[str, int], list[int]] = {}
    for node_id, node in api.items():
        node_class = node_classes[node["class_type"]]
        inputs, widgets = _slots(node_class, node["inputs"])
        column = level(node_id)
        row = rows.setdefault(column, [0])
        slots = []
        for name, kind, (source, index) in inputs:
            link_id = len(links) + 1
            links.append([link_id, int(source), index, int(node_id), len(slots), kind])
            outputs.setdefault((source, index), []).append(link_id)
            slots.append({"name": name, "type": kind, "link": link_id})
        height = 60 + 26 * (len(slots) + len(widgets))
        nodes.append(
            {
                "id": int(node_id),
                "type": node["class_type"],
                "pos": [40 + 340 * column, 40 + row[0]],
                "size": [300, height],
                "flags": {},
                "order": 0,
                "mode": 0,
                "inputs": slots,
                "properties": {"Node name for S&R": node["class_type"]},
                "widgets_values": widgets,
            }
        )
        row[0] += height + 40
    for order, node in enumerate(sorted(nodes, key=lambda n: depth[str(n["id"])])):
        node["order"] = order
        node_class = node_classes[node["type"]]
        names = getattr(node_class, "RETURN_NAMES", None) or node_class.RETURN_TYPES
        node["outputs"] = [
            {"name": name, "type": kind, "slot_index": i, "links": outputs.get((str(node["id"]), i), [])}
            for i, (name, kind) in enumerate(zip(names, node_class.RETURN_TYPES))
        ]
    return {
        "last_node_id": max(n["id"] for n in nodes),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.75, "offset": [10, 10]}},  # the view: zoomed so that the text shows
        "version": 0.4,
    }


def workflows(node_classes: dict) -> dict[str, dict]:
    """Path under the pack -> content of every example workflow."""
    files = {}
    for name, api in (("shapes", shapes_api()), ("sdxl_template", sdxl_api())):
        files[f"api_workflows/{name}_api.json"] = api
        files[f"example_workflows/{name}.json"] = to_ui(api, node_classes)
    return files


def main(comfyui: str) -> None:
    sys.dont_write_bytecode = True  # leave the ComfyUI folder as it is
    sys.path.insert(0, comfyui)
    import asyncio

    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))  # ComfyUI's own extras
    asyncio.run(nodes.load_custom_node(str(HERE)))
    for name, content in workflows(nodes.NODE_CLASS_MAPPINGS).items():
        (HERE / name).write_text(json.dumps(content, indent=1) + "\n")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(HERE.parents[1].parent / "shared" / "comfyui"))
