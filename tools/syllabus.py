"""The syllabus and the glossary, generated from course_map.toml and glossary.toml.

    python tools/syllabus.py                       # write build/syllabus/ (SYLLABUS.md, ...)
    python tools/syllabus.py --week-minutes 150    # teaching minutes a week for the schedule
    python tools/syllabus.py --out DIR             # write elsewhere

build/syllabus/ gets SYLLABUS.md (per notebook: objectives, prerequisites, teaching time split
into required and optional sections, stop-and-think questions; the prerequisite graph; a week by
week schedule), prerequisites.png (the graph, drawn with matplotlib: it needs nothing online)
and GLOSSARY.md (the course's terms, English and Chinese). The website (tools/site.py) shows the
same pages. Nothing here is edited by hand: change the course map, the notebooks' section
minutes or glossary.toml, and generate again.

The schedule packs the notebooks into weeks of a given number of teaching minutes (each
notebook's `teach_minutes`), in an order that respects the prerequisites: one after the other,
a notebook split across two weeks only at the boundary of one of its required sections (see
`schedule`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import textwrap
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
if str(REPO / "tools") not in sys.path:
    sys.path.append(str(REPO / "tools"))

from course_lib.profile import load_course_map  # noqa: E402

COURSE_MAP = REPO / "course_map.toml"
GLOSSARY = REPO / "glossary.toml"
NOTEBOOKS = REPO / "notebooks"
OUT = REPO / "build" / "syllabus"
GRAPH_PNG = "prerequisites.png"
# Two 65-minute sessions a week: the course's 16 notebooks fill a 13-week term.
WEEK_MINUTES = 130
TERM_WEEKS = (12, 14)


# --------------------------------------------------------------------------- sections


def notebook_sections(entry: dict, notebooks: Path = NOTEBOOKS) -> list[dict]:
    """The notebook's `## ` sections with their minutes and whether they are optional
    (tools/notebooks.py reads them); [] when the notebook is not on disk."""
    import notebooks as nbtools

    path = notebooks / entry["file"]
    if not path.is_file():
        return []
    return nbtools.sections(json.loads(path.read_text(encoding="utf-8")))


def section_minutes(sections: list[dict]) -> tuple[int, int]:
    """(required, optional) minutes of a notebook's sections."""
    required = sum(s["minutes"] or 0 for s in sections if not s["optional"])
    optional = sum(s["minutes"] or 0 for s in sections if s["optional"])
    return required, optional


# --------------------------------------------------------------------------- the schedule


def topological_order(items: list[dict]) -> list[dict]:
    """`items` ({"id", "minutes", "prerequisites"}) so that each comes after its prerequisites;
    among those that are free to go, the earliest in the given order goes first. Raises on an
    unknown prerequisite or a cycle."""
    by_id = {it["id"]: it for it in items}
    for it in items:
        unknown = [p for p in it["prerequisites"] if p not in by_id]
        if unknown:
            raise ValueError(f"{it['id']}: unknown prerequisites {unknown}")
    done: set[str] = set()
    order: list[dict] = []
    while len(order) < len(items):
        ready = [it for it in items if it["id"] not in done and set(it["prerequisites"]) <= done]
        if not ready:
            left = [it["id"] for it in items if it["id"] not in done]
            raise ValueError(f"the prerequisites form a cycle among {left}")
        order.append(ready[0])
        done.add(ready[0]["id"])
    return order


