"""ERRATA.md: every row points at something that exists (a README section or a tagged cell),
and every Chinese quotation of the guide is the guide's own words."""

import json
import os
import re
from pathlib import Path

import coursemap
import pytest

from course_lib import profile

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(
    r"^\| (?P<section>[^|]+?) \| (?P<claim>[^|]+?) \| (?P<right>[^|]+?) \| (?P<where>[^|]+?) \|$"
)
NOTES_HEADING = "## Notes"  # the table after it holds claims that turned out to hold
# Chinese text: CJK punctuation, ideographs, full-width forms (the guide's （）、，。：).
CJK = r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]"


def errata_text() -> str:
    return (REPO / "ERRATA.md").read_text(encoding="utf-8")


def table_rows(text: str) -> list[dict]:
    found = []
    for line in text.splitlines():
        m = ROW.match(line)
        if m and m["section"] not in ("section", "---"):
            found.append(m.groupdict())
    return found


def rows() -> list[dict]:
    """The errata table: where the guide is wrong."""
    return table_rows(errata_text().split(NOTES_HEADING)[0])


def notes() -> list[dict]:
    """The notes table: where the guide is right but incomplete."""
    parts = errata_text().split(NOTES_HEADING)
    return table_rows(parts[1]) if len(parts) > 1 else []


def notebook_tags() -> dict[str, set[str]]:
    """Tags of every cell, per notebook number ('01')."""
    out = {}
    for path in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        out[path.name[:2]] = {t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", [])}
    return out


def readme_anchors() -> set[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    heads = re.findall(r"^#{1,6} (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def chinese_quotations(text: str) -> list[str]:
    """Every piece of Chinese in `text`: each "quoted" string that holds Chinese, whole (with
    any Latin text inside it), then each run of Chinese outside quotes (a term like 分词)."""
    quoted = [q for q in re.findall(r'"([^"\n]*)"', text) if re.search(CJK, q)]
    bare = re.findall(f"{CJK}+", re.sub(r'"[^"\n]*"', "", text))
    return quoted + bare


def test_there_are_rows_and_each_is_complete():
    assert rows(), "ERRATA.md has no rows"
    assert notes(), f"ERRATA.md has no table under {NOTES_HEADING!r}"
    for r in rows() + notes():
        assert all(v.strip() for v in r.values()), r


def test_every_row_points_at_something_that_exists():
    tags, anchors = notebook_tags(), readme_anchors()
    for r in rows() + notes():
        cells = re.findall(r"notebook (\d\d), cell tagged `(errata-[^`]+)`", r["where"])
        links = re.findall(r"README\.md#([\w-]+)", r["where"])
        assert cells or links, f"row {r['section']}: say where it is shown ({r['where']!r})"
        for nb, tag in cells:
            assert nb in tags, f"row {r['section']}: notebook {nb} does not exist"
            assert tag in tags[nb], f"row {r['section']}: no cell tagged {tag} in notebook {nb}"
            assert tag.removeprefix("errata-").split("-")[0] == r["section"].split()[0], (
                f"row {r['section']}: tag {tag} names another section"
            )
        for anchor in links:
            assert anchor in anchors, f"row {r['section']}: README has no section #{anchor}"


def test_every_errata_tag_has_a_row():
    referenced = {
        tag for r in rows() + notes() for tag in re.findall(r"`(errata-[^`]+)`", r["where"])
    }
    for nb, tags in notebook_tags().items():
        for tag in tags:
            if tag.startswith("errata-"):
                assert tag in referenced, (
                    f"notebook {nb} tags a cell {tag} that ERRATA.md never names"
                )


def test_rows_follow_the_seed_order():
    order = [s["section"] for s in profile.load_course_map()["seed"]]
    for table in (rows(), notes()):
        keys = [order.index(r["section"].split()[0]) for r in table]
        assert keys == sorted(keys), "keep each table of ERRATA.md in the seed guide's order"


def test_chinese_quotation_finder():
    text = 'it says "常见的评估指标包括准确率（Accuracy）等" (gloss); tokenization (分词) "plain"'
    assert chinese_quotations(text) == ["常见的评估指标包括准确率（Accuracy）等", "分词"]


def test_quotations_are_the_guides_words():
    quotes = chinese_quotations(errata_text())
    assert quotes, "ERRATA.md quotes the guide nowhere"
    path = coursemap.seed_path()
    if path is None:
        assert os.environ.get("COURSE_REQUIRE_SEED") != "1", (
            "the seed guide is missing beside the clone"
        )
        pytest.skip("the seed guide is not beside the clone: quotations not checked")
    guide = path.read_text(encoding="utf-8")
    wrong = [q for q in quotes if q not in guide]
    assert not wrong, f"not the guide's words (quote them exactly): {wrong}"
