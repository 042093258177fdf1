"""Sphinx configuration of the pyg-fer documentation site (``make docs``).

The build is offline: MathJax is served from the ``sphinx-mathjax-offline`` wheel, no
intersphinx inventory is fetched, and the tutorials in ``docs/tutorials/`` are executed by
sphinx-gallery at toy size on the CPU.
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# autodoc imports pyg_fer from the tree being built, not from an installed copy.
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pyg_fer  # noqa: E402

project = "pyg-fer"
author = "pyg-fer contributors"
copyright = "2026, pyg-fer contributors"
release = pyg_fer.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/mathjax: equations render offline
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "tutorials/*.md", "tutorials/*.rst"]

# API reference: one page per public name, generated from the docstrings.
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # MessagePassing's internals, overridden by the convs: PyG documents them, as PyG's API
    # pages leave them out too.
    "exclude-members": "message, aggregate, message_and_aggregate, update, propagate, "
                       "edge_update, explain_message",
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
add_module_names = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Shapes:" (PyG's section) stays a heading over its own bullet list.
napoleon_custom_sections = ["Shapes"]
napoleon_use_ivar = True

# A reference to a pyg_fer name that has no page is an error. Other libraries have no
# inventory here (the build is offline), so references to them render as plain code, as do
# private helpers (``pyg_fer.nn.conv._fused``) and unqualified names.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!pyg_fer\.).*"),
    (r"py:.*", r"pyg_fer\.(.*\.)?_.*"),
]

# Markdown pages (docs/*.md) through MyST.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# Tutorials: runnable scripts executed at build time, rendered with their output.
sphinx_gallery_conf = {
    "examples_dirs": "tutorials",
    "gallery_dirs": "generated/tutorials",
    "filename_pattern": r"/tutorial_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "run_stale_examples": True,  # the pages always show what the current code prints
    "show_memory": False,
    "write_computation_times": False,
    "show_signature": False,
    "plot_gallery": "True",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
}

html_theme = "furo"
html_title = f"pyg-fer {release}"
html_static_path = ["_static"]
html_css_files = ["pyg_fer.css"]
html_show_sourcelink = False

# Repository files outside docs/ that a site page includes: Markdown links to them (written for
# readers browsing the repository) point to that page on the site.
INCLUDED_FILES = {str(ROOT / "benchmarks" / "README"): "benchmarks"}


def _link_included_files(app, doctree):
    from sphinx import addnodes

    for node in doctree.findall(addnodes.pending_xref):
        if node.get("refdomain") == "doc" and node.get("reftarget") in INCLUDED_FILES:
            node["reftarget"] = INCLUDED_FILES[node["reftarget"]]


def _constant_doc_comment(app, what, name, obj, options, lines):
    """Describe a re-exported constant (``pyg_fer.data.PROTOTYPES``) by the ``#:`` comment at
    its definition; autodoc only reads the comments of the module it is asked about."""
    if what != "data":
        return
    from sphinx.pycode import ModuleAnalyzer

    short = name.rpartition(".")[2]
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith("pyg_fer.") or getattr(module, short, None) is not obj:
            continue
        try:
            doc = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", short))
        except Exception:  # a module without source: nothing to read
            continue
        if doc:
            lines[:] = list(doc)
            return
    lines[:] = []


def _drop_boilerplate_docstrings(app, what, name, obj, options, lines):
    """A ``forward`` without its own docstring inherits ``torch.nn.Module.forward``'s
    ("Define the computation performed at every call...") or MessagePassing's; show only the
    signature instead."""
    if what != "method" or not name.endswith(".forward"):
        return
    import inspect

    import torch
    from torch_geometric.nn import MessagePassing

    inherited = {inspect.getdoc(torch.nn.Module.forward), inspect.getdoc(MessagePassing.forward)}
    if inspect.getdoc(obj) in inherited and getattr(obj, "__doc__", None) is None:
        lines[:] = []


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """NamedTuple fields are described in the class's ``Attributes:`` section already."""
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.connect("doctree-read", _link_included_files)
    app.connect("autodoc-process-docstring", _constant_doc_comment)
    app.connect("autodoc-process-docstring", _drop_boilerplate_docstrings)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
