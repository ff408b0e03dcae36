"""The Search tool's world (notebook 12, guide section 6.4): a document store about the 37 plays,
written by the course from the play texts, the questions about it, and the reader's tokenizer.

    docs = load_documents()                   # [Document(doc_id, play, kind, text)], checked
    qs = load_questions()                     # [Question(qid, play, kind, split, text, answer,
                                              #   doc_id)], checked
    rows = build_documents(play_texts())      # what data/plays/documents.tsv holds, rebuilt
    tok = ReaderTokenizer(); tok.decode(tok.encode("In Ivo the answer is Ossa."))

Facts come from the shipped corpus (`course_lib.data`, `full`: train + val give every play but
Coriolanus whole, test gives Coriolanus); the genre is the First Folio catalogue's, as notebook
10's genre set records it in data/manifest.json. How each fact is read: `play_facts`.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from course_lib import data as course_data
from course_lib.toolformer_data import PieceTokenizer
from course_lib.tools import call_text

DOCUMENTS_FILE, QUESTIONS_FILE = "plays/documents.tsv", "plays/questions.tsv"
MANIFEST_KEY = "plays"
# Display titles, by the corpus's file names (the texts' own title lines are long and uneven).
TITLES = {
    "alls_well_that_ends_well": "All's Well That Ends Well",
    "antony_and_cleopatra": "Antony and Cleopatra",
    "as_you_like_it": "As You Like It",
    "comedy_of_errors": "The Comedy of Errors",
    "coriolanus": "Coriolanus",
    "cymbeline": "Cymbeline",
    "hamlet": "Hamlet",
    "henry_iv_part_1": "Henry IV Part 1",
    "henry_iv_part_2": "Henry IV Part 2",
    "henry_v": "Henry V",
    "henry_vi_part_1": "Henry VI Part 1",
    "henry_vi_part_2": "Henry VI Part 2",
    "henry_vi_part_3": "Henry VI Part 3",
    "henry_viii": "Henry VIII",
    "john": "King John",
    "julius_caesar": "Julius Caesar",
    "lear": "King Lear",
    "loves_labours_lost": "Love's Labour's Lost",
    "macbeth": "Macbeth",
    "measure_for_measure": "Measure for Measure",
    "merchant_of_venice": "The Merchant of Venice",
    "merry_wives_of_windsor": "The Merry Wives of Windsor",
    "midsummer_nights_dream": "A Midsummer Night's Dream",
    "much_ado_about_nothing": "Much Ado About Nothing",
    "othello": "Othello",
    "pericles": "Pericles",
    "richard_ii": "Richard II",
    "richard_iii": "Richard III",
    "romeo_and_juliet": "Romeo and Juliet",
    "taming_of_the_shrew": "The Taming of the Shrew",
    "tempest": "The Tempest",
    "timon_of_athens": "Timon of Athens",
    "tragedy_of_titus_andronicus": "Titus Andronicus",
    "troilus_and_cressida": "Troilus and Cressida",
    "twelfth_night": "Twelfth Night",
    "two_gentlemen_of_verona": "The Two Gentlemen of Verona",
    "winters_tale": "The Winter's Tale",
}
# One document template per fact (the answer's slot is {a}) and one question, worded otherwise.
DOC_TEMPLATES = {
    "speeches": "In {t} the character with the most speeches is {a} ({n} speeches).",
    "speakers": "{t} has {a} speaking parts (distinct speaker names).",
    "opening": "{t} opens in Act 1, Scene 1 at this place: {a}.",
    "setting": "The scene of {t} as a whole is given as: {a}.",
    "scenes": "{t} is divided into {a} scenes.",
    "genre": "The First Folio of 1623 lists {t} in its catalogue as a {a}.",
}
QUESTION_TEMPLATES = {
    "speeches": "Who speaks most often in {t}?",
    "speakers": "How many characters have lines in {t}?",
    "opening": "Where does the first scene of {t} take place?",
    "scenes": "How many scenes are there in {t}?",
    "genre": "Is {t} a comedy, a history or a tragedy?",
}
DEV_PLAYS = ("alls_well_that_ends_well", "macbeth", "othello")  # looked at while designing
SPEAKER = re.compile(r"(?m)^\n([A-Z][A-Z' ]*[A-Z])\.\n(?=\S)")  # "\nLADY MACBETH.\n" + speech
SCENE = re.compile(r"(?m)^(?:SCENE|Scene) +([IVXL]+|\d+)\b\.? *([^\n]*)$")


@dataclass(frozen=True)
class Document:
    doc_id: str
    play: str
    kind: str
    text: str


@dataclass(frozen=True)
class Question:
    qid: str
    play: str
    kind: str
    split: str
    text: str
    answer: str
    doc_id: str


# ============================================================================ the play texts


def split_plays(train: str, val: str, plays: list[str]) -> dict[str, str]:
    """Undo data/build_corpus.make_splits: the corpus joins the first 90% of each play (train)
    and the last 10% (val) with a newline, in order. Train parts start at their title line; each
    val part is the one whose join gives back exactly that cut (the build's own rule)."""
    starts = [m.start(1) for m in re.finditer(r"(?:^|\n)([^\n]+)\n\nby William Shakespeare", train)]
    if len(starts) != len(plays):
        raise ValueError(f"found {len(starts)} play titles in the train text, not {len(plays)}")
    heads = [train[a : b - 1] for a, b in zip(starts, [*starts[1:], len(train) + 1], strict=True)]

    def ends(i: int, at: int) -> list[int]:  # where play i's val part may end
        found = []
        for m in re.finditer(r"\n(?=\n|$)", val[at:]):
            point = int((len(heads[i]) + m.end()) * 0.9)  # the build's cut: first \n from here
            if point >= len(heads[i]):
                break
            if heads[i].find("\n", point) == len(heads[i]) - 1:
                found.append(at + m.end())
        return found

    stack, path = [(0, 0)], {}  # depth-first: every val part must fit and end the text exactly
    while stack:
        i, at = stack.pop()
        if i == len(heads):
            if at == len(val) + 1:
                break
            continue
        path[i] = at
        stack += [(i + 1, end + 1) for end in reversed(ends(i, at))]
    else:
        raise ValueError("the val text does not split into the plays' last parts")
    bounds = [path[i] for i in range(len(heads))] + [len(val) + 1]
    texts = {
        play: head + val[a : b - 1]
        for play, head, a, b in zip(plays, heads, bounds[:-1], bounds[1:], strict=True)
    }
    return texts


def play_texts() -> dict[str, str]:
    """{play: whole text} for the 37 plays, from the checked `full` corpus."""
    info = course_data.corpus_info("full")
    texts = split_plays(
        course_data.load_corpus("train", "full"),
        course_data.load_corpus("val", "full"),
        info["train_val_plays"],
    )
    texts[info["test_play"]] = course_data.load_corpus("test", "full")
    return dict(sorted(texts.items()))


def _name(heading: str) -> str:
    """A speaker heading as a name: "LADY MACBETH" -> "Lady Macbeth"."""
    return " ".join(w.lower() if w in ("OF", "THE") else w.capitalize() for w in heading.split())


def _headings_are_clean(text: str, counts: Counter) -> bool:
    """Whether a text's speeches are headed by full names in capitals: at least 500 of them, at
    most 5 headings in another form ("Ham."), and no short form heading 20 speeches (a
    heading of up to 3 letters that is no word of the list of persons: "FAL." for Falstaff)."""
    other = len(re.findall(r"(?m)^\n([A-Z][A-Za-z' ]*[a-z])\.\n(?=\S)", text))
    persons = text[: text.find("\nACT")].upper()  # the list of persons before the first act
    short = [
        k
        for k, v in counts.items()
        if len(k) <= 3 and v >= 20 and not re.search(rf"\b{re.escape(k)}\b", persons)
    ]
    return sum(counts.values()) >= 500 and other <= 5 and not short


def play_facts(text: str) -> dict[str, str]:
    """The facts one play's text gives (a fact the text's layout hides is left out):
    speeches: the speaker heading (a line of capitals and a full stop, between a blank line and
      a speech) heading the most speeches, and how many; only where the text heads its speeches
      so (`_headings_are_clean`: some texts abbreviate names, "Ham.", or run them into the
      speech) and no other heading ties with it;
    speakers: how many distinct such headings (the same condition);
    opening: the first sentence of Act 1 Scene 1's heading (or of the line after a bare
      heading), unless it refers back ("The same");
    setting: the general `SCENE:` paragraph before Act 1; scenes: how many scene headings."""
    facts: dict[str, str] = {}
    counts = Counter(SPEAKER.findall(text))
    counts = Counter({k: v for k, v in counts.items() if not k.startswith(("ACT", "SCENE"))})
    top = counts.most_common(2)
    if _headings_are_clean(text, counts) and top[0][1] > top[1][1]:
        facts["speeches"], facts["speeches_n"] = _name(top[0][0]), str(top[0][1])
        facts["speakers"] = str(len(counts))
    scenes = list(SCENE.finditer(text))
    if scenes:
        facts["scenes"] = str(len(scenes))
        first = scenes[0]
        rest = first.group(2).strip() or text[first.end() :].lstrip("\n").split("\n")[0]
        place = " ".join(rest.split(".")[0].split()).strip("-")
        if place and not place.lower().startswith("the same") and not place.startswith("["):
            facts["opening"] = place
    setting = re.search(
        r"\nSCENE: *([^\n]+(?:\n[^\n]+)*)", text[: scenes[0].start()] if scenes else ""
    )
    if setting:
        facts["setting"] = " ".join(setting.group(1).split()).rstrip(".")
    return facts


def genres() -> dict[str, str]:
    """{play: "comedy" | "history" | "tragedy"} as the First Folio's catalogue files them (the
    genre set's mapping, data/manifest.json["genre"]; Pericles and Troilus and Cressida are
    not in the catalogue)."""
    mapping = course_data.load_manifest()["genre"]["genres"]
    return {play: genre for genre, plays in mapping.items() for play in plays}


# ============================================================================ documents, questions


def build_documents(texts: dict[str, str], genre_of: dict[str, str]) -> list[Document]:
    """One document per play per fact that play has, in play order then DOC_TEMPLATES order."""
    docs = []
    for play in sorted(texts):
        facts = play_facts(texts[play])
        if play in genre_of:
            facts["genre"] = genre_of[play]
        for kind, template in DOC_TEMPLATES.items():
            if kind in facts:
                text = template.format(t=TITLES[play], a=facts[kind], n=facts.get("speeches_n"))
                docs.append(Document(f"{play}:{kind}", play, kind, text))
    return docs


def build_questions(docs: list[Document], answers: dict[str, str]) -> list[Question]:
    """One question per document of a questioned kind; `answers` maps doc_id to the answer."""
    out = []
    for d in docs:
        if d.kind in QUESTION_TEMPLATES:
            split = "dev" if d.play in DEV_PLAYS else "test"
            text = QUESTION_TEMPLATES[d.kind].format(t=TITLES[d.play])
            out.append(Question(d.doc_id, d.play, d.kind, split, text, answers[d.doc_id], d.doc_id))
    return out


def build_tables() -> tuple[str, str]:
    """(documents.tsv, questions.tsv) as text, rebuilt from the checked corpus."""
    texts, genre_of = play_texts(), genres()
    docs = build_documents(texts, genre_of)
    answers = {}
    for play, text in texts.items():
        facts = {**play_facts(text), **({"genre": genre_of[play]} if play in genre_of else {})}
        answers |= {f"{play}:{k}": v for k, v in facts.items()}
    qs = build_questions(docs, answers)
    doc_tsv = "doc_id\tplay\tkind\ttext\n" + "".join(
        f"{d.doc_id}\t{d.play}\t{d.kind}\t{d.text}\n" for d in docs
    )
    q_tsv = "qid\tplay\tkind\tsplit\tquestion\tanswer\tdoc_id\n" + "".join(
        f"{q.qid}\t{q.play}\t{q.kind}\t{q.split}\t{q.text}\t{q.answer}\t{q.doc_id}\n" for q in qs
    )
    return doc_tsv, q_tsv


def write_tables(root: str | os.PathLike | None = None) -> dict:
    """Write data/plays/documents.tsv and questions.tsv, record their sha256 and bytes in
    data/manifest.json's "files" (where `course_lib.data.verify` checks every shipped file) and
    how they were made under "plays"; the new "plays" entry."""
    root = Path(root if root is not None else course_data.data_dir())
    (root / "plays").mkdir(parents=True, exist_ok=True)
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    for rel, text in zip((DOCUMENTS_FILE, QUESTIONS_FILE), build_tables(), strict=True):
        (root / rel).write_bytes(text.encode("utf-8"))
        manifest["files"][rel] = {
            "sha256": course_data.sha256_file(root / rel),
            "bytes": (root / rel).stat().st_size,
        }
    manifest[MANIFEST_KEY] = {
        "made_by": "python -m course_lib.search tables (course_lib.search_data.build_tables)",
        "from": "shakespeare/full/{train,val,test}.txt.gz and manifest genre.genres",
        "licence": "CC BY 2.5, derived from the corpus (see data/README.md)",
        "files": [DOCUMENTS_FILE, QUESTIONS_FILE],
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest[MANIFEST_KEY]


def load_table(rel: str) -> list[list[str]]:
    """The rows (header dropped) of a shipped plays table, after checking its sha256."""
    path = course_data.verify(rel)
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t") for line in lines]


def load_documents() -> list[Document]:
    return [Document(*row) for row in load_table(DOCUMENTS_FILE)]


def load_questions(split: str | None = None) -> list[Question]:
    """The questions, all or one split ("dev": plays looked at while designing; "test")."""
    qs = [Question(*row) for row in load_table(QUESTIONS_FILE)]
    return qs if split is None else [q for q in qs if q.split == split]


# ============================================================================ the reader's tokens

_UNIT = re.compile(r"[A-Za-z0-9]+(?:['-][A-Za-z0-9]+)*'?|\n|[^\sA-Za-z0-9]")
_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
SPECIALS = ("<pad>", "\n", "[", "]", "→", "(", ")", ",", ".", "?", ":", ";")
_GLUE_BEFORE, _GLUE_AFTER = set(",.?:;)]→\n"), set("([→\n")


def template_words() -> list[str]:
    """The words of the document and question templates, the tool's name and the genres: the
    reader's word tokens (one-letter words are spelled: they are letter tokens anyway)."""
    text = " ".join([*DOC_TEMPLATES.values(), *QUESTION_TEMPLATES.values()])
    text = re.sub(r"\{\w\}", " ", text) + " Search comedy history tragedy"
    units = {u for u in _UNIT.findall(text) if len(u) > 1 and not u.isdigit()}
    return sorted(units)


class ReaderTokenizer(PieceTokenizer):
    """Template words as tokens; every other word spelled, its first character a token of its own
    and each later one a continuation token "##c" (WordPiece's convention): names, titles,
    places and numbers (digit by digit) the reader never saw are still made of trained tokens,
    so it can copy them. Spaces are implicit. Token 0 pads, token 1 is the newline."""

    def __init__(self):
        chars = [*_CHARS, *(f"##{c}" for c in _CHARS + "'-")]
        self._set_pieces([*SPECIALS, *chars, *template_words()])

    def encode(self, text: str) -> list[int]:
        ids = []
        for unit in _UNIT.findall(text):
            if unit in self.index and (len(unit) > 1 or not unit.isalnum() or unit == "\n"):
                ids.append(self.index[unit])
            elif unit[0] in self.index and all(f"##{c}" in self.index for c in unit[1:]):
                ids += [self.index[unit[0]], *(self.index[f"##{c}"] for c in unit[1:])]
            else:
                raise ValueError(f"text has a piece the reader cannot spell: {unit!r}")
        return ids

    def decode(self, ids) -> str:
        out = ""
        for piece in self._decoded_pieces(ids):
            if piece.startswith("##"):
                out += piece[2:]
            elif not out or piece in _GLUE_BEFORE or out[-1] in _GLUE_AFTER:
                out += piece
            elif piece == "(" and out.endswith("Search"):
                out += piece
            else:
                out += " " + piece
        return out


# ============================================================================ fictitious plays

_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "qu", "r", "s", "t", "v")
_ONSETS += ("w", "x", "y", "z", "br", "ch", "cl", "st", "th", "tr", "")
_VOWELS = ("a", "e", "i", "o", "u", "y", "ae", "ia", "ou")
_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_FREQ = (12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1.5, 1, 1, 0.5, 0.5, 0.5, 0.5)
_SMALL = ("A", "An", "The", "the", "a", "in", "of", "near", "before", "and", "on", "at")


def made_up_word(rng: random.Random) -> str:
    """A pronounceable word that is no real name: 1-3 syllables, capitalised; now and then in
    capitals, with a possessive 's or s', or hyphenated (as the plays' headings write places)."""
    if rng.random() < 0.3:  # any letters, English frequencies: copying, not guessing
        word = "".join(rng.choices(_LETTERS, _FREQ, k=rng.randint(2, 10)))
    else:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(1, 3)))
        word += rng.choice(("", "", "n", "r", "s", "t", "l", "ll", "ss", "nd"))
    word = word.capitalize() if rng.random() < 0.8 else word
    u = rng.random()
    if u < 0.08:
        word = word.upper() + "'S"
    elif u < 0.12:
        word += "'s"
    elif u < 0.14:
        word += "s'"
    elif u < 0.17:
        word += "-" + made_up_word(rng).lower().strip("'s")
    return word


