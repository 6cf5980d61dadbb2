"""Benchmarks: speed and memory (``python -m paircustom.bench.perf``, see ``perf``) and whether a style is learnt
(``python -m paircustom.bench.quality``, see ``quality``)."""

# The cheaper style-guidance settings of issue 14 (StyleGuidedPipeline options), measured for speed by ``perf``
# ("1 style, <label>") and for quality by ``quality`` (method "pair-sg-<key>"): key -> (label, options).
# The settings without "forecast" hold the last deltas (style_reuse "hold", the only rule until 2026-11-28).
CHEAP_GUIDANCE = {
    "i2": ("style_interval 2", dict(style_interval=2, style_reuse="hold")),
    "i4": ("style_interval 4", dict(style_interval=4, style_reuse="hold")),
    "i2-end0.8": ("style_interval 2, style_end 0.8", dict(style_interval=2, style_end=0.8, style_reuse="hold")),
    "adaptive": ("adaptive (style_interval 8, style_tolerance 0.1)",
                 dict(style_interval=8, style_tolerance=0.1, style_reuse="hold")),
    # the same reuse with the deltas forecast along a line (``StyleSchedule``; the default since 2026-11-28)
    "i2-forecast": ("style_interval 2, forecast", dict(style_interval=2, style_reuse="forecast")),
    "i4-forecast": ("style_interval 4, forecast", dict(style_interval=4, style_reuse="forecast")),
    "adaptive-forecast": ("adaptive (style_interval 8, style_tolerance 0.1), forecast",
                          dict(style_interval=8, style_tolerance=0.1, style_reuse="forecast")),
}
