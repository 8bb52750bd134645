"""Task models over :mod:`lieconv.nn` (no dataset imports).

==========================  =========================================================  ==========
model                       what it is                                                 paper
==========================  =========================================================  ==========
``ImageLieResNet``          images read as points on a pixel grid -> class logits      §5.1
``MoleculeLieResNet``       atoms (positions, species features) -> one property        §5.2
``HLieResNet``              Hamiltonian with a LieResNet potential (HLieConv)           §6
``LieResNetDynamics``       LieConv-T(2): dz/dt directly from a non-pooled LieResNet    §6, Tab. 6
``FC``, ``HFC``             MLP baselines: dz/dt, or a Hamiltonian                     §6.3
``OGN``, ``HOGN``           graph-network baselines: dz/dt, or a Hamiltonian           §6.3
==========================  =========================================================  ==========

``build_baseline(name, ...)`` builds a spring baseline by name (``MODELS``).
"""

from .baselines import FC, HFC, HOGN, MODELS, OGN, ModelDynamics, build_baseline
from .hamiltonian import HLieResNet, LieResNetDynamics
from .image import ImageLieResNet
from .molecule import MoleculeLieResNet

__all__ = [
    "ImageLieResNet",
    "MoleculeLieResNet",
    "HLieResNet",
    "LieResNetDynamics",
    "FC",
    "HFC",
    "OGN",
    "HOGN",
    "MODELS",
    "ModelDynamics",
    "build_baseline",
]
