"""Task models over lieconv.nn (no dataset imports).  Import submodules directly, e.g.
``from lieconv.models.baselines import HOGN``."""
