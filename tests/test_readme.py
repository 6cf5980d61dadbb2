"""The README stays a short user's guide, and the docs it links to stay true to the code (issues 11 and 29).

- README.md: at most 250 lines; its first screen says what this is, how to install and how to run the demo; its
  command-line synopsis names every subcommand.
- docs/development.md: the code map names every module of the package, and nothing that is not there.
- docs/method.md: the defaults table says what the config dataclasses say.
- README.md, CHANGELOG.md and docs/*.md: every relative link and every repository path they name exists.
"""

import re
from importlib import import_module
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "paircustom"
README = ROOT / "README.md"
README_MAX_LINES = 250
FIRST_SCREEN = 40  # lines a newcomer sees before scrolling
# The pages whose links and paths must hold; docs/research/ is a dated log and keeps the paths of its day.
PAGES = [README, ROOT / "CHANGELOG.md", ROOT / "experiments" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def section(path: Path, heading: str) -> str:
    """The text of ``path`` from the Markdown heading ``heading`` (any level) to the next heading of that level."""
    text = path.read_text()
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, flags=re.M)
    assert match, f"{path.relative_to(ROOT)} has no heading {heading!r}"
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{len(match.group(1))}}} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


# --- README: short, and its first screen is what a newcomer needs --------------------------------------------------


def test_readme_is_at_most_250_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}); move "
        "reference material to a page under docs/ and link it"
    )


@pytest.mark.parametrize(
    "what, pattern",
    [
        ("the install command", r'^pip install .*-e "\.\[test\]"'),
        ("the demo command", r"&& paircustom demo\b"),
        ("the test command", r"^python -m pytest -q\b"),
        ("the project's name and what it does", r"\*\*paircustom learns a visual style from one pair of images\*\*"),
        ("the paper it implements", r"Pair Customization.*\n?.*arXiv 2405\.01536"),
        ("the model families", r"SD3 and Flux"),
    ],
)
def test_first_screen_says_what_this_is_and_how_to_start(what, pattern):
    first = "\n".join(README.read_text().splitlines()[:FIRST_SCREEN])
    assert re.search(pattern, first, flags=re.M), f"README.md's first {FIRST_SCREEN} lines lack {what} ({pattern})"


def test_the_first_code_block_is_install_and_demo_then_the_tests():
    """The two commands a newcomer runs come first, and CI runs the same test command."""
    block = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ['pip install torch==2.13.0 -e ".[test]" && paircustom demo', "python -m pytest -q"], commands
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text(), "CI does not run the README's test command"


