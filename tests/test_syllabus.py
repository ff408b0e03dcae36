"""The syllabus (tools/syllabus.py): generated from the course map, with a schedule that packs
the notebooks into a 12-14 week term in an order that respects their prerequisites."""

from __future__ import annotations

import json

import pytest
import syllabus

from course_lib.profile import load_course_map

CMAP = load_course_map(syllabus.COURSE_MAP)
SECTIONS = {nb["id"]: syllabus.notebook_sections(nb) for nb in CMAP["notebook"]}


def item(i, minutes, prerequisites=(), parts=()):
    return {"id": i, "minutes": minutes, "prerequisites": list(prerequisites), "parts": parts}


def test_every_notebook_has_stop_and_think_questions():
    for nb in CMAP["notebook"]:
        qs = nb.get("questions", [])
        assert 2 <= len(qs) <= 4, f"{nb['id']}: {len(qs)} questions"
        for q in qs:
            assert q.endswith("?") and len(q) > 30, (nb["id"], q)


def test_syllabus_is_generated_from_the_map():
    page = syllabus.syllabus_page(CMAP, SECTIONS)
    for nb in CMAP["notebook"]:
        assert f"### {nb['id']} · {nb['title']}" in page
        assert f"notebooks/{nb['file']}" in page
        for text in nb["objectives"] + nb["questions"]:
            assert text in page, (nb["id"], text)
        required, optional = syllabus.section_minutes(SECTIONS[nb["id"]])
        assert f"{required} min required and {optional} min optional" in page
        for s in SECTIONS[nb["id"]]:
            title = s["title"].removeprefix("## ").replace(" (optional)", "")
            kind = "optional" if s["optional"] else "required"
            assert f"| {title.replace('|', chr(92) + '|')} | {s['minutes']} | {kind} |" in page
    assert f"![The prerequisite graph of the notebooks]({syllabus.GRAPH_PNG})" in page


def test_sections_and_optional_minutes_are_read_from_the_notebooks():
    # notebook 00's PyTorch primer is its optional section
    secs = SECTIONS["00"]
    optional = [s for s in secs if s["optional"]]
    assert optional and all("(optional)" in s["title"] for s in optional)
    required, opt = syllabus.section_minutes(secs)
    assert opt == sum(s["minutes"] for s in optional) and required + opt == sum(
        s["minutes"] for s in secs
    )


def test_the_course_schedule_fills_a_term_and_respects_prerequisites():
    items = syllabus.schedule_items(CMAP, SECTIONS)
    weeks = syllabus.schedule(items, syllabus.WEEK_MINUTES)
    lo, hi = syllabus.TERM_WEEKS
    assert lo <= len(weeks) <= hi, f"{len(weeks)} weeks"
    assert syllabus.schedule_problems(items, weeks, syllabus.WEEK_MINUTES) == []
    starts = [e["id"] for w in weeks for e in w]
    assert sorted(set(starts)) == sorted(nb["id"] for nb in CMAP["notebook"])
    page = syllabus.syllabus_page(CMAP, SECTIONS)
    assert f"## A {len(weeks)}-week schedule" in page


def test_schedule_splits_only_at_section_boundaries():
    items = [
        item("a", 60, parts=[("a1", 30), ("a2", 20)]),  # 10 min of exercises go with a2
        item("b", 50, ["a"], parts=[("b1", 25), ("b2", 25)]),
        item("c", 40, ["a"]),
    ]
    weeks = syllabus.schedule(items, 90)
    assert weeks == [
        [
            {"id": "a", "minutes": 60, "parts": ["a1", "a2"]},
            {"id": "b", "minutes": 25, "parts": ["b1"]},
        ],
        [
            {"id": "b", "minutes": 25, "parts": ["b2"]},
            {"id": "c", "minutes": 40, "parts": ["the whole notebook"]},
        ],
    ]
    assert syllabus.schedule_problems(items, weeks, 90) == []


def test_schedule_takes_prerequisites_before_the_given_order():
    items = [item("x", 30, ["y"]), item("y", 30), item("z", 30, ["x"])]
    weeks = syllabus.schedule(items, 60)
    order = [e["id"] for w in weeks for e in w]
    assert order == ["y", "x", "z"]
    assert syllabus.schedule_problems(items, weeks, 60) == []


def test_a_part_longer_than_a_week_is_cut():
    weeks = syllabus.schedule([item("big", 150)], 60)
    assert [sum(e["minutes"] for e in w) for w in weeks] == [60, 60, 30]
    assert syllabus.schedule_problems([item("big", 150)], weeks, 60) == []


def test_schedule_problems_are_found():
    items = [item("a", 30), item("b", 30, ["a"])]
    bad = [[{"id": "b", "minutes": 30, "parts": []}], [{"id": "a", "minutes": 20, "parts": []}]]
    problems = syllabus.schedule_problems(items, bad, 25)
    assert any("before its prerequisite a" in p for p in problems)
    assert any("a gets 20 min of its 30" in p for p in problems)
    assert any("more than 25" in p for p in problems)
    split = [
        [{"id": "a", "minutes": 10, "parts": []}, {"id": "b", "minutes": 30, "parts": []}],
        [{"id": "a", "minutes": 20, "parts": []}],
    ]
    assert any(
        "a is not scheduled in one piece" in p for p in syllabus.schedule_problems(items, split, 60)
    )


def test_cycles_and_unknown_prerequisites_are_errors():
    with pytest.raises(ValueError, match="cycle"):
        syllabus.schedule([item("a", 10, ["b"]), item("b", 10, ["a"])], 60)
    with pytest.raises(ValueError, match="unknown"):
        syllabus.schedule([item("a", 10, ["zz"])], 60)


def test_prerequisite_graph_is_a_png_and_repeats_byte_for_byte():
    png = syllabus.prerequisite_png(CMAP)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert syllabus.prerequisite_png(CMAP) == png  # the website restages only what changed
    depth = syllabus.depths(CMAP)
    for nb in CMAP["notebook"]:
        assert all(depth[p] < depth[nb["id"]] for p in nb["prerequisites"])


def test_build_writes_the_pages(tmp_path):
    written = syllabus.build(tmp_path / "syllabus")
    names = sorted(p.name for p in written)
    assert names == ["GLOSSARY.md", "SYLLABUS.md", syllabus.GRAPH_PNG]
    text = (tmp_path / "syllabus" / "SYLLABUS.md").read_text(encoding="utf-8")
    # links from build/syllabus/ (or anywhere) reach the notebooks
    link = text.split("[Open the notebook](", 1)[1].split(")", 1)[0]
    assert ((tmp_path / "syllabus") / link).resolve() == (
        syllabus.NOTEBOOKS / CMAP["notebook"][0]["file"]
    ).resolve()
    assert json.loads((syllabus.NOTEBOOKS / CMAP["notebook"][0]["file"]).read_text())["cells"]
