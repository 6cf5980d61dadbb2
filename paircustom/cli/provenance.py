"""What a generated image records about its inputs (PNG text chunks): file names and content hashes, so that
an image shared with others does not tell them the folders of the machine it was made on.  ``--record-paths``
(``full=True``) adds the absolute paths.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | Path, full: bool = False) -> dict[str, str]:
    """{"file": name, "sha256": hash} of an input file (with ``full`` also "path": its absolute path)."""
    record = {"file": Path(path).name, "sha256": sha256(path)}
    if full:
        record["path"] = str(Path(path).resolve())
    return record


def model_record(model: str, full: bool = False) -> str:
    """A hub id or "shapes" as it is; a local folder by its name only, unless ``full``."""
    path = Path(model)
    if model == "shapes" or not path.is_absolute() and not path.exists():
        return model
    return str(path.resolve()) if full else path.name
