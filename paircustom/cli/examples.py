"""The examples at the end of ``paircustom --help`` and ``paircustom train --help`` (also in docs/own-pair.md)."""

EXAMPLES = """\
examples, with a pair of your own on the embedded model (CPU, nothing to download):
  paircustom train my-scene.png my-scene-outlined.png --subject scene --style outlined -o outlined.safetensors
  paircustom generate "a photo of a green ring on a white background" -s outlined.safetensors --compare
  paircustom stylize another-scene.png -s outlined.safetensors --compare -o another-outlined.png

The embedded model draws 64x64 flat-colour scenes (one to three circles, squares, triangles or rings in nine
colours on a plain background), so it learns styles that change colours or patterns (inverted or quantized
colours, a tint, outlines, blocks, bands, a vignette), not photos. The style words it knows: tinted, outlined,
blocky, quantized, banded, vignetted. How to draw such a pair: docs/own-pair.md.

with a photo pair on SDXL (a GPU; downloads the model):
  paircustom train dog.png dog-art.png --subject dog --style "digital art" \\
      --model stabilityai/stable-diffusion-xl-base-1.0 -o dog-art.safetensors
"""
