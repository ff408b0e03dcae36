"""The course map: schema, the tables generated from it, import order, budgets, seed headings."""

import ast
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import coursemap
import pytest
from hypothesis import given
from hypothesis import strategies as st

import notebooks as nbtools
from course_lib import profile

REPO = Path(__file__).resolve().parents[1]
CMAP = profile.load_course_map()
NOTEBOOKS = {nb["id"]: nb for nb in CMAP["notebook"]}
READY = [nb for nb in CMAP["notebook"] if nb["status"] == "ready"]
PER_NOTEBOOK_BUDGET_S = 60
ALL_NOTEBOOKS_BUDGET_S = 8 * 60
# sha256 of the seed guide's heading list, as (section, heading) pairs in JSON. Lets the test
# that every heading is mapped run without the guide, which is not redistributed.
SEED_HEADINGS_SHA256 = "eedd908e680e5026257bd80406895102afb2ebef6eb387b69338a38b65facd1c"


def load_nb(entry):
    return json.loads((REPO / "notebooks" / entry["file"]).read_text(encoding="utf-8"))


def code_sources(nb):
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


# --------------------------------------------------------------------------- schema


def test_every_notebook_entry_is_complete():
    ids = [nb["id"] for nb in CMAP["notebook"]]
    assert ids == [f"{i:02d}" for i in range(len(ids))], "ids are 00, 01, ... in order"
    for nb in CMAP["notebook"]:
        assert set(coursemap.NOTEBOOK_KEYS) <= set(nb), nb["id"]
        assert re.fullmatch(rf"{nb['id']}_[a-z0-9_]+\.ipynb", nb["file"]), nb["file"]
        assert nb["status"] in ("ready", "planned"), nb["id"]
        assert nb["title"] and nb["objectives"], nb["id"]
        assert isinstance(nb["teach_minutes"], int) and nb["teach_minutes"] > 0
        assert all(p < nb["id"] and p in NOTEBOOKS for p in nb["prerequisites"]), nb["id"]
        assert set(nb["run_time"]) == set(profile.PROFILES)
        for p, rt in nb["run_time"].items():
            if isinstance(rt, dict):
                assert set(rt) == {"seconds", "date", "machine"}, (nb["id"], p)
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", rt["date"])
            else:
                assert rt == "not measured", (nb["id"], p)


def test_notebooks_on_disk_are_the_ready_ones():
    on_disk = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert on_disk == sorted(nb["file"] for nb in READY)


def test_file_is_in_canonical_form():
    # What the execute command writes back must be what is committed: no hand formatting is
    # lost, and the writer handles every value in the map.
    text = (REPO / "course_map.toml").read_text(encoding="utf-8")
    assert coursemap.dump_course_map(CMAP) == text


@given(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.lists(st.text(st.characters(exclude_categories=["Cs"]), max_size=20), max_size=4),
    st.floats(min_value=0, max_value=1e5, allow_nan=False),
)
def test_writer_round_trips_any_text(title, objectives, seconds):
    entry = dict(copy.deepcopy(CMAP["notebook"][0]), title=title, objectives=objectives)
    cmap = {"schema": 1, "notebook": [entry], "seed": CMAP["seed"][:2]}
    coursemap.record_run_time(cmap, entry["file"], "cpu", seconds, "a machine", "2026-01-01")
    back = profile.tomllib.loads(coursemap.dump_course_map(cmap))
    assert back["notebook"][0]["title"] == title
    assert back["notebook"][0]["objectives"] == objectives
    assert back["notebook"][0]["run_time"]["cpu"]["seconds"] == round(seconds, 1)
    assert back["seed"] == cmap["seed"]


def test_record_run_time_unknown_file():
    with pytest.raises(ValueError, match="file 'nope.ipynb' is not in the course map"):
        coursemap.record_run_time({"notebook": []}, "nope.ipynb", "ci", 1.0, "m", "d")


