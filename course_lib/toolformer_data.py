"""The small world Toolformer is run in (notebook 12): a tokenizer, word problems and a
pre-training corpus, generated from a seed.

    tok = ToolTokenizer()                      # about a hundred tokens: words, digits, symbols
    p = make_problem(random.Random(0), hard=True)      # Problem(text, expr, answer, prompt, hard)
    corpus = make_corpus(seed=0, n=8000)       # one line per text

Hard problems need several-digit arithmetic that a model of a few hundred thousand parameters
cannot learn in minutes; easy ones have one-digit operands, which it learns. The corpus also
holds the two things the paper's pipeline assumes of a large model and a tiny one lacks (each a
deviation, stated and measured in notebook 12): header notes written as calls with results, from
which the model learns to read a result given before a text, and demonstrations marked `§` with
calls and no results, a learned stand-in for the paper's few-shot prompt.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from course_lib.tools import call_text
from course_lib.validate import positive_int

# ============================================================================ tokens and texts

NAMES = ("Max", "Ann", "Zoe", "Tom", "Eva", "Sam", "Lea", "Ben", "Ida", "Leo", "Mia", "Kai")
ITEMS = ("coins", "cups", "books", "apples", "stones", "shells", "pens", "cards", "bricks", "nuts")
FILLER = {
    "adj": ("red", "old", "small", "green", "quiet", "tall"),
    "noun": ("fox", "cat", "dog", "bird", "horse", "goat"),
    "verb": ("sleeps", "waits", "sings", "runs", "hides", "rests"),
    "place": ("barn", "river", "hill", "house", "tree", "gate"),
}
WORDS = (
    "packs boxes of so has had and got more sold splits into bags each bag Total Ticket is open "
    "closes ticket The the near by Calculator"
).split()
SPECIALS = ("<pad>", "\n", "§", "[", "]", "→", "(", ")", "+", "-", "*", "/", ".", ",")
_SPLIT = re.compile(r"\d|[A-Za-z]+|[^\sA-Za-z\d]|\n")
_GLUE_BEFORE = set(",.)]→+-*/") | set("0123456789")
_GLUE_AFTER = set("([§→+-*/")


class PieceTokenizer:
    """What the course's small tool-use tokenizers share: a list of pieces (token 0 pads, token 1
    is the newline that starts and ends a text) and the pieces of some ids, padding skipped."""

    pieces: list[str]

    def _set_pieces(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.index = {p: i for i, p in enumerate(pieces)}
        self.pad, self.newline = 0, 1
        self.open, self.close, self.arrow = (self.index[c] for c in "[]→")

    def __len__(self) -> int:
        return len(self.pieces)

    def _decoded_pieces(self, ids):
        """The pieces of ids, padding left out."""
        return (p for p in (self.pieces[int(i)] for i in ids) if p != "<pad>")


class ToolTokenizer(PieceTokenizer):
    """Words as tokens, every digit its own token (as LLaMA splits numbers), spaces implicit:
    about a hundred tokens. Token 0 is padding, token 1 the newline that starts and ends a text."""

    def __init__(self):
        words = sorted({*NAMES, *ITEMS, *WORDS, *(w for ws in FILLER.values() for w in ws)})
        self._set_pieces([*SPECIALS, *"0123456789", *words])
        self.prompt = self.index["§"]

    def encode(self, text: str) -> list[int]:
        pieces = _SPLIT.findall(text)
        unknown = [p for p in pieces if p not in self.index]
        if unknown:
            raise ValueError(f"text has pieces outside the vocabulary: {unknown[:5]}")
        return [self.index[p] for p in pieces]

    def decode(self, ids) -> str:
        out = ""
        for piece in self._decoded_pieces(ids):
            digit_after_digit = piece.isdigit() and out[-1:].isdigit()
            glued = not out or out[-1] in _GLUE_AFTER or out[-1] == "\n" or piece == "\n"
            tight = piece in _GLUE_BEFORE and (not piece.isdigit() or digit_after_digit)
            glued = glued or tight or (piece == "(" and out.endswith("Calculator"))
            out += piece if glued else " " + piece
        return out


@dataclass(frozen=True)
class Problem:
    """A word problem: its text, the expression that solves it, the answer, where the answer's
    sentence ends ("... has"), and whether it is hard (operands of several digits)."""

    text: str
    expr: str
    answer: str
    prompt: str
    hard: bool


def make_problem(rng: random.Random, hard: bool) -> Problem:
    """One of four templates (x + - /), operands drawn from rng: hard ones need several-digit
    arithmetic a small model cannot do; easy ones have one-digit operands."""
    name, item, kind = rng.choice(NAMES), rng.choice(ITEMS), rng.randrange(4)
    if kind == 0:
        a, b = (
            (rng.randint(12, 99), rng.randint(101, 999))
            if hard
            else (rng.randint(2, 9), rng.randint(2, 9))
        )
        head, expr, ans = f"{name} packs {a} boxes of {b} {item}, so {name} has", f"{a}*{b}", a * b
    elif kind == 1:
        a, b = (
            (rng.randint(1000, 4999), rng.randint(1000, 4999))
            if hard
            else (rng.randint(1, 9), rng.randint(1, 9))
        )
        head, expr, ans = (
            f"{name} had {a} {item} and got {b} more, so {name} has",
            f"{a}+{b}",
            a + b,
        )
    elif kind == 2:
        a, b = (
            (rng.randint(5000, 9999), rng.randint(1000, 4999))
            if hard
            else (rng.randint(5, 9), rng.randint(1, 4))
        )
        head, expr, ans = f"{name} had {a} {item} and sold {b}, so {name} has", f"{a}-{b}", a - b
    else:
        b, q = (
            (rng.randint(2, 9), rng.randint(100, 999))
            if hard
            else (rng.randint(2, 9), rng.randint(1, 9))
        )
        a = b * q
        head, expr, ans = f"{name} splits {a} {item} into {b} bags, so each bag has", f"{a}/{b}", q
    return Problem(f"{head} {ans} {item}.", expr, str(ans), head, hard)


def _with_call(p: Problem, result: bool) -> str:
    """The problem with the call inserted before its answer (with or without the result)."""
    call = call_text(p.expr, p.answer if result else None)
    return f"{p.prompt} {call} {p.text[len(p.prompt) + 1 :]}"


def make_corpus(seed: int, n: int) -> list[str]:
    """The pre-training texts (one line each): hard problems 30%, easy 18%, header notes 20%
    (60% `[Calculator(e)→r]` before a problem, so that the model learns to read a prefixed
    result; 40% `Total r.`), ticket numbers to copy 6%, filler sentences 21%, and 5% prompt-mode
    demonstrations: `§` and a problem with its call inserted *without* a result (the learned
    stand-in for the paper's few-shot prompt P(x))."""
    rng = random.Random(seed)
    texts = []
    for _ in range(positive_int(n, "n")):
        u = rng.random()
        if u < 0.30:
            texts.append(make_problem(rng, True).text)
        elif u < 0.48:
            texts.append(make_problem(rng, False).text)
        elif u < 0.68:
            p = make_problem(rng, rng.random() > 0.3)
            note = call_text(p.expr, p.answer) if rng.random() < 0.6 else f"Total {p.answer}."
            texts.append(f"{note} {p.text}")
        elif u < 0.74:
            t, who = rng.randint(10000, 99999), rng.choice(NAMES)
            texts.append(f"Ticket {t} is open. {who} closes ticket {t}.")
        elif u < 0.95:
            f = {k: rng.choice(v) for k, v in FILLER.items()}
            texts.append(f"The {f['adj']} {f['noun']} {f['verb']} near the old {f['place']}.")
        else:
            texts.append("§" + _with_call(make_problem(rng, rng.random() < 0.6), result=False))
    return texts


def annotation_texts(seed: int, n: int) -> list[str]:
    """The plain texts the pipeline annotates: drawn like the corpus's plain texts, kept when they
    hold at least two numbers (the paper's heuristic asks for three; appendix A.1): hard
    problems, easy problems and ticket sentences, in the corpus's proportions (30 : 18 : 6)."""
    rng, texts = random.Random(seed), []
    for _ in range(positive_int(n, "n")):
        u = rng.random() * 54
        if u < 30:
            texts.append(make_problem(rng, True).text)
        elif u < 48:
            texts.append(make_problem(rng, False).text)
        else:
            t, who = rng.randint(10000, 99999), rng.choice(NAMES)
            texts.append(f"Ticket {t} is open. {who} closes ticket {t}.")
    return texts


def held_out(seed: int, n_problems: int = 200, n_plain: int = 300) -> dict:
    """Evaluation sets from their own random stream: hard and easy problems (fresh operands)
    and plain texts for perplexity (the corpus's mix, without header notes or `§` demos)."""
    rng = random.Random(1_000_003 * (seed + 1))
    hard = [make_problem(rng, True) for _ in range(n_problems)]
    easy = [make_problem(rng, False) for _ in range(n_problems)]
    plain = [
        t for t in make_corpus(seed + 7919, 3 * n_plain) if not t.startswith(("[", "§", "Total"))
    ]
    return {"hard": hard, "easy": easy, "plain": plain[:n_plain]}
