"""The README's code map names every module of the package, and nothing that is not there (issue 11)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "paircustom"


def code_map() -> dict[str, str]:
    """{first column: whole row} of the table under "## Code map"."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Code map") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| `")]
    return {row[1]: "|".join(row) for row in rows}


def test_code_map_names_every_module_and_only_existing_ones():
    rows = code_map()
    named = {name for first in rows for name in re.findall(r"`([^`]+)`", first)}
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    packages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert named == modules | packages, (
        f"missing from the code map: {sorted((modules | packages) - named)}; "
        f"in the map but not in the package: {sorted(named - modules - packages)}"
    )
    for package in packages:
        row = next(text for first, text in rows.items() if f"`{package}`" in first)
        inner = {p.name for p in (PACKAGE / package).glob("*.py") if p.name != "__init__.py"}
        missing = sorted(name for name in inner if f"`{name}`" not in row)
        assert not missing, f"the code map's {package} row does not name {missing}"


def _number(value) -> str:
    """As the README writes numbers: 5, 0.2, 1e-4."""
    return f"{value:.0e}".replace("e-0", "e-") if 0 < abs(value) < 0.01 else f"{value:g}"


def test_defaults_table_states_the_configs_defaults():
    """The README's table of defaults is a copy; it must say what TrainConfig, the shipped model's paircustom.json
    and GenerateConfig say."""
    from paircustom.config.generate import GENERATE
    from paircustom.config.model_names import folder_settings
    from paircustom.config.train import DEFAULT_TARGETS, PAPER_DEFAULTS, TrainConfig, model_defaults
    from paircustom.shapes import MODEL_DIR

    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Defaults") : text.index("## How training differs")]
    decay = _number(TrainConfig.__dataclass_fields__["weight_decay"].default)
    shapes = model_defaults(folder_settings(str(MODEL_DIR)))
    columns = [PAPER_DEFAULTS] + [shapes] * (MODEL_DIR / "paircustom.json").is_file()

    def row(setting: str, make) -> str:
        return f"| {setting} | " + " | ".join(make(d) for d in columns) + " |"

    rows = [
        row("content and style rank (alpha = rank)", lambda d: str(d["rank"])),
        row("optimizer", lambda d: "AdamW, lr %s, weight decay %s" % (_number(d["learning_rate"]), decay)),
        row("steps / style loss from step", lambda d: "%d / %d" % (d["max_steps"], d["style_start_step"])),
        row("batch / gradient accumulation", lambda d: "1 / %d" % d["gradient_accumulation"]),
        row("resolution", lambda d: str(d["resolution"])),
        f"| target modules | `{', '.join(DEFAULT_TARGETS)}` | same |",
        f"| generation: CFG / style scale / steps / style start fraction | {_number(GENERATE.guidance_scale)} / "
        f"{_number(GENERATE.style_scale)} / {GENERATE.num_inference_steps} / "
        f"{_number(GENERATE.style_start_fraction)} | same |",
    ]
    missing = [row for row in rows if not any(line.startswith(row) for line in table.splitlines())]
    assert not missing, f"the README's defaults table does not say: {missing}"