def made_up_phrase(rng: random.Random, low: int, high: int, small: float) -> str:
    """low..high words, each a made-up word, or (with probability `small`) a small word."""
    n = rng.randint(low, high)
    words = [rng.choice(_SMALL) if rng.random() < small else made_up_word(rng) for _ in range(n)]
    text = " ".join(words)
    return text + (", " + made_up_word(rng) if rng.random() < 0.05 else "")


def made_up_play(rng: random.Random) -> dict[str, str]:
    """A fictitious play's title and facts, drawn at random (no real play's facts)."""
    roman = "".join(rng.choice("IVX") for _ in range(rng.randint(1, 4)))
    title = rng.choice(
        (
            made_up_phrase(rng, 1, 2, 0.0),
            "The " + made_up_phrase(rng, 1, 2, 0.2),
            made_up_word(rng) + " " + rng.choice(("and", "of", "for")) + " " + made_up_word(rng),
            made_up_word(rng) + " " + roman + rng.choice(("", f" Part {rng.randint(1, 3)}")),
        )
    )
    person = made_up_phrase(rng, 1, 3, 0.1)
    return {
        "title": title.replace("'S", "'s") if rng.random() < 0.5 else title,
        "speeches": person,
        "speeches_n": str(rng.randint(20, 400)),
        "speakers": str(rng.randint(8, 90)),
        "opening": made_up_phrase(rng, 1, 6, 0.35),
        "setting": made_up_phrase(rng, 1, 12, 0.3),
        "scenes": str(rng.randint(4, 50)),
        "genre": rng.choice(("comedy", "history", "tragedy")),
    }


# Names and places are copied letter by letter, the hardest to learn: they get more texts.
KIND_WEIGHTS = {"speeches": 3, "speakers": 1, "opening": 3, "scenes": 1, "genre": 1}


def reader_texts(seed: int, n: int, note: float = 0.85) -> list[str]:
    """The reader's training texts about fictitious plays, one question each, with its answer:
    with probability `note` `[Search(q)→document] q answer`, else `q answer`."""
    rng, out = random.Random(seed), []
    for _ in range(n):
        play = made_up_play(rng)
        kind = rng.choices(list(QUESTION_TEMPLATES), list(KIND_WEIGHTS.values()))[0]
        t = play["title"]
        question = QUESTION_TEMPLATES[kind].format(t=t)
        doc = DOC_TEMPLATES[kind].format(t=t, a=play[kind], n=play["speeches_n"])
        text = f"{question} {play[kind]}"
        out.append(
            f"{call_text(question, doc, tool='Search')} {text}" if rng.random() < note else text
        )
    return out
