"""Figures (matplotlib, imported lazily inside each function).  Import submodules directly, e.g.
``from lieconv.plots.dynamics import plot_trajectories``."""

__all__: list[str] = []