def test_writer_refuses_unknown_types():
    with pytest.raises(TypeError, match="cannot write set"):
        coursemap.toml_value({1, 2})


# --------------------------------------------------------------------------- generated tables


def test_readme_table_is_generated_from_the_map():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert coursemap.readme_table_block(readme) == coursemap.render_table(CMAP), (
        "README table is stale: run python3 tools/course.py render"
    )


def test_readme_without_markers_is_an_error():
    with pytest.raises(ValueError, match="README lacks the markers"):
        coursemap.readme_table_block("# no table here")


def test_notebook_00_table_matches_the_map():
    nb = load_nb(NOTEBOOKS["00"])
    cells = [
        c
        for c in nb["cells"]
        if c["cell_type"] == "code" and "course_table(" in "".join(c["source"])
    ]
    assert len(cells) == 1, "notebook 00 prints the course table from course_lib.profile"
    text = "".join("".join(o["text"]) for o in cells[0]["outputs"] if o.get("name") == "stdout")
    rows = text.strip().splitlines()[2:]
    assert len(rows) == len(CMAP["notebook"])
    for row, nb_entry in zip(rows, CMAP["notebook"], strict=True):
        assert row.startswith(nb_entry["id"]) and nb_entry["title"] in row
        assert nb_entry["status"] in row.split()


def test_notebooks_start_with_their_title():
    for entry in READY:
        first = load_nb(entry)["cells"][0]
        assert first["cell_type"] == "markdown"
        heading = "".join(first["source"]).splitlines()[0]
        assert heading == f"# {entry['id']} · {entry['title']}", entry["file"]
        card_cells = [s for s in code_sources(load_nb(entry)) if "notebook_card(" in s]
        assert card_cells and f'notebook_card("{entry["id"]}")' in card_cells[0], entry["file"]


# --------------------------------------------------------------------------- course_lib modules


