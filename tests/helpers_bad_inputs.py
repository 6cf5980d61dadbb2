"""Builders of bad files for the bad-input tests: damaged images, style files and checkpoints."""

from __future__ import annotations

import json
import os
import pickle  # noqa: S403  only to WRITE a hostile file; paircustom itself never unpickles
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file


def png_bomb(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid PNG header declaring width x height greyscale pixels, in under 100 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    return path


def noise_image(path: Path, width: int, height: int) -> Path:
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(path)
    return path


def read_style(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(path), framework="pt") as file:
        return {key: file.get_tensor(key) for key in file.keys()}, dict(file.metadata() or {})


def edited_style(source: Path, target: Path, tensors=None, metadata=None, **fields) -> Path:
    """A copy of ``source`` with tensors changed by ``tensors(dict)`` and metadata fields replaced by ``fields``."""
    data, header = read_style(source)
    if tensors is not None:
        data = tensors(data)
    if fields:
        header["paircustom"] = json.dumps({**json.loads(header["paircustom"]), **fields})
    if metadata is not None:
        header = metadata
    save_file(data, str(target), metadata=header)
    return target


def first_key(data: dict, part: str) -> str:
    return next(key for key in sorted(data) if part in key)


def with_value(part: str, value: float):
    """Set the first tensor whose key contains ``part`` to ``value`` everywhere."""

    def change(data):
        key = first_key(data, part)
        return {**data, key: torch.full_like(data[key], value)}

    return change


def reshaped_B(data):
    """B (out, r) whose rank no longer matches A's: malformed in itself."""
    key = first_key(data, "lora_B")
    return {**data, key: torch.zeros(data[key].shape[0], data[key].shape[1] + 1)}


def widened_B(data):
    """B one output row wider than the layer it belongs to: well formed, but not for this UNet."""
    key = first_key(data, "lora_B")
    return {**data, key: torch.zeros(data[key].shape[0] + 1, data[key].shape[1])}


def without_B(data):
    key = first_key(data, "lora_B")
    return {k: v for k, v in data.items() if k != key}


def integer_weights(data):
    return {k: v.to(torch.int32) for k, v in data.items()}


class Exploit:
    """Unpickling this creates the file ``marker``: the proof that a pickle would have run code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickled_checkpoint(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"step": Exploit(marker)}))
    return path


def written_by(checkpoint: Path, processes: int) -> Path:
    """Make a real checkpoint look written by ``processes`` processes (one generator state each)."""
    tensors, header = read_style(checkpoint)
    state = json.loads(header["paircustom_checkpoint"])
    for rank in range(1, processes):
        tensors[f"generator.{rank}"] = tensors["generator"].clone()
    save_file(
        tensors, str(checkpoint), metadata={"paircustom_checkpoint": json.dumps({**state, "num_processes": processes})}
    )
    return checkpoint


def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores permission bits, so /sys then)."""
    if os.geteuid() == 0:
        if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and _can_create(Path("/sys")):
            pytest.skip("no read-only folder available to root here")
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def _can_create(folder: Path) -> bool:
    try:
        (folder / ".paircustom-test").touch()
    except OSError:
        return False
    (folder / ".paircustom-test").unlink()
    return True


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every file and folder under ``roots`` with its size, mtime and content."""
    state = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            if path.is_dir():
                state[str(path)] = ("dir",)
            elif path.is_file():
                state[str(path)] = (path.stat().st_size, path.stat().st_mtime_ns, path.read_bytes())
    return state


def wider_context(data: dict) -> dict:
    """The cross-attention key/value inputs widened to 768, as in a file made for SD 1.x."""
    return {
        k: torch.zeros(v.shape[0], 768) if ".attn2.to_k.lora_A." in k or ".attn2.to_v.lora_A." in k else v
        for k, v in data.items()
    }


# ---- model folders (issue 30: files inside a model folder are not trusted) ----------------------------------------


def model_copy(model: Path, target: Path, settings=None, drop=(), pickled: str | None = None) -> Path:
    """A copy of a model folder (weights hard-linked) with paircustom.json replaced by ``settings`` (text or a
    JSON value), the components in ``drop`` removed and, with ``pickled``, that component's weights pickled."""
    import shutil

    shutil.copytree(model, target, copy_function=os.link)
    for name in drop:
        shutil.rmtree(target / name)
    if settings is not None:  # a new file, not the hard-linked original
        (target / "paircustom.json").unlink(missing_ok=True)
        text = settings if isinstance(settings, (str, bytes)) else json.dumps(settings)
        (target / "paircustom.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    if pickled is not None:
        for weights in (target / pickled).glob("*.safetensors"):
            weights.unlink()
        (target / pickled / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": Exploit(target / "pwned")}))
    return target


def only_index(model: Path, target: Path) -> Path:
    target.mkdir()
    (target / "model_index.json").write_bytes((model / "model_index.json").read_bytes())
    return target


# ---- checkpoints whose header or tensors lie ---------------------------------------------------------------------


def edited_checkpoint(path: Path, header=None, tensors=None) -> Path:
    """Rewrite a real checkpoint with its header changed by ``header(dict)`` and tensors by ``tensors(dict)``."""
    data, meta = read_style(path)
    state = json.loads(meta["paircustom_checkpoint"])
    if header is not None:
        state = header(state)
    if tensors is not None:
        data = tensors(data)
    save_file(data, str(path), metadata={"paircustom_checkpoint": json.dumps(state)})
    return path


def set_key(key, value):
    return lambda state: {**state, key: value}


def set_tensor(key, make):
    """Replace the first tensor whose name starts with ``key`` by ``make(old tensor)``."""

    def change(data):
        name = next(k for k in sorted(data) if k.startswith(key))
        return {**data, name: make(data[name])}

    return change


# ---- inputs and outputs that are not regular files ---------------------------------------------------------------


def fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def link_to(path: Path, target: str) -> Path:
    path.unlink(missing_ok=True)
    path.symlink_to(target)
    return path
