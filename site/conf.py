"""Sphinx configuration of the course website (`python3 tools/course.py site`).

tools/site.py stages the sources (the generated home page, the executed notebooks as stored,
README.md, ERRATA.md and the documents they link to) under build/site-src/ and runs sphinx-build
with this folder as its configuration directory. Nothing is executed, and nothing is loaded from
outside the site when a page is viewed: the theme ships its assets, MathJax 3 is copied from a
Python package into _static/mathjax/, and search is Sphinx's own (a local index).
"""

from __future__ import annotations

import shutil
from pathlib import Path

project = "LLMs from the ground up"
author = "the course's authors"
copyright = "the course's authors; code MIT, notebook prose and figures CC BY 4.0"

extensions = ["myst_nb"]  # myst_nb brings myst_parser: Markdown pages and notebooks
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = []

# --------------------------------------------------------------------------- notebooks

nb_execution_mode = "off"  # the stored outputs are the course's record: never re-execute
nb_merge_streams = True  # stdout written in pieces reads as one block, as in JupyterLab
# No notebook stores widget state today; should one, myst-nb would add require.js and the
# widget manager from a CDN. Keep the site self-contained instead.
nb_ipywidgets_js: dict = {}
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

# --------------------------------------------------------------------------- Markdown

myst_enable_extensions = ["dollarmath", "amsmath"]
# GitHub-style anchors, so README.md#about-the-guide (as written in ERRATA.md) resolves.
myst_heading_anchors = 3

# --------------------------------------------------------------------------- maths

# MathJax 3 from local files (tools/site.py copies them from the django-static-mathjax wheel into
# _static/mathjax/ after the build); a relative path is taken relative to _static/.
mathjax_path = "mathjax/tex-chtml.js"

# --------------------------------------------------------------------------- HTML

html_theme = "furo"  # its CSS, JS and icons are inside the package; it uses system fonts
html_title = "LLMs from the ground up"
html_static_path = ["static"]
html_favicon = "favicon.svg"  # without one, browsers ask for /favicon.ico: a 404 in the console
html_css_files = ["course.css"]
html_last_updated_fmt = None
html_show_sourcelink = False  # the .ipynb sources are large; the pages show everything
html_copy_source = False
html_theme_options = {
    "navigation_with_keys": True,
    "top_of_page_buttons": [],  # no "edit this page" buttons pointing at a forge
}
html_permalinks_icon = "#"
language = "en"


def setup(app):
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def _copy_mathjax(app, exc):
    """Copy MathJax 3 into <out>/_static/mathjax/ (what mathjax_path points at)."""
    if exc is not None or app.builder.format != "html":
        return
    src = mathjax_source()
    dst = Path(app.outdir) / "_static" / "mathjax"
    dst.mkdir(parents=True, exist_ok=True)
    for name in MATHJAX_PARTS:
        s, d = src / name, dst / name
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)
        else:
            shutil.copy2(s, d)


# The combined component, plus what it loads on demand: TeX packages (autoload), the CommonHTML
# fonts, the menu and its accessibility extensions (assistive MathML is on by default).
MATHJAX_PARTS = ["tex-chtml.js", "input", "output/chtml", "ui", "a11y", "sre"]


def mathjax_source() -> Path:
    """The es5/ folder of MathJax 3 inside the django-static-mathjax package (import: mathjax)."""
    try:
        import mathjax  # django-static-mathjax: MathJax 3.2 under mathjax/static/mathjax/es5
    except ImportError as e:
        raise RuntimeError(
            "MathJax for the course website comes from the PyPI package django-static-mathjax "
            "(it only ships files; Django is not needed): pip install django-static-mathjax"
        ) from e
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise RuntimeError(f"{es5} lacks tex-chtml.js: an unexpected django-static-mathjax")
    return es5
