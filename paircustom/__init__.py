"""Pair Customization (Jones et al., arXiv 2405.01536): learn a style from one content/style image pair.

    from paircustom import TrainConfig, train_pair, StyleGuidedPipeline

Names are imported on first use, so ``paircustom --help`` does not wait for torch and diffusers.
"""

from importlib import import_module

__version__ = "0.1.0"
_EXPORTS = {
    "TrainConfig": "config.train",
    "train_pair": "training.trainer",
    "StyleGuidedPipeline": "sampling.pipeline",
    "UserError": "errors",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'paircustom' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
