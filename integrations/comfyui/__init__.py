"""paircustom's ComfyUI node pack: Pair Customization style guidance (Jones et al., arXiv 2405.01536) as nodes.

Install: link or copy this folder into ComfyUI's custom_nodes (e.g. custom_nodes/paircustom) and
`pip install paircustom` in ComfyUI's Python environment.  See docs/comfyui.md.
"""

from .comfy_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