def schedule(items: list[dict], week_minutes: int) -> list[list[dict]]:
    """Pack the notebooks into weeks of `week_minutes` teaching minutes.

    Each item is {"id", "minutes", "prerequisites", "parts"?}: `parts` are the notebook's
    required sections in order, [(title, minutes), ...], at whose boundaries it may be split
    across weeks (without parts the notebook is one part). The notebook's minutes beyond its
    parts (exercises, questions, wrap-up) go with its last part. Items are taken in topological
    order and laid one after the other: a part goes into the current week when it fits, else it
    opens the next week, so every notebook starts once, its parts stay together in order, and
    it starts after all of its prerequisites end. A part longer than a week is cut into
    week-sized pieces.

    Returns, week by week, [{"id", "minutes", "parts": [titles]}, ...].
    """
    weeks: list[list[dict]] = [[]]
    load = [0]
    for it in topological_order(items):
        parts = [(t, m) for t, m in it.get("parts", []) if m > 0]
        given = sum(m for _, m in parts)
        if not parts or given > it["minutes"]:
            parts = [("the whole notebook", it["minutes"])]
        else:
            title, last = parts[-1]
            parts[-1] = (title, last + it["minutes"] - given)
        for title, minutes in parts:
            while minutes > 0:
                if load[-1] >= week_minutes or (
                    load[-1] + minutes > week_minutes and minutes <= week_minutes and load[-1]
                ):
                    weeks.append([])
                    load.append(0)
                take = min(minutes, week_minutes - load[-1])
                week = weeks[-1]
                if week and week[-1]["id"] == it["id"]:
                    week[-1]["minutes"] += take
                    if week[-1]["parts"][-1] != title:
                        week[-1]["parts"].append(title)
                else:
                    week.append({"id": it["id"], "minutes": take, "parts": [title]})
                load[-1] += take
                minutes -= take
    return [w for w in weeks if w]


def schedule_items(cmap: dict, sections: dict[str, list[dict]] | None = None) -> list[dict]:
    """The course map's notebooks as schedule items: their minutes are `teach_minutes`, their
    parts the required sections (from `sections`, by notebook id)."""
    sections = sections or {}
    return [
        {
            "id": nb["id"],
            "minutes": nb["teach_minutes"],
            "prerequisites": nb["prerequisites"],
            "parts": [
                (s["title"].removeprefix("## "), s["minutes"] or 0)
                for s in sections.get(nb["id"], [])
                if not s["optional"]
            ],
        }
        for nb in cmap["notebook"]
    ]


def schedule_problems(items: list[dict], weeks: list[list[dict]], week_minutes: int) -> list[str]:
    """What is wrong with a schedule: a notebook missing, split apart or short of minutes, a
    week over its minutes, a notebook that starts before a prerequisite ends. [] when good."""
    problems = []
    by_id = {it["id"]: it for it in items}
    slots = [(n, e) for n, week in enumerate(weeks) for e in week]
    order = [e["id"] for _, e in slots]
    for n, week in enumerate(weeks, 1):
        minutes = sum(e["minutes"] for e in week)
        if minutes > week_minutes:
            problems.append(f"week {n} holds {minutes} min, more than {week_minutes}")
    first, last = {}, {}
    for k, i in enumerate(order):
        first.setdefault(i, k)
        last[i] = k
    for i, it in by_id.items():
        if i not in first:
            problems.append(f"{i} is not scheduled")
            continue
        if set(order[first[i] : last[i] + 1]) != {i}:
            problems.append(f"{i} is not scheduled in one piece")
        got = sum(e["minutes"] for _, e in slots if e["id"] == i)
        if got != it["minutes"]:
            problems.append(f"{i} gets {got} min of its {it['minutes']}")
        for p in it["prerequisites"]:
            if p in last and last[p] > first[i]:
                problems.append(f"{i} starts before its prerequisite {p} ends")
    problems += [f"{i} is not a notebook" for i in first if i not in by_id]
    return problems


# --------------------------------------------------------------------------- the graph


def depths(cmap: dict) -> dict[str, int]:
    """Each notebook's depth in the prerequisite graph: the longest chain of prerequisites."""
    out: dict[str, int] = {}
    for it in topological_order(schedule_items(cmap)):
        out[it["id"]] = 1 + max((out[p] for p in it["prerequisites"]), default=-1)
    return out


