"""Batch generation: (prompt, seed) jobs from a prompts file and a seed list, one image each.

Every image is made alone, from its own seed, so it does not depend on which other
images are made or by which process: the set of files that N processes write
(each taking its share through accelerate's ``split_between_processes``) is the set one
process writes, byte for byte.  File names carry the prompt's line number, a few of its
words and the seed; the PNG text chunks carry the whole prompt and the seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..config.checks import MAX_SEED, check_number
from ..errors import UserError

MAX_JOBS = 100_000


@dataclass(frozen=True)
class Job:
    index: int  # the prompt's number in the file (from 0, comment and blank lines not counted)
    prompt: str
    seed: int
    path: Path  # the image
    compare: Path  # its base | styled sheet (written with --compare)


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"the prompts file '{path}' is a folder; give a text file with one prompt per line.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"the prompts file '{path}' does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the prompts file '{path}' as UTF-8 text ({type(error).__name__}).") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise UserError(f"the prompts file '{path}' has no prompts; write one prompt per line.")
    return prompts


def parse_seeds(text: str) -> list[int]:
    """ "0-3" -> [0, 1, 2, 3]; "0,5,7-8" -> [0, 5, 7, 8]; repeats refused."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise UserError(f"--seeds takes whole numbers and ranges such as 0-3 or 0,5,7-9; got {text!r}.")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        check_number("a seed", high, 0, MAX_SEED, integer=True)
        if high < low:
            raise UserError(f"the seed range {part.strip()} runs backwards; write it as {high}-{low}.")
        if len(seeds) + high - low + 1 > MAX_JOBS:
            raise UserError(f"--seeds {text} asks for more than {MAX_JOBS} seeds; split the work into several runs.")
        seeds.extend(range(low, high + 1))
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text} names a seed twice; each seed would write the same image again.")
    return seeds


def slug(prompt: str, length: int = 40) -> str:
    """A few words of the prompt that are safe in a file name: "A photo of a cat!" -> "a-photo-of-a-cat"."""
    words = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")
    if len(words) > length:  # whole words only, unless the first is already too long
        words = words[: length + 1].rsplit("-", 1)[0] if "-" in words[: length + 1] else words[:length]
    return words or "prompt"


def jobs(prompts: list[str], seeds: list[int], output: str | Path) -> list[Job]:
    """Every (prompt, seed) pair, prompt by prompt: <output stem>-<index>-<words>-s<seed><suffix>."""
    if len(prompts) * len(seeds) > MAX_JOBS:
        raise UserError(
            f"{len(prompts)} prompts x {len(seeds)} seeds is more than {MAX_JOBS} images; split the "
            "work into several runs."
        )
    output = Path(output)
    width = max(3, len(str(len(prompts) - 1)))
    made = []
    for index, prompt in enumerate(prompts):
        for seed in seeds:
            name = f"{output.stem}-{index:0{width}d}-{slug(prompt)}-s{seed}"
            made.append(
                Job(
                    index,
                    prompt,
                    seed,
                    output.with_name(name + output.suffix),
                    output.with_name(name + "-compare" + output.suffix),
                )
            )
    return made
