"""Sphinx configuration: API reference from the docstrings (autodoc + napoleon), pages in Markdown
(MyST), built offline.

``make docs`` runs ``sphinx-build -W`` (every warning is an error).  The theme is Sphinx's own
(alabaster), so the build needs only the ``docs`` extra (sphinx, myst-parser) and no network.
Sections of the README (usage, architecture) and examples/README.md are included, not copied.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # document the source tree, installed or not

import lieconv  # noqa: E402

project = "lieconv"
author = "lieconv developers"
copyright = "2026, lieconv developers"
version = release = lieconv.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
html_theme_options = {
    "description": "Lie-group equivariant convolutions on arbitrary continuous data",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}

# autodoc: members in source order; the type hints go into the description, not the signature
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

# napoleon: the library mixes numpy ("Parameters\n----------") and Google ("Args:") sections
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_custom_sections = [("Public API", "notes_style")]

# The README's sections start at "##"; the pages that include them take those headings as titles.
suppress_warnings = ["myst.header"]
