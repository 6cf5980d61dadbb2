"""Tiny random pipelines built in code, each family's real scheduler config: SD / SDXL (``unet``) and SD3 / Flux
(``flow``), for tests and benchmarks.
"""