def prerequisite_png(cmap: dict) -> bytes:
    """The prerequisite graph as a PNG (matplotlib, Agg): one column per depth, an arrow from
    each prerequisite to the notebook that needs it. The same map gives the same bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = depths(cmap)
    columns: dict[int, list[str]] = {}
    for nb in cmap["notebook"]:
        columns.setdefault(depth[nb["id"]], []).append(nb["id"])
    pos = {}
    for d, ids in columns.items():
        for row, i in enumerate(ids):
            pos[i] = (d * 1.0, -row * 1.15)
    titles = {nb["id"]: nb["title"].split(":")[0] for nb in cmap["notebook"]}
    n_cols = max(columns) + 1
    n_rows = max(len(ids) for ids in columns.values())
    fig, ax = plt.subplots(figsize=(1.05 * n_cols + 0.6, 1.1 * n_rows + 0.9), dpi=110)
    box = {"boxstyle": "round,pad=0.3", "fc": "#eef3fb", "ec": "#3465a4", "lw": 1}
    for nb in cmap["notebook"]:
        x, y = pos[nb["id"]]
        label = (
            nb["id"]
            + "\n"
            + "\n".join(textwrap.wrap(titles[nb["id"]], 12, break_long_words=False)[:3])
        )
        ax.text(x, y, label, ha="center", va="center", fontsize=6.5, bbox=box, zorder=3)
        for p in nb["prerequisites"]:
            px, py = pos[p]
            ax.annotate(
                "",
                xy=(x - 0.36, y),
                xytext=(px + 0.36, py),
                arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 0.9},
                zorder=2,
            )
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(-1.15 * (n_rows - 1) - 0.7, 0.7)
    ax.axis("off")
    ax.set_title("Prerequisites: an arrow points from a notebook to one that needs it", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


# --------------------------------------------------------------------------- the pages


def _minutes(n: int) -> str:
    return f"{n // 60} h {n % 60:02d} min" if n >= 60 else f"{n} min"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def notebook_link(nb: dict, prefix: str) -> str:
    return f"[{nb['id']} · {_cell(nb['title'])}]({prefix}{nb['file']})"


def syllabus_page(
    cmap: dict,
    sections: dict[str, list[dict]],
    week_minutes: int = WEEK_MINUTES,
    link_prefix: str = "notebooks/",
    graph: str = GRAPH_PNG,
) -> str:
    """The syllabus (Markdown) from the course map and each notebook's sections."""
    by_id = {nb["id"]: nb for nb in cmap["notebook"]}
    items = schedule_items(cmap, sections)
    weeks = schedule(items, week_minutes)
    total = sum(nb["teach_minutes"] for nb in cmap["notebook"])
    req_all = sum(section_minutes(sections.get(i, []))[0] for i in by_id)
    opt_all = sum(section_minutes(sections.get(i, []))[1] for i in by_id)
    out = [
        "# Syllabus",
        "",
        "<!-- generated from course_map.toml and the notebooks by tools/syllabus.py; "
        "do not edit -->",
        "",
        f"The course has {len(by_id)} notebooks and {_minutes(total)} of teaching time in the "
        f"course map. Their sections add up to {_minutes(req_all)} of required and "
        f"{_minutes(opt_all)} of optional material: a lecturer may skip an optional section "
        '(its heading says "(optional)"), and the rest of a notebook\'s teaching time is for '
        "its exercises and questions. The stop-and-think questions of each notebook are meant "
        "for a pause in class: ask, let the room think, then discuss.",
        "",
        "## Prerequisites",
        "",
        f"![The prerequisite graph of the notebooks]({graph})",
        "",
    ]
    for nb in cmap["notebook"]:
        needs = ", ".join(nb["prerequisites"]) or "none"
        out.append(f"- {nb['id']} needs {needs}")
    out += [
        "",
        f"## A {len(weeks)}-week schedule",
        "",
        f"The notebooks, one after the other, in weeks of {week_minutes} teaching minutes; a "
        "notebook that does not fit in what is left of a week continues the next week, from the "
        "start of one of its required sections. Each notebook's teaching time is the course "
        "map's `teach_minutes`: its required sections, then its exercises and questions. Every "
        "notebook starts after all of its prerequisites end.",
        "",
        "| Week | Notebooks | Minutes |",
        "|---|---|---|",
    ]
    first_week, last_week = {}, {}
    for n, week in enumerate(weeks):
        for e in week:
            first_week.setdefault(e["id"], n)
            last_week[e["id"]] = n
    for n, week in enumerate(weeks):
        names = []
        for e in week:
            i, part = e["id"], _cell(e["parts"][0])
            if first_week[i] == last_week[i]:
                detail = ""
            elif n == first_week[i]:
                detail = " (starts)"
            elif n == last_week[i]:
                detail = f" (ends, from {part})"
            else:
                detail = f" (continued, from {part})"
            names.append(f"{notebook_link(by_id[i], link_prefix)}{detail}, {e['minutes']} min")
        minutes = sum(e["minutes"] for e in week)
        out.append(f"| {n + 1} | {'; '.join(names)} | {minutes} |")
    out += ["", "## The notebooks", ""]
    for nb in cmap["notebook"]:
        secs = sections.get(nb["id"], [])
        required, optional = section_minutes(secs)
        needs = [notebook_link(by_id[p], link_prefix) for p in nb["prerequisites"]]
        out += [
            f"### {nb['id']} · {nb['title']}",
            "",
            f"[Open the notebook]({link_prefix}{nb['file']}). "
            f"Prerequisites: {', '.join(needs) or 'none'}.",
            "",
            f"Teaching time: {nb['teach_minutes']} min; its sections take {required} min "
            f"required and {optional} min optional.",
            "",
            "Objectives: after this notebook you can",
            "",
            *[f"- {o}" for o in nb["objectives"]],
            "",
        ]
        if secs:
            out += ["| Section | Minutes | |", "|---|---|---|"]
            for s in secs:
                title = s["title"].removeprefix("## ").replace(" (optional)", "")
                kind = "optional" if s["optional"] else "required"
                out.append(f"| {_cell(title)} | {s['minutes'] or ''} | {kind} |")
            out.append("")
        out += ["Stop and think:", ""]
        out += [f"{k}. {q}" for k, q in enumerate(nb.get("questions", []), 1)]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- the glossary


