"""Slide decks of the notebooks, as stored, for teaching from (`course.py slides`).

    python tools/slides.py                   # every notebook into build/slides/
    python tools/slides.py --out DIR         # build elsewhere
    python tools/slides.py 05_softmax_and_cross_entropy   # only the decks named (stem or file)

One reveal.js deck (a self-contained HTML file: figures are inlined) per notebook in notebooks/,
and an index.html linking them. Nothing is executed: the decks show the outputs stored in the
notebooks. Nothing is loaded from outside build/slides/ either: reveal.js 5 is copied from the
PyPI package sphinx-revealjs (which ships it; only its files are used, Sphinx is not run) into
build/slides/reveal.js/, and MathJax 3 from django-static-mathjax into build/slides/mathjax/, as
the course website does (site/conf.py).

Where the slides fall comes from the notebooks' structure, with cell tags to override it (the
course's execute command keeps only `tags` in cell metadata, so nbconvert's own `slideshow`
metadata would be erased; it is written here on an in-memory copy before exporting):

    first cell (the title)            a new slide
    a markdown cell opening `# `/`## ` a new slide (each `## ` section heading is its own cell)
    a markdown cell opening `### `    a new sub-slide (below the section's slide)
    an empty cell                     skipped
    any other cell                    on the current slide (long outputs are kept: the slide
                                      scrolls)
    tag `slide`, `subslide`, `fragment`, `skip` or `notes`   that, whatever the structure says
                                      (the first of these tags in this order wins: skip, notes,
                                      slide, subslide, fragment)

In a deck: arrow keys or space to move, `s` for the speaker view (notes), `o` for the overview,
`?` for the keys; each slide's address is in the URL (#/3/1).
"""

from __future__ import annotations

import argparse
import copy
import html
import importlib.util
import os
import re
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
OUT = REPO / "build" / "slides"
SLIDES_DIR = REPO / "slides"  # the deck template and its stylesheet
TEMPLATES = SLIDES_DIR / "templates"
TEMPLATE = "course_reveal"
COURSE_CSS = "course.css"

REVEAL_DIR = "reveal.js"  # under the output folder
MATHJAX_DIR = "mathjax"
# MathJax 3's combined component and what it loads on demand (as site/conf.py copies them).
MATHJAX_PARTS = ["tex-chtml.js", "input", "output/chtml", "ui", "a11y", "sre"]
# reveal.js: the core, the one theme used (white, with its fonts: the other themes import web
# fonts from a CDN, so they are not copied) and the speaker-notes plugin.
REVEAL_THEME = "white"
REVEAL_PARTS = [
    "dist/reset.css",
    "dist/reveal.css",
    "dist/reveal.js",
    f"dist/theme/{REVEAL_THEME}.css",
    "dist/theme/fonts/source-sans-pro",
    "plugin/notes/notes.js",
    "LICENSE",
]

SLIDE_TAGS = ("skip", "notes", "slide", "subslide", "fragment")  # precedence, first wins
HEADING = re.compile(r"^(#{1,6})\s")


def say(msg: str) -> None:
    print(f"[slides] {msg}", flush=True)


# --------------------------------------------------------------------------- where slides fall


def default_slide_type(cell: dict, index: int) -> str:
    """The slide type of a cell from the notebook's structure alone (nbconvert's names: `slide`,
    `subslide`, `skip`, or `-` for "on the current slide")."""
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(source)
    if index == 0:
        return "slide"
    if not source.strip() and not cell.get("outputs"):
        return "skip"
    if cell.get("cell_type") == "markdown":
        m = HEADING.match(source.lstrip("\n"))
        if m:
            level = len(m.group(1))
            if level <= 2:
                return "slide"
            if level == 3:
                return "subslide"
    return "-"


def slide_type(cell: dict, index: int) -> str:
    """A cell's slide type: its tag if it has one of SLIDE_TAGS, else the structure's."""
    tags = set(cell.get("metadata", {}).get("tags", []) or [])
    for tag in SLIDE_TAGS:
        if tag in tags:
            return tag
    return default_slide_type(cell, index)


def with_slideshow_metadata(nb):
    """A copy of the notebook whose cells carry nbconvert's `slideshow` metadata."""
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        cell.metadata["slideshow"] = {"slide_type": slide_type(cell, index)}
    return nb


# --------------------------------------------------------------------------- assets


def reveal_source() -> Path:
    """reveal.js (5.x) as shipped inside the PyPI package sphinx-revealjs."""
    try:
        import sphinx_revealjs
    except ImportError as e:
        raise RuntimeError(
            "reveal.js for the slide decks comes from the PyPI package sphinx-revealjs (it ships "
            "reveal.js's files; only those are used): pip install sphinx-revealjs"
        ) from e
    root = Path(sphinx_revealjs.__file__).parent / "_static" / "revealjs"
    if not (root / "dist" / "reveal.js").is_file():
        raise RuntimeError(f"{root} lacks dist/reveal.js: an unexpected sphinx-revealjs")
    return root


