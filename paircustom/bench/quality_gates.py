"""Efficiency against the oracle, Pareto comparisons and the issue-28 gates of the quality benchmark.

    efficiency   fidelity / the oracle's fidelity at the same style scale λ and on the same captions
                 (``paircustom.bench.oracle``): the share of what any style term reaches on this model at that λ
                 that the method reaches.  Only for style-guidance methods (a LoRA scale is no λ); "n/a" where the
                 oracle itself is below ``MIN_ORACLE`` (a ratio to nearly nothing says nothing).

Gates of the family section (issue 28), at one style scale λ for every family (the sweep's λ that passes the most
families on the first gate; every λ's counts are printed too):

    1. pair-sg held-out fidelity >= 0.6 and >= 0.8 x the oracle's, on at least 5 of 6 families;
    2. pair-sg held-out fidelity at least 0.25 above prompt-only (the family word alone, no LoRA), 5 of 6;
    3. pair-sg leakage <= 5% on every family;
    4. pair-sg Pareto-better than DreamBooth-LoRA and the visual slider (held-out fidelity / leakage over their
       scale sweeps, ``pareto_verdict``) on at least 5 of 6.

New-word section: the learned style word (``pair-sg-word``) counts as a gain over the plain method at a λ when its
held-out fidelity is higher on at least 4 of 6 styles (``word_gain_lines``).
"""

from __future__ import annotations

import math

MIN_ORACLE = 0.05
FIDELITY, ORACLE_SHARE, ABOVE_PROMPT, LEAKAGE, SHARE = 0.6, 0.8, 0.25, 0.05, 5 / 6   # the gates; never lowered
WORD_SHARE = 4 / 6   # a learned style word counts as a gain when it beats the plain method on 4 of 6 styles
BASELINES = ("db-lora", "slider")   # the paper's project-page baselines (issue 9: Pareto-better than both)


def pareto_verdict(ours: list[tuple[float, float]], theirs: list[tuple[float, float]]) -> str:
    """Compare two scale sweeps of (fidelity, leakage) points: "ours" when every one of their points is matched or
    beaten on both (fidelity at least, leakage at most) by one of ours and not the other way round, "theirs" for
    the reverse, "neither" when the frontiers cross (or coincide)."""
    def covers(a, b):
        return all(any(fa >= fb and la <= lb for fa, la in a) for fb, lb in b)
    if covers(ours, theirs) != covers(theirs, ours):
        return "ours" if covers(ours, theirs) else "theirs"
    return "neither"


def ratio(fidelity: float | None, oracle: float | None) -> float | None:
    """fidelity / oracle fidelity, None when either is missing or the oracle is below ``MIN_ORACLE``."""
    if fidelity is None or oracle is None or oracle < MIN_ORACLE:
        return None
    return fidelity / oracle


def _index(results: dict) -> dict:
    return {(r["style"], r["method"], r["scale"], r["split"]): r for r in results["records"]}


def efficiency(results: dict, record: dict, index: dict | None = None) -> float | None:
    """``ratio`` of ``record`` to the oracle record of its style, scale and split (None for LoRA-scale methods,
    references and the oracle itself)."""
    from .methods import METHODS

    method = METHODS.get(record["method"])
    if method is None or method.oracle or method.apply != "guidance":
        return None
    oracle = (index or _index(results)).get((record["style"], "oracle", record["scale"], record["split"]))
    return ratio(record["fidelity"], oracle and oracle["fidelity"])


