"""The README's code map names every module of the package, and nothing that is not there (issue 11)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "paircustom"


def code_map() -> dict[str, str]:
    """{first column: whole row} of the table under "## Code map"."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Code map"):]
    section = section[:section.index("\n## ", 1)]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| `")]
    return {row[1]: "|".join(row) for row in rows}


def test_code_map_names_every_module_and_only_existing_ones():
    rows = code_map()
    named = {name for first in rows for name in re.findall(r"`([^`]+)`", first)}
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    packages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert named == modules | packages, (f"missing from the code map: {sorted((modules | packages) - named)}; "
                                         f"in the map but not in the package: {sorted(named - modules - packages)}")
    for package in packages:
        row = next(text for first, text in rows.items() if f"`{package}`" in first)
        inner = {p.name for p in (PACKAGE / package).glob("*.py") if p.name != "__init__.py"}
        missing = sorted(name for name in inner if f"`{name}`" not in row)
        assert not missing, f"the code map's {package} row does not name {missing}"
