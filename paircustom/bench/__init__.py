"""Benchmarks: speed and memory (``python -m paircustom.bench.perf``, see ``perf``) and whether a style is learnt
(``python -m paircustom.bench.quality``, see ``quality``)."""

# The cheaper style-guidance settings of issue 14 (StyleGuidedPipeline options), measured for speed by ``perf``
# ("1 style, <label>") and for quality by ``quality`` (method "pair-sg-<key>"): key -> (label, options).
CHEAP_GUIDANCE = {
    "i2": ("style_interval 2", dict(style_interval=2)),
    "i4": ("style_interval 4", dict(style_interval=4)),
    "i2-end0.8": ("style_interval 2, style_end 0.8", dict(style_interval=2, style_end=0.8)),
    "adaptive": ("adaptive (style_interval 8, style_tolerance 0.1)", dict(style_interval=8, style_tolerance=0.1)),
    # the same reuse with the deltas forecast along a line instead of held (``StyleSchedule``)
    "i2-forecast": ("style_interval 2, forecast", dict(style_interval=2, style_reuse="forecast")),
    "i4-forecast": ("style_interval 4, forecast", dict(style_interval=4, style_reuse="forecast")),
    "adaptive-forecast": ("adaptive (style_interval 8, style_tolerance 0.1), forecast",
                          dict(style_interval=8, style_tolerance=0.1, style_reuse="forecast")),
}
