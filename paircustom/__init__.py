"""Pair Customization (Jones et al., arXiv 2405.01536): learn a style from one content/style image pair."""

from .errors import UserError
from .guidance import StyleGuidedPipeline
from .training import TrainConfig, train_pair

__all__ = ["StyleGuidedPipeline", "TrainConfig", "UserError", "train_pair"]
__version__ = "0.1.0"
