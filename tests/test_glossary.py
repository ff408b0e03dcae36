"""The glossary (glossary.toml) against the notebooks.

Every term is used in the notebook the glossary names, and every Chinese gloss a notebook gives
in parentheses matches the glossary: "**term** (中文)", "term (中文, more)" or "(term, 中文)".
A parenthesis that cites the seed guide is not a term's gloss and is skipped: one after a
section number ("section 2.1 (输入层, *input layer*)"), after a quotation, one that gives a seed
heading, and one in a sentence about the guide whose Chinese is not a glossary term (a
translation of the guide's wording).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import syllabus

from course_lib.profile import load_course_map

REPO = Path(__file__).resolve().parents[1]
CMAP = load_course_map(REPO / "course_map.toml")
TERMS = syllabus.load_glossary(REPO / "glossary.toml")
ORDER = [nb["id"] for nb in CMAP["notebook"]]

CJK = r"\u3400-\u9fff"
ZH = rf"(?:[A-Za-z0-9]+ ?)?[{CJK}](?:[{CJK}0-9A-Za-z·\-/ ]*[{CJK}])?"
PAREN = re.compile(r"[（(]([^()（）]*)[)）]")
ZH_FIRST = re.compile(rf"^(?P<zh>{ZH})(?:\s*[,;:，；：]\s*(?P<rest>.*))?$", re.S)
EN_FIRST = re.compile(rf"^(?P<en>[^{CJK}]+?),\s*(?P<zh>{ZH})$", re.S)
SECTION_NUMBER = re.compile(r"\d+(?:\.\d+)*$")


def norm_en(text: str) -> str:
    """English as compared: no Markdown emphasis, code or maths marks or double quotes, spaces
    collapsed (none around a slash), lower case."""
    for mark in ("**", "*", "`", "$", '"', "“", "”"):
        text = text.replace(mark, "")
    text = " ".join(text.split()).lower()
    return re.sub(r"\s*/\s*", "/", text)


def norm_zh(text: str) -> str:
    return "".join(text.split())


def markdown(nb_id: str) -> str:
    entry = next(nb for nb in CMAP["notebook"] if nb["id"] == nb_id)
    cells = json.loads((REPO / "notebooks" / entry["file"]).read_text(encoding="utf-8"))["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


NOTEBOOK_IDS = [i for i in ORDER if any((REPO / "notebooks").glob(f"{i}_*.ipynb"))]
MARKDOWN = {i: markdown(i) for i in NOTEBOOK_IDS}
BY_ZH = {norm_zh(t["zh"]): t for t in TERMS}
SEED_HEADINGS = {norm_zh(s["heading"]) for s in CMAP.get("seed", [])}


def names(term: dict) -> list[str]:
    return [norm_en(n) for n in [term["en"], *term.get("forms", [])]]


def uses(text: str, term: dict) -> bool:
    """Whether normalized `text` uses the term (or one of its forms, or a plural)."""
    return any(re.search(rf"(?<![\w-]){re.escape(n)}(?:s|es)?(?![\w-])", text) for n in names(term))


def glosses(text: str) -> list[dict]:
    """The Chinese glosses in a notebook's Markdown: [{"zh", "before", "inside"}], where
    `before` is the normalized English just before the parenthesis and `inside` the English
    inside it ("(term, 中文)"), or ''."""
    found = []
    for m in PAREN.finditer(text):
        content = " ".join(m.group(1).split())
        if not re.search(f"[{CJK}]", content):
            continue
        plain = content.replace("**", "")
        zh_first = ZH_FIRST.match(plain)
        en_first = None if zh_first else EN_FIRST.match(plain.replace("*", ""))
        if not (zh_first or en_first):
            continue  # Chinese inside a sentence, not a gloss
        before_raw = text[max(0, m.start() - 120) : m.start()]
        sentence = re.split(r"(?<=[.!?])\s|\n\s*\n", before_raw)[-1]
        found.append(
            {
                "zh": norm_zh((zh_first or en_first).group("zh")),
                "before": norm_en(before_raw),
                "inside": norm_en(en_first.group("en")) if en_first else "",
                "raw_before": before_raw.rstrip(),
                "guide": "guide" in sentence.lower() or "seed" in sentence.lower(),
                "context": " ".join(text[max(0, m.start() - 50) : m.end()].split()),
            }
        )
    return found


def is_citation(g: dict) -> bool:
    """A parenthesis that cites the seed guide rather than glossing a term."""
    if SECTION_NUMBER.search(g["before"]) or SECTION_NUMBER.fullmatch(g["inside"] or "x"):
        return True
    if g["raw_before"].endswith(('"', "”")):
        return True
    if g["zh"] in SEED_HEADINGS:
        return True
    return g["guide"] and g["zh"] not in BY_ZH


GLOSSES = {i: [g for g in glosses(MARKDOWN[i]) if not is_citation(g)] for i in NOTEBOOK_IDS}


def matches(g: dict, term: dict) -> bool:
    for n in names(term):
        pattern = rf"(?<![\w-]){re.escape(n)}(?:s|es)?$"
        if re.search(pattern, g["before"]) or (g["inside"] and re.search(pattern, g["inside"])):
            return True
    return False


# --------------------------------------------------------------------------- the file


def test_glossary_is_well_formed():
    assert len(TERMS) >= 60
    ids = set(ORDER)
    for t in TERMS:
        assert set(t) <= {"en", "zh", "notebook", "definition", "forms"}, t
        assert t["en"].strip() and t["definition"].strip(), t
        assert re.search(f"[{CJK}]", t["zh"]) or t["zh"] == t["en"], t
        assert t["notebook"] in ids, t
        assert len(t["definition"]) <= 220, t["en"]
    for key, f in (("en", norm_en), ("zh", norm_zh)):
        values = [f(t[key]) for t in TERMS]
        dupes = {v for v in values if values.count(v) > 1}
        assert not dupes, f"the same {key} twice: {dupes}"


def test_the_course_key_terms_are_in_the_glossary():
    have = {norm_en(t["en"]) for t in TERMS}
    for key in [
        "token",
        "embedding",
        "attention",
        "softmax",
        "cross-entropy",
        "backpropagation",
        "optimizer",
        "regularization",
        "perplexity",
        "transformer",
        "encoder",
        "decoder",
        "kv cache",
        "quantization",
        "distillation",
        "fine-tuning",
        "tool call",
    ]:
        assert key in have, key


# --------------------------------------------------------------------------- against the notebooks


@pytest.mark.parametrize("term", TERMS, ids=lambda t: t["en"])
def test_every_term_is_used_in_its_notebook(term):
    assert uses(norm_en(MARKDOWN[term["notebook"]]), term), (
        f"{term['en']!r} does not appear in notebook {term['notebook']}'s text"
    )


@pytest.mark.parametrize("term", TERMS, ids=lambda t: t["en"])
def test_a_glossed_term_is_introduced_where_it_is_first_glossed(term):
    glossed_in = [
        i for i in NOTEBOOK_IDS if any(g["zh"] == norm_zh(term["zh"]) for g in GLOSSES[i])
    ]
    if glossed_in:
        assert term["notebook"] == glossed_in[0], (
            f"{term['en']!r} is first glossed in notebook {glossed_in[0]}, the glossary says "
            f"{term['notebook']}"
        )


@pytest.mark.parametrize("nb_id", NOTEBOOK_IDS)
def test_every_gloss_in_a_notebook_matches_the_glossary(nb_id):
    problems = []
    for g in GLOSSES[nb_id]:
        term = BY_ZH.get(g["zh"])
        if term is None:
            problems.append(f"{g['zh']} is not in the glossary: ...{g['context']}")
        elif not matches(g, term):
            problems.append(
                f"{g['zh']} glosses {term['en']!r} in the glossary, but here: ...{g['context']}"
            )
    assert not problems, "\n".join(problems)


def test_gloss_parser():
    text = (
        "one per *token* (词元), from a **vocabulary** (词表, its size $V$). Seed guide: section "
        "2.1 (输入层, *input layer*). The guide says models perform well (表现出色). Top-p "
        "(nucleus, 核采样) and (你 is three bytes)."
    )
    found = glosses(text)
    assert [g["zh"] for g in found] == ["词元", "词表", "输入层", "表现出色", "核采样"]
    kept = [g["zh"] for g in found if not is_citation(g)]
    assert kept == ["词元", "词表", "核采样"]
    assert found[4]["inside"] == "nucleus"
    token = BY_ZH["词元"]
    assert matches(found[0], token) and not matches(found[1], token)
