"""Sphinx configuration for kamlib (built with -W in make test)."""

from __future__ import annotations

import kamlib

project = "kamlib"
author = "kamlib developers"
copyright = "2026, kamlib developers"
release = kamlib.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
autosummary_generate = False
autodoc_typehints = "none"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()
suppress_warnings = ["myst.header"]
html_theme = "pydata_sphinx_theme"
html_title = f"kamlib {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
nitpicky = False
