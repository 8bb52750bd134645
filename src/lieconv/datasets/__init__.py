"""Data sets.  Each application's module imports its own dependencies; only torch here."""

from .springs import SpringsConfig, SpringsDataset, load_springs

__all__ = ["SpringsConfig", "SpringsDataset", "load_springs"]