def subcommands() -> set[str]:
    """The subcommands of the installed ``paircustom`` script, read from its own ``--help``."""
    import contextlib
    import io

    target = re.search(r'^paircustom = "([\w.]+:\w+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M).group(1)
    module, function = target.split(":")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        getattr(import_module(module), function)(["--help"])
    return set(re.search(r"\{([a-z,]+)\}", out.getvalue()).group(1).split(","))


def test_command_line_synopsis_names_every_subcommand():
    synopsis = section(README, "Command line")
    named = set(re.findall(r"^paircustom ([a-z]+)\b", synopsis, flags=re.M))
    commands = subcommands()
    assert {"train", "generate", "stylize", "info", "export", "ui", "demo"} <= commands, commands
    assert named == commands, (
        f"the README's synopsis lacks {sorted(commands - named)} and names "
        f"{sorted(named - commands)}, which `paircustom --help` does not list"
    )


# --- docs/development.md: the code map ------------------------------------------------------------------------------


def code_map() -> list[tuple[list[str], str]]:
    """[(names in the first column, the whole row)] of the table under "## Code map"; names are paths under
    paircustom/, a folder ending in "/"."""
    rows = [
        line for line in section(ROOT / "docs" / "development.md", "Code map").splitlines() if line.startswith("| `")
    ]
    return [(re.findall(r"`([^`]+)`", row.split("|")[1]), row) for row in rows]


def package_modules() -> list[str]:
    """Every module of the package as a path under paircustom/ ("basis.py", "shapes/world.py", ...)."""
    return sorted(
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py") and "__pycache__" not in p.parts
    )


def test_code_map_names_only_what_exists():
    rows = code_map()
    assert rows, "docs/development.md has no code map rows"
    for names, _ in rows:
        for name in names:
            path = PACKAGE / name
            ok = (path / "__init__.py").is_file() if name.endswith("/") else path.is_file() and name.endswith(".py")
            assert ok, (
                f"the code map names {name!r}, which is not a {'package' if name.endswith('/') else 'module'} "
                f"of paircustom/"
            )


def test_code_map_names_every_module():
    """A module is named by its path in a first column, or in the row of the folder (package) that holds it."""
    rows = code_map()
    listed = {name for names, _ in rows for name in names}
    folders = {name: row for names, row in rows for name in names if name.endswith("/")}
    missing = []
    for module in package_modules():
        if module in listed:
            continue
        holders = [folder for folder in folders if module.startswith(folder)]
        if not holders:
            missing.append(module)
            continue
        folder = max(holders, key=len)  # the innermost listed folder names it, by its path within that folder
        inner = module[len(folder) :]
        if f"`{inner}`" not in folders[folder]:
            missing.append(f"{module} (in the {folder} row)")
    assert not missing, f"the code map in docs/development.md does not name {missing}"
    packages = sorted(f"{p.parent.relative_to(PACKAGE).as_posix()}/" for p in PACKAGE.glob("*/__init__.py"))
    unlisted = [p for p in packages if p not in listed and not any(name.startswith(p) for name in listed)]
    assert not unlisted, f"the code map names neither these subpackages nor their modules: {unlisted}"


# --- docs/method.md: the defaults table -----------------------------------------------------------------------------


def _number(value) -> str:
    """As the docs write numbers: 5, 0.2, 1e-4."""
    return f"{value:.0e}".replace("e-0", "e-") if 0 < abs(value) < 0.01 else f"{value:g}"


def test_defaults_table_states_the_configs_defaults():
    """The defaults table in docs/method.md is a copy; it must say what TrainConfig, the shipped model's
    paircustom.json and GenerateConfig say."""
    from paircustom.config.generate import GENERATE
    from paircustom.config.model_names import folder_settings
    from paircustom.config.train import DEFAULT_TARGETS, PAPER_DEFAULTS, TrainConfig, model_defaults
    from paircustom.shapes import MODEL_DIR

    table = section(ROOT / "docs" / "method.md", "Defaults")
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
        "| generation: CFG / style scale / steps / style start fraction | "
        f"{_number(GENERATE.guidance_scale)} / {_number(GENERATE.style_scale)} / "
        f"{GENERATE.num_inference_steps} / {_number(GENERATE.style_start_fraction)} | same |",
    ]
    missing = [row for row in rows if not any(line.startswith(row) for line in table.splitlines())]
    assert not missing, f"the defaults table in docs/method.md does not say: {missing}"


# --- every page: links and repository paths -------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_lead_somewhere(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    targets = re.findall(r"\]\(([^()\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    broken = []
    for target in targets:
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)} links to what does not exist: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_repository_paths_named_exist(page):
    """A path such as `benchmarks/results/perf.md` or `paircustom/shapes/world.py` in backticks is a file or
    folder of this repository (paths with placeholders such as {md,json} or <output> are left out)."""
    named = re.findall(
        r"`((?:paircustom|benchmarks|experiments|tests|docs|configs|tools|\.ci)/[^`\s{}<>*]*)`", page.read_text()
    )
    if page.name == "CHANGELOG.md":  # history names paths that have moved on purpose
        named = [path for path in named if "RESULTS.md" not in path]
    missing = sorted({path for path in named if not (ROOT / path).exists()})
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"
