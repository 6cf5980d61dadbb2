"""The model families: the ``Family`` interface (``family``), SD / SDXL (``unet``), SD3 / Flux (``flow``), the
registry and ``load_pipeline`` (``registry``), the training forward processes (``forward``), pixels <-> latents
(``latents``) and what a model folder allows before it loads (``plan``).
"""
