"""The course website: the executed notebooks as stored, as HTML pages (`course.py site`).

    python tools/site.py                 # build into build/site/ (open build/site/index.html)
    python tools/site.py --out DIR       # build elsewhere
    python tools/site.py --clean         # forget the previous build (full rebuild)

Nothing is executed: the pages show the outputs stored in notebooks/*.ipynb. The sources are
staged under build/site-src/ (only files whose content changed are rewritten, so a second build
rebuilds only what changed): a home page generated from course_map.toml (the course table, with a
link to each notebook that exists), every notebook, README.md ("About the course"), ERRATA.md
and the repository's documents they link to, followed link by link, and the syllabus and
glossary (tools/syllabus.py, from course_map.toml and glossary.toml). Sphinx (site/conf.py: myst-nb
with execution off, the furo theme, MathJax 3 from local files, Sphinx's own search) then writes
build/site/, which needs nothing from outside itself when viewed.

This module is named site.py, as the stdlib's `site`: import it by path (tests/test_site.py),
never by `import site`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from course_lib.profile import load_course_map, run_time_text  # noqa: E402

CONF_DIR = REPO / "site"
NOTEBOOKS = REPO / "notebooks"
BUILD = REPO / "build"
STAGE = BUILD / "site-src"
OUT = BUILD / "site"
# The pages besides the home page and the notebooks, with their titles in the navigation. The
# documents they link to (data/README.md, bench/..., LICENSE) are staged too, found by following
# their local links.
PAGES = {"README.md": "About the course", "ERRATA.md": "Errata: where the seed guide is wrong"}
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def say(msg: str) -> None:
    print(f"[site] {msg}", flush=True)


# --------------------------------------------------------------------------- the home page


def notebook_link_cell(nb: dict, present: set[str]) -> str:
    """The title, linked to the notebook's page when the notebook exists in notebooks/."""
    title = nb["title"].replace("|", "\\|")
    if nb["file"] in present:
        return f"[{title}](notebooks/{nb['file']})"
    return f"{title} (planned)" if nb["status"] != "ready" else title


def course_table(cmap: dict, present: set[str]) -> str:
    """The course map as a Markdown table: links, seed sections, run time, status."""
    rows = [
        "| # | Notebook | Seed sections | Run time (ci, 2 CPU cores) | Teaching time | Status |",
        "|---|---|---|---|---|---|",
    ]
    for nb in cmap["notebook"]:
        teach = f"{nb['teach_minutes']} min" if nb.get("teach_minutes") else ""
        rows.append(
            f"| {nb['id']} | {notebook_link_cell(nb, present)} | {', '.join(nb['seed_sections'])} "
            f"| {run_time_text(nb, 'ci')} | {teach} | {nb['status']} |"
        )
    return "\n".join(rows)


def readme_intro(readme: Path) -> str:
    """The README's first paragraph (what the course is), or '' when there is none."""
    if not readme.is_file():
        return ""
    paragraphs = readme.read_text(encoding="utf-8").split("\n\n")
    for p in paragraphs:
        p = p.strip()
        if p and not p.startswith(("#", "<!--", "[!", "!")):
            return " ".join(p.split())
    return ""


# The teaching kit's pages (tools/syllabus.py), generated from the course map and glossary.toml.
TEACHING = {"syllabus": "Syllabus", "glossary": "Glossary (English - 中文)"}


def teaching_pages(cmap: dict) -> dict[str, bytes]:
    """The syllabus (with its prerequisite graph) and the glossary, as staged files."""
    if str(REPO / "tools") not in sys.path:
        sys.path.append(str(REPO / "tools"))
    import syllabus

    sections = {nb["id"]: syllabus.notebook_sections(nb) for nb in cmap["notebook"]}
    return {
        "syllabus.md": syllabus.syllabus_page(cmap, sections).encode(),
        syllabus.GRAPH_PNG: syllabus.prerequisite_png(cmap),
        "glossary.md": syllabus.glossary_page(syllabus.load_glossary(), cmap).encode(),
    }


