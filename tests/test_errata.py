"""ERRATA.md: every row points at something that exists (a README section or a tagged cell)."""

import json
import re
from pathlib import Path

from course_lib import profile

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(
    r"^\| (?P<section>[^|]+?) \| (?P<claim>[^|]+?) \| (?P<right>[^|]+?) \| (?P<where>[^|]+?) \|$"
)


def rows() -> list[dict]:
    found = []
    for line in (REPO / "ERRATA.md").read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m and m["section"] not in ("section", "---"):
            found.append(m.groupdict())
    return found


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


def test_there_are_rows_and_each_is_complete():
    assert rows(), "ERRATA.md has no rows"
    for r in rows():
        assert all(v.strip() for v in r.values()), r


def test_every_row_points_at_something_that_exists():
    tags, anchors = notebook_tags(), readme_anchors()
    for r in rows():
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
    referenced = {tag for r in rows() for tag in re.findall(r"`(errata-[^`]+)`", r["where"])}
    for nb, tags in notebook_tags().items():
        for tag in tags:
            if tag.startswith("errata-"):
                assert tag in referenced, (
                    f"notebook {nb} tags a cell {tag} that ERRATA.md never names"
                )


def test_rows_follow_the_seed_order():
    order = [s["section"] for s in profile.load_course_map()["seed"]]
    keys = [order.index(r["section"].split()[0]) for r in rows()]
    assert keys == sorted(keys), "keep ERRATA.md in the seed guide's section order"
