"""revise: reason-informed video editing with a unified model (ReViSE)."""

__version__ = "0.1.0"

from .errors import ReviseInputError  # noqa: E402
from .models import ReviseModel  # noqa: E402
from .pipelines import ReviseEditPipeline  # noqa: E402

__all__ = ["ReviseEditPipeline", "ReviseInputError", "ReviseModel", "__version__"]
