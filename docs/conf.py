"""Sphinx configuration for the nengo-jacobian documentation.

Built in CI with warnings as errors: ``make docs`` runs
``sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="No GPU support detected")
sys.path.insert(0, os.path.abspath(".."))

import nengo_jacobian  # noqa: E402

project = "nengo-jacobian"
author = "the nengo-jacobian developers"
copyright = "2026, " + author  # noqa: A001
release = version = nengo_jacobian.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
]
# `name` in docstrings refers to a Python object (rendered as code, linked if found)
default_role = "py:obj"
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections say it
numpydoc_show_class_members = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
