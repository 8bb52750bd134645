"""lieconv: convolutional networks equivariant to Lie groups on arbitrary continuous data."""
__version__ = "0.1.0"

from .data import Lifted, Points  # noqa: E402
from .groups import GROUPS, LieGroup, get_group  # noqa: E402

__all__ = ["__version__", "Points", "Lifted", "LieGroup", "GROUPS", "get_group"]