def course_lib_imports(source: str) -> set[str]:
    """Names of course_lib submodules a cell imports."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    found = set()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "course_lib" and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "course_lib":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(a.name for a in node.names)
    return found


def test_import_parser():
    src = "import course_lib\nfrom course_lib import device, profile as p\nimport course_lib.data\n"
    src += "from course_lib.check import check\n%matplotlib inline\nimport torch"
    assert course_lib_imports(src) == {"device", "profile", "data", "check"}


def test_notebooks_import_only_modules_already_introduced():
    introduced: set[str] = set()
    for entry in CMAP["notebook"]:
        introduced |= set(entry["modules"])
        if entry["status"] != "ready":
            continue
        used = set().union(*(course_lib_imports(s) for s in code_sources(load_nb(entry))))
        early = used - introduced
        assert not early, (
            f"{entry['file']} imports {sorted(early)} before the notebook that introduces it"
        )


def test_every_module_is_introduced_by_a_notebook():
    modules = {p.stem for p in (REPO / "course_lib").glob("*.py")} - {"__init__"}
    modules |= {p.parent.name for p in (REPO / "course_lib").glob("*/__init__.py")}  # packages
    introduced = {m for nb in CMAP["notebook"] for m in nb["modules"]}
    assert modules <= introduced, f"not in the course map: {sorted(modules - introduced)}"


def test_init_imports_no_submodule():
    tree = ast.parse((REPO / "course_lib" / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import course_lib, sys; "
            "print(sorted(m for m in sys.modules if m.startswith('course_lib')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "['course_lib']"


# --------------------------------------------------------------------------- run-time budgets


def test_run_time_budgets():
    total = 0.0
    for entry in READY:
        rt = entry["run_time"]["ci"]
        assert isinstance(rt, dict), (
            f"{entry['file']}: no measured ci run time; run the execute command"
        )
        assert rt["seconds"] <= PER_NOTEBOOK_BUDGET_S, f"{entry['file']} takes {rt['seconds']} s"
        total += rt["seconds"]
    assert total <= ALL_NOTEBOOKS_BUDGET_S, f"all notebooks take {total:.0f} s"


def test_budget_check_fires(monkeypatch):
    slow = dict(
        READY[0],
        run_time=dict(
            READY[0]["run_time"], ci={"seconds": 61.0, "date": "2026-01-01", "machine": "m"}
        ),
    )
    monkeypatch.setattr(sys.modules[__name__], "READY", [slow])
    with pytest.raises(AssertionError, match="takes 61.0 s"):
        test_run_time_budgets()


# --------------------------------------------------------------------------- seed headings


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def readme_anchors() -> set[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return {github_anchor(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_every_seed_heading_is_mapped():
    anchors = readme_anchors()
    stems = {nb["file"].removesuffix(".ipynb") for nb in CMAP["notebook"]}
    for s in CMAP["seed"]:
        where = f"seed {s['section']} {s['heading']}"
        assert s["covered_by"] or s.get("out_of_scope"), where
        for target in s["covered_by"]:
            if target.startswith("README#"):
                assert target.removeprefix("README#") in anchors, (
                    f"{where}: no README section {target}"
                )
            else:
                assert target in stems, f"{where}: {target} is not a notebook in the map"
        if "out_of_scope" in s:
            assert len(s["out_of_scope"]) > 20, f"{where}: say why it is out of scope"


def test_notebook_seed_sections_are_backed_by_the_mapping():
    for nb in CMAP["notebook"]:
        stem = nb["file"].removesuffix(".ipynb")
        mapped = {s["section"] for s in CMAP["seed"] if stem in s["covered_by"]}
        assert set(nb["seed_sections"]) <= mapped, (nb["id"], set(nb["seed_sections"]) - mapped)


def headings_digest(pairs) -> str:
    return hashlib.sha256(
        json.dumps([list(p) for p in pairs], ensure_ascii=False).encode()
    ).hexdigest()


def test_seed_heading_list_is_the_guides():
    mapped = [(s["section"], s["heading"]) for s in CMAP["seed"]]
    path = coursemap.seed_path()
    if path is not None:
        assert coursemap.seed_headings(path.read_text(encoding="utf-8")) == mapped
    else:
        assert os.environ.get("COURSE_REQUIRE_SEED") != "1", (
            "the seed guide is missing beside the clone"
        )
    assert headings_digest(mapped) == SEED_HEADINGS_SHA256


def test_seed_heading_parser():
    text = "> 摘要：x\n## 1. 背景\n### 1.1 历程\n```python\n## not a heading\n```\n#### 优点：\n"
    assert coursemap.seed_headings(text) == [
        ("abstract", "摘要"),
        ("1", "背景"),
        ("1.1", "历程"),
        ("1.1", "优点："),
    ]


# --------------------------------------------------------------------------- no dangling promises

READY_IDS = {nb["id"] for nb in READY}


@pytest.mark.parametrize("entry", READY, ids=lambda nb: nb["id"])
def test_a_ready_notebook_names_a_planned_one_only_as_planned(entry):
    nb = load_nb(entry)
    found = []
    for i, cell in enumerate(nb["cells"]):
        text = "".join(cell["source"])
        found += coursemap.dangling_promises(text, READY_IDS, f"{entry['file']} cell {i}")
    assert not found, "\n".join(found)


def test_the_readme_names_a_planned_notebook_only_as_planned():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert not coursemap.dangling_promises(text, READY_IDS, "README.md")


def test_dangling_promise_rule():
    ready = {"00", "01"}
    rule = coursemap.dangling_promises
    assert rule("See notebook 01. Then notebook 12 builds it.", ready)
    assert rule("Next: 13_efficient_inference.", ready)
    assert not rule("See notebook 01. Then notebook 12 (planned) builds it.", ready)
    assert not rule("Notebooks 00 and 01 set up.", ready)
    # the "(planned)" of one sentence does not excuse the next
    assert len(rule("Notebook 10 (planned). Notebook 11 trains it.", ready)) == 1
    assert len(rule("| notebook 12 (planned) | notebook 13 |", ready)) == 1


def test_the_readme_counts_the_seed_headings_that_ready_notebooks_cover():
    cover = coursemap.seed_coverage(CMAP)
    assert cover["total"] == len(CMAP["seed"])
    assert cover["unmapped"] == 0
    assert cover["ready"] + cover["waiting"] + cover["out_of_scope"] == cover["total"]
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert coursemap.coverage_sentence(CMAP) in text
    assert f"Of the seed guide's {cover['total']} headings, {cover['ready']} are covered" in text


def test_every_seed_heading_is_covered_out_of_scope_or_waiting_on_a_planned_notebook():
    # Each heading is covered by a ready notebook or a README section, or declared out of scope
    # with a reason, or covered only by notebooks the map lists as planned (and none other).
    planned = {nb["file"].removesuffix(".ipynb") for nb in CMAP["notebook"]} - {
        nb["file"].removesuffix(".ipynb") for nb in READY
    }
    kinds = coursemap.seed_coverage_kinds(CMAP)
    for entry, kind in zip(CMAP["seed"], kinds, strict=True):
        where = f"seed {entry['section']} {entry['heading']}"
        assert kind in ("ready", "out", "waiting"), where
        if kind == "out":
            assert len(entry["out_of_scope"]) > 20, f"{where}: say why it is out of scope"
        if kind == "waiting":
            assert entry["covered_by"] and set(entry["covered_by"]) <= planned, where


def test_seed_coverage_kinds_and_sentence():
    notebooks = [
        {"file": "01_a.ipynb", "status": "ready"},
        {"file": "02_b.ipynb", "status": "planned"},
        {"file": "03_c.ipynb", "status": "planned"},
    ]
    seed = [
        {"section": "1", "covered_by": ["01_a"]},
        {"section": "2", "covered_by": ["README#about-the-guide"]},
        {"section": "3", "covered_by": ["02_b"]},
        {"section": "4", "covered_by": ["01_a"], "out_of_scope": "needs audio models we lack"},
        {"section": "5", "covered_by": ["03_c", "02_b"]},
        {"section": "6", "covered_by": []},
    ]
    cmap = {"notebook": notebooks, "seed": seed}
    assert coursemap.seed_coverage_kinds(cmap) == [
        "ready",
        "ready",
        "waiting",
        "out",
        "waiting",
        "unmapped",
    ]
    cmap["seed"] = seed[:5]
    assert coursemap.coverage_sentence(cmap) == (
        "Of the seed guide's 5 headings, 2 are covered by ready notebooks or this README, 1 is "
        "out of scope, with the reason in the course map (4) and 2 wait on planned notebooks "
        "(02, 03)."
    )
    cmap["seed"] = seed[:2]
    assert coursemap.coverage_sentence(cmap) == (
        "Of the seed guide's 2 headings, 2 are covered by ready notebooks or this README and 0 "
        "wait on planned notebooks."
    )


# --------------------------------------------------------------------------- teaching time


@pytest.mark.parametrize("entry", READY, ids=lambda e: e["id"])
def test_required_sections_fit_the_teaching_time(entry):
    # every section states its minutes; the optional ones say so in the heading and the tag; the
    # required ones together fit the notebook's teach_minutes in the course map
    found = nbtools.sections(load_nb(entry))
    assert found, f"{entry['file']} has no ## sections"
    missing = [s["title"] for s in found if not isinstance(s["minutes"], int) or s["minutes"] <= 0]
    assert not missing, f"{entry['file']}: sections without minutes: {missing}"
    for s in found:
        assert s["optional"] == ("(optional)" in s["title"]), (entry["file"], s["title"])
    required = sum(s["minutes"] for s in found if not s["optional"])
    assert required <= entry["teach_minutes"], (
        f"{entry['file']}: required sections take {required} min, "
        f"teach_minutes is {entry['teach_minutes']}"
    )