def load_glossary(path: Path = GLOSSARY) -> list[dict]:
    """The glossary's terms: [{"en", "zh", "definition", "notebook", "forms"?}, ...]."""
    with open(path, "rb") as f:
        return tomllib.load(f)["term"]


def glossary_page(terms: list[dict], cmap: dict, link_prefix: str = "notebooks/") -> str:
    """The glossary (Markdown): one table, in English alphabetical order."""
    by_id = {nb["id"]: nb for nb in cmap["notebook"]}
    out = [
        "# Glossary",
        "",
        "<!-- generated from glossary.toml by tools/syllabus.py; do not edit -->",
        "",
        f"The course's {len(terms)} terms in English and simplified Chinese, with the notebook "
        "that introduces each one. Where the seed guide names a term in Chinese, the glossary "
        "uses the guide's word; the notebooks give the same Chinese in parentheses where they "
        "introduce a term (tests/test_glossary.py checks that they agree).",
        "",
        "| English | 中文 | Definition | Introduced in |",
        "|---|---|---|---|",
    ]
    for t in sorted(terms, key=lambda t: t["en"].lower()):
        nb = by_id.get(t["notebook"])
        where = (
            f"[{nb['id']} · {_cell(nb['title'].split(':')[0])}]({link_prefix}{nb['file']})"
            if nb
            else t["notebook"]
        )
        out.append(f"| {_cell(t['en'])} | {t['zh']} | {_cell(t['definition'])} | {where} |")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- writing


def build(out: Path = OUT, week_minutes: int = WEEK_MINUTES) -> list[Path]:
    """Write SYLLABUS.md, prerequisites.png and GLOSSARY.md into `out`; return their paths."""
    cmap = load_course_map(COURSE_MAP)
    sections = {nb["id"]: notebook_sections(nb) for nb in cmap["notebook"]}
    prefix = Path(os.path.relpath(NOTEBOOKS, out.resolve())).as_posix() + "/"
    out.mkdir(parents=True, exist_ok=True)
    pages = {
        "SYLLABUS.md": syllabus_page(cmap, sections, week_minutes, prefix).encode(),
        GRAPH_PNG: prerequisite_png(cmap),
        "GLOSSARY.md": glossary_page(load_glossary(), cmap, prefix).encode(),
    }
    written = []
    for name, data in pages.items():
        (out / name).write_bytes(data)
        written.append(out / name)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="course.py syllabus", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (build/syllabus/)")
    parser.add_argument(
        "--week-minutes",
        type=int,
        default=WEEK_MINUTES,
        help=f"teaching minutes a week for the schedule ({WEEK_MINUTES})",
    )
    args = parser.parse_args(argv)
    try:
        written = build(args.out, args.week_minutes)
    except ValueError as e:
        print(f"[syllabus] {e}")
        return 1
    for p in written:
        print(f"[syllabus] wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
