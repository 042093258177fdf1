"""The documentation site builds with warnings as errors, offline, with every tutorial run.

This is ``make docs`` in a temporary folder: a broken cross-reference, a docstring docutils
cannot parse, a public name without an API page or a tutorial that no longer runs fails it.
"""

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGES = ["pyg_fer.nn", "pyg_fer.models", "pyg_fer.data", "pyg_fer.engine", "pyg_fer.inference",
            "pyg_fer.export", "pyg_fer.explain"]
TUTORIALS = sorted(p.stem for p in (DOCS / "tutorials").glob("tutorial_*.py"))
# A page that loads a script or a stylesheet from the network does not work offline.
REMOTE_ASSET = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]+\"")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for module in ("sphinx", "myst_parser", "sphinx_gallery", "furo"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is missing: install the docs extra (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("docs")
    html = out / "html"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(out / "doctrees"), str(DOCS), str(html)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    log = f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    assert proc.returncode == 0, f"the docs build failed:\n{log}"
    return html


def test_every_public_name_has_an_api_page(site):
    missing = []
    for package in PACKAGES:
        for name in importlib.import_module(package).__all__:
            if not (site / "generated" / "api" / f"{package}.{name}.html").is_file():
                missing.append(f"{package}.{name}")
    assert not missing, f"no API page for {missing}: add them to docs/api/*.rst"


def test_tutorials_ran_and_show_their_output(site):
    assert TUTORIALS, "no docs/tutorials/tutorial_*.py found"
    for name in TUTORIALS:
        page = (site / "generated" / "tutorials" / f"{name}.html").read_text()
        assert "sphx-glr-script-out" in page, f"{name} shows no output"


def test_equations_render_from_local_mathjax(site):
    page = (site / "generated" / "api" / "pyg_fer.nn.RGConv.html").read_text()
    assert 'class="math' in page
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page)
    assert scripts and not scripts[0].startswith(("http:", "https:", "//")), scripts
    local = (site / "generated" / "api" / scripts[0].split("?")[0]).resolve()
    assert local.is_file(), local


def test_no_page_loads_assets_from_the_network(site):
    offenders = {}
    for page in site.rglob("*.html"):
        found = REMOTE_ASSET.findall(page.read_text())
        if found:
            offenders[str(page.relative_to(site))] = found[:2]
    assert not offenders, offenders
