"""The trade-off plot of the quality benchmark (``paircustom.bench.quality``): fidelity against leakage and
structure, one line per method over its scale sweep, one panel per style."""

from __future__ import annotations

from pathlib import Path

from ..files.images import atomic_write

COLOURS = {"prompt-only": "tab:gray", "oracle": "black", "pair-sg": "tab:blue", "pair-lora": "tab:cyan",
           "no-orth-sg": "tab:orange", "db-lora": "tab:red", "db-sg": "tab:purple", "slider": "tab:green",
           "pair-sg-3pairs": "tab:olive"}


def plot(results: dict, path: Path) -> None:
    """Fidelity (x) against leakage (top row) and structure kept (bottom row), one panel per style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = results["config"]
    styles = config["styles"]
    fig, axes = plt.subplots(2, len(styles), figsize=(3.2 * len(styles), 6.2), squeeze=False)
    records = [r for r in results["records"] if r["split"] == "all"]
    for column, style in enumerate(styles):
        for row, metric in enumerate(("leakage", "structure")):
            ax = axes[row][column]
            for method in config["methods"]:
                rows = sorted((r for r in records if r["style"] == style and r["method"] == method),
                              key=lambda r: r["scale"])
                points = [(r["fidelity"], r[metric], r["scale"]) for r in rows if r[metric] is not None]
                if not points:
                    continue
                x, y, scales = zip(*points)
                ax.plot(x, y, "o-", color=COLOURS.get(method), label=method, markersize=4)
                for xi, yi, s in zip(x, y, scales):
                    ax.annotate(f"{s:g}", (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
            for key, marker in (("none", "s"), ("ideal", "*")):   # constant: in the tables (often far left)
                ref = next(r for r in records if r["style"] == style and r["method"] == key)
                if ref[metric] is not None:
                    ax.plot([ref["fidelity"]], [ref[metric]], marker, color="black", markersize=7,
                            label=f"{key} (reference)")
            if not ax.lines:
                ax.text(0.5, 0.5, "analyzer cannot\nread this style", ha="center", va="center",
                        transform=ax.transAxes, fontsize=8)
            ax.axvline(0, color="grey", linewidth=0.5)
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(style if row == 0 else "", fontsize=9)
            ax.set_xlabel("style fidelity" if row == 1 else "", fontsize=8)
            ax.set_ylabel(("leakage" if row == 0 else "structure kept") if column == 0 else "", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6, loc="best")
    fig.suptitle("Fidelity vs leakage / structure kept\n(points: style-guidance or LoRA scale)",
                 fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda temp: fig.savefig(temp, format="png", dpi=110))
    plt.close(fig)