def efficiency_table(results: dict) -> str:
    """Every style-guidance method and scale against the oracle, held-out and training captions ("" without an
    oracle row)."""
    if "oracle" not in results["config"]["methods"]:
        return ""
    index, fmt = _index(results), lambda v, signed=True: "n/a" if v is None else f"{v:+.2f}" if signed else f"{v:.2f}"
    lines = ["| style | oracle | method | λ | held-out fidelity | oracle | efficiency | training fidelity | oracle | "
             "efficiency | leakage |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in results["records"] if r["split"] == "all"):
        if efficiency(results, r, index) is None and (r["style"], "oracle", r["scale"], "all") not in index:
            continue
        if r["method"] == "oracle":
            continue
        cells = []
        for split in ("held-out", "training"):
            own, oracle = index.get((r["style"], r["method"], r["scale"], split)), index.get(
                (r["style"], "oracle", r["scale"], split))
            cells += [fmt(own and own["fidelity"]), fmt(oracle and oracle["fidelity"]),
                      fmt(own and efficiency(results, own, index), False)]
        lines.append(f"| {r['style']} | {r.get('oracle', 'n/a')} | {r['method']} | {r['scale']:g} | "
                     + " | ".join(cells) + f" | {r['leakage']:.2f} |")
    return "\n".join(lines)


def _held_out(index: dict, style: str, method: str, scale: float) -> dict | None:
    return index.get((style, method, scale, "held-out"))


def gate_counts(results: dict, scale: float) -> dict:
    """Per gate 1-3: the families (styles) passing at style scale ``scale``, and the worst leakage."""
    index, styles = _index(results), results["config"]["styles"]
    prompt_scale = next((r["scale"] for r in results["records"] if r["method"] == "prompt-only"), 0.0)
    first, second, leak = [], [], []
    for style in styles:
        ours, oracle = _held_out(index, style, "pair-sg", scale), _held_out(index, style, "oracle", scale)
        prompt, whole = _held_out(index, style, "prompt-only", prompt_scale), index.get((style, "pair-sg", scale, "all"))
        if ours is None:
            continue
        if oracle is not None and ours["fidelity"] >= FIDELITY and ours["fidelity"] >= ORACLE_SHARE * oracle["fidelity"]:
            first.append(style)
        if prompt is not None and ours["fidelity"] - prompt["fidelity"] >= ABOVE_PROMPT:
            second.append(style)
        leak.append(whole["leakage"])
    return dict(first=first, second=second, leakage=max(leak, default=None))


def pareto_wins(results: dict, method: str = "pair-sg", split: str = "held-out") -> list[str] | None:
    """Styles where ``method``'s sweep is Pareto-better than every baseline's (None when one is missing)."""
    methods = results["config"]["methods"]
    if method not in methods or not set(BASELINES) <= set(methods):
        return None
    points: dict = {}
    for r in results["records"]:
        if r["split"] == split:
            points.setdefault((r["style"], r["method"]), []).append((r["fidelity"], r["leakage"]))
    return [s for s in results["config"]["styles"]
            if all(pareto_verdict(points[s, method], points[s, b]) == "ours" for b in BASELINES)]


def word_gain_lines(results: dict, method: str = "pair-sg-word", plain: str = "pair-sg") -> list[str]:
    """Per style scale: the styles where ``method`` (the learned style word) beats ``plain`` on held-out fidelity,
    and whether that holds on at least 4 of 6 (issue 28's rule for a gain); [] when either method is missing."""
    config = results["config"]
    if not {method, plain} <= set(config["methods"]):
        return []
    index, styles = _index(results), config["styles"]
    need = math.ceil(WORD_SHARE * len(styles) - 1e-9)
    lines = []
    for scale in config["style_scales"]:
        pairs = [(s, _held_out(index, s, method, scale), _held_out(index, s, plain, scale)) for s in styles]
        better = [s for s, ours, theirs in pairs if ours and theirs and ours["fidelity"] > theirs["fidelity"]]
        lines.append(f"- {'GAIN' if len(better) >= need else 'NO GAIN'} at λ = {scale:g}: {method} above {plain} "
                     f"(held-out fidelity) on {len(better)} of {len(styles)} styles (need {need}): "
                     f"{', '.join(better) or 'none'}")
    return lines


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def gate_lines(results: dict) -> list[str]:
    """PASS/FAIL lines of the four gates (module docstring), and each λ's counts; [] outside the family section."""
    config = results["config"]
    if config.get("section") != "families" or not {"pair-sg", "oracle", "prompt-only"} <= set(config["methods"]):
        return []
    styles, need = config["styles"], math.ceil(SHARE * len(config["styles"]) - 1e-9)
    counts = {scale: gate_counts(results, scale) for scale in config["style_scales"]}
    best = max(counts, key=lambda s: (len(counts[s]["first"]), len(counts[s]["second"])))
    at = counts[best]
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    lines = [f"- {verdict(len(at['first']) >= need)} gate 1 at λ = {best:g}: pair-sg held-out fidelity >= "
             f"{FIDELITY} and >= {ORACLE_SHARE} x oracle on {len(at['first'])} of {len(styles)} families (need "
             f"{need}): {', '.join(at['first']) or 'none'}",
             f"- {verdict(len(at['second']) >= need)} gate 2 at λ = {best:g}: >= +{ABOVE_PROMPT} above prompt-only on "
             f"{len(at['second'])} of {len(styles)} families (need {need}): {', '.join(at['second']) or 'none'}",
             f"- {verdict(at['leakage'] is not None and at['leakage'] <= LEAKAGE)} gate 3 at λ = {best:g}: leakage "
             f"<= {LEAKAGE:.0%} on every family (worst {_percent(at['leakage'])})"]
    wins = pareto_wins(results)
    if wins is None:
        lines.append("- FAIL gate 4: not measured (db-lora or slider missing from the run)")
    else:
        lines.append(f"- {verdict(len(wins) >= need)} gate 4: Pareto-better than {' and '.join(BASELINES)} on "
                     f"{len(wins)} of {len(styles)} families (need {need}): {', '.join(wins) or 'none'}")
    ceilings = {r["style"]: r["fidelity"] for r in results["records"]
                if r["method"] == "vae-ceiling" and r["split"] == "held-out"}
    lines.append("- what the VAE allows (held-out f(x_base) through the VAE; gate 1 needs >= "
                 f"{FIDELITY}): " + ", ".join(f"{style} {value:+.2f}" for style, value in ceilings.items()))
    lines.append("- per λ (gate 1 / gate 2 families, worst leakage): " + "; ".join(
        f"λ {s:g}: {len(c['first'])} / {len(c['second'])}, {_percent(c['leakage'])}" for s, c in counts.items()))
    return lines
