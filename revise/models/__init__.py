"""The model side: each component of the unified model in its own module."""

from .connectors import Adapter, VisionHead, VisualContextAdapter
from .context import SPECIAL_TOKEN_NAMES, ContextTokens, assemble_context
from .revise_model import ReviseModel
from .understanding import MLPDownsampleProjector, UnderstandingModel

__all__ = ["Adapter", "ContextTokens", "MLPDownsampleProjector", "ReviseModel", "SPECIAL_TOKEN_NAMES",
           "UnderstandingModel", "VisionHead", "VisualContextAdapter", "assemble_context"]