def home_page(cmap: dict, present: set[str], extra_docs: list[str]) -> str:
    """index.md: the course table, then the (hidden) tables of contents of the navigation."""
    from coursemap import coverage_sentence

    known = {nb["file"] for nb in cmap["notebook"]}
    nb_docs = [f"notebooks/{nb['file'][:-6]}" for nb in cmap["notebook"] if nb["file"] in present]
    nb_docs += [f"notebooks/{f[:-6]}" for f in sorted(present - known)]
    intro = readme_intro(REPO / "README.md")
    parts = [
        "# LLMs from the ground up",
        "",
        intro,
        "",
        "Each page below is a notebook as stored in the repository, with the outputs and figures "
        "its last execution produced; nothing is re-run to build this site. To run the "
        "notebooks yourself, see [About the course](README.md#quickstart).",
        "",
        "## The course map",
        "",
        course_table(cmap, present),
        "",
        coverage_sentence(cmap),
        "",
        "```{toctree}",
        ":hidden:",
        ":caption: Notebooks",
        "",
        *nb_docs,
        "```",
        "",
        "```{toctree}",
        ":hidden:",
        ":caption: About",
        "",
        *[f"{title} <{doc[:-3]}>" for doc, title in PAGES.items() if (REPO / doc).is_file()],
        "```",
        "",
        "```{toctree}",
        ":hidden:",
        ":caption: Teaching",
        "",
        *[f"{title} <{doc}>" for doc, title in TEACHING.items()],
        "```",
    ]
    if extra_docs:
        parts += ["", "```{toctree}", ":hidden:", ":caption: Reference", "", *extra_docs, "```"]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- staging


def local_links(md: Path) -> list[Path]:
    """The repository files a Markdown file links to (anchors dropped; remote links skipped)."""
    out = []
    for target in LINK.findall(md.read_text(encoding="utf-8")):
        if REMOTE.match(target) or target.startswith("#"):
            continue
        path = (md.parent / target.split("#", 1)[0]).resolve()
        if path.is_file() and path.is_relative_to(REPO) and ".venv" not in path.parts:
            out.append(path)
    return out


def linked_documents(start: list[Path]) -> list[Path]:
    """Every repository file reachable from `start` through local Markdown links (notebooks,
    which are staged anyway, are not followed)."""
    seen: dict[Path, None] = {}
    todo = [p for p in start if p.is_file()]
    while todo:
        p = todo.pop(0)
        if p in seen or p.suffix == ".ipynb":
            continue
        seen[p] = None
        if p.suffix == ".md":
            todo += local_links(p)
    return list(seen)


def write_if_changed(dst: Path, data: bytes) -> None:
    """Write only when the content differs: Sphinx rebuilds by modification time."""
    if dst.is_file() and dst.read_bytes() == data:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)


def stage(stage_dir: Path = STAGE) -> list[str]:
    """Write the site's sources into `stage_dir`; return their paths (relative, sorted).

    Files left there by an earlier build that are no longer sources are removed.
    """
    cmap = load_course_map(REPO / "course_map.toml")
    present = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    wanted: dict[str, bytes] = {}
    for name in sorted(present):
        wanted[f"notebooks/{name}"] = (NOTEBOOKS / name).read_bytes()
    docs = linked_documents([REPO / p for p in PAGES])
    extra_docs = []
    for path in docs:
        rel = path.relative_to(REPO).as_posix()
        wanted[rel] = path.read_bytes()
        if path.suffix == ".md" and rel not in PAGES:
            extra_docs.append(rel[:-3])
    wanted.update(teaching_pages(cmap))
    wanted["index.md"] = home_page(cmap, present, sorted(extra_docs)).encode()
    for rel, data in wanted.items():
        write_if_changed(stage_dir / rel, data)
    for path in sorted(stage_dir.rglob("*"), reverse=True):
        rel = path.relative_to(stage_dir).as_posix()
        if path.is_file() and rel not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return sorted(wanted)


# --------------------------------------------------------------------------- building


def sphinx_command(stage_dir: Path, out: Path, doctrees: Path, strict: bool = True) -> list[str]:
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(CONF_DIR)]
    cmd += ["-d", str(doctrees)]
    if strict:
        cmd += ["-W", "--keep-going"]
    return cmd + [str(stage_dir), str(out)]


def build(
    out: Path = OUT,
    stage_dir: Path = STAGE,
    doctrees: Path | None = None,
    clean: bool = False,
    strict: bool = True,
) -> float:
    """Stage the sources and run Sphinx; return the seconds it took. Raises on failure."""
    start = time.time()
    out, stage_dir = Path(out), Path(stage_dir)
    doctrees = Path(doctrees) if doctrees is not None else stage_dir.parent / "site-doctrees"
    if clean:
        for d in (out, stage_dir, doctrees):
            if d.is_dir():
                shutil.rmtree(d)
    stage(stage_dir)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = sphinx_command(stage_dir, out, doctrees, strict)
    code = subprocess.run(cmd, cwd=REPO, env=env).returncode
    if code != 0:
        raise RuntimeError(f"sphinx-build failed (exit {code}); its messages are above")
    return time.time() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="course.py site", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (build/site/)")
    parser.add_argument("--clean", action="store_true", help="rebuild everything")
    parser.add_argument(
        "--no-strict", action="store_true", help="do not turn Sphinx warnings into errors"
    )
    args = parser.parse_args(argv)
    try:
        seconds = build(args.out, clean=args.clean, strict=not args.no_strict)
    except RuntimeError as e:
        say(str(e))
        return 1
    say(f"built {args.out / 'index.html'} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