def mathjax_source() -> Path:
    """The es5/ folder of MathJax 3 inside django-static-mathjax, found as the website finds it
    (site/conf.py: mathjax_source), so both use the same copy."""
    spec = importlib.util.spec_from_file_location("course_site_conf", REPO / "site" / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf.mathjax_source()


def copy_parts(src: Path, dst: Path, parts: list[str]) -> None:
    """Copy src/<part> to dst/<part>, skipping files already there with the same size and time
    (a second build copies nothing) and source maps (never loaded); remove any other file under
    dst (left by an older build)."""
    wanted = set()
    for part in parts:
        s = src / part
        files = [s] if s.is_file() else sorted(p for p in s.rglob("*") if p.is_file())
        for f in files:
            if f.suffix == ".map":
                continue
            d = dst / f.relative_to(src)
            wanted.add(d)
            st = f.stat()
            if d.is_file() and d.stat().st_size == st.st_size and d.stat().st_mtime == st.st_mtime:
                continue
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, d)
    for f in [p for p in dst.rglob("*") if p.is_file() and p not in wanted]:
        f.unlink()


def copy_assets(out: Path) -> None:
    copy_parts(reveal_source(), out / REVEAL_DIR, REVEAL_PARTS)
    copy_parts(mathjax_source(), out / MATHJAX_DIR, MATHJAX_PARTS)
    shutil.copy2(SLIDES_DIR / COURSE_CSS, out / COURSE_CSS)


# --------------------------------------------------------------------------- decks


def notebook_title(nb, fallback: str) -> str:
    """The text of the notebook's first `# ` heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def exporter():
    from nbconvert import SlidesExporter

    return SlidesExporter(
        template_name=TEMPLATE,
        extra_template_basedirs=[str(TEMPLATES)],
        reveal_url_prefix=REVEAL_DIR,
        reveal_theme=REVEAL_THEME,
        reveal_transition="none",
        reveal_number="c/t",
        reveal_width="1280",
        reveal_height="800",
        mathjax_url=f"{MATHJAX_DIR}/tex-chtml.js",
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


def build_deck(path: Path, out: Path, exp=None) -> tuple[Path, str]:
    """Write out/<stem>.html from the notebook at `path`; return it and the deck's title."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    title = notebook_title(nb, path.stem)
    exp = exp or exporter()
    resources = {
        "metadata": {"name": path.stem, "path": str(path.parent)},
        "course_title": title,
        "course_css": COURSE_CSS,
    }
    body, _ = exp.from_notebook_node(with_slideshow_metadata(nb), resources=resources)
    target = out / f"{path.stem}.html"
    target.write_text(body, encoding="utf-8")
    return target, title


def index_page(decks: list[tuple[Path, str]]) -> str:
    items = "\n".join(
        f'  <li><a href="{html.escape(p.name)}">{html.escape(title)}</a></li>' for p, title in decks
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>LLMs from the ground up: slides</title>
<link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.5; color: #222; }}
ul {{ list-style: none; padding: 0; }}
li {{ margin: 0.3rem 0; }}
kbd {{ border: 1px solid #bbb; border-radius: 3px; padding: 0 0.25rem; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>LLMs from the ground up: slides</h1>
<p>One deck per notebook, with the outputs stored in it. Move with the arrow keys or
<kbd>space</kbd>; <kbd>s</kbd> opens the speaker view, <kbd>o</kbd> the overview, <kbd>?</kbd> the
other keys.</p>
<ul>
{items}
</ul>
</body>
</html>
"""


def notebooks(names: list[str]) -> list[Path]:
    every = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        found = [p for p in every if p.stem == stem]
        if not found:
            raise SystemExit(f"no notebook {name!r} in {NOTEBOOKS}")
        chosen += found
    return chosen


def build(out: Path = OUT, names: list[str] | None = None, quiet: bool = False) -> float:
    """Build the decks (all, or those named) and the index into `out`; return the seconds."""
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out)
    exp = exporter()
    decks = []
    for path in notebooks(names or []):
        t = time.time()
        decks.append(build_deck(path, out, exp))
        if not quiet:
            say(f"{path.stem}.html ({time.time() - t:.1f} s)")
    # A deck whose notebook is gone (renamed, removed) goes too.
    stems = {p.stem for p in NOTEBOOKS.glob("[0-9]*.ipynb")}
    for stale in [p for p in out.glob("[0-9]*.html") if p.stem not in stems]:
        stale.unlink()
    # The index lists every deck in the folder, so building one deck keeps the others listed.
    present = {p.name for p in out.glob("[0-9]*.html")}
    titles = {p.name: title for p, title in decks}
    listed = []
    for path in sorted(NOTEBOOKS.glob("[0-9]*.ipynb")):
        name = f"{path.stem}.html"
        if name in present:
            if name not in titles:
                import nbformat

                titles[name] = notebook_title(nbformat.read(path, as_version=4), path.stem)
            listed.append((out / name, titles[name]))
    (out / "index.html").write_text(index_page(listed), encoding="utf-8")
    return time.time() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="course.py slides", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks to build (stem or file name)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args(argv)
    try:
        seconds = build(args.out.resolve(), args.names)
    except RuntimeError as e:
        say(f"error: {e}")
        return 1
    say(f"built into {args.out} in {seconds:.1f} s; open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
