"""lieconv: convolutional networks equivariant to Lie groups on arbitrary continuous data.

The flat public API (everything a model needs; no Lightning import)::

    from lieconv import Points, LieConv, LieResNet, get_group, MatrixLieGroup, assert_equivariant

Task models live in :mod:`lieconv.models` (``ImageLieResNet``, ``MoleculeLieResNet``,
``HLieResNet``, ``FC``, ``HFC``, ``OGN``, ``HOGN``), the trainer in :mod:`lieconv.training`, the
built-in applications in :mod:`lieconv.tasks`.
"""

__version__ = "0.1.0"  # the single source of the version: pyproject.toml reads it (tool.setuptools.dynamic)

from .data import Lifted, Points, from_pyg, pad_ragged
from .groups import GROUPS, LieGroup, MatrixLieGroup, get_group
from .lifting import lift
from .nn import LieConv, LieResNet
from .runtime import reuse_freed_memory
from .testing import assert_equivariant

__all__ = [
    "__version__",
    "Points",
    "Lifted",
    "pad_ragged",
    "from_pyg",
    "LieGroup",
    "MatrixLieGroup",
    "GROUPS",
    "get_group",
    "lift",
    "LieConv",
    "LieResNet",
    "assert_equivariant",
]

reuse_freed_memory()  # large tensors reuse freed heap memory instead of fresh pages; see lieconv.runtime
